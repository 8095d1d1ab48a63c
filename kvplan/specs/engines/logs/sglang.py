"""SGLang's start-up lines (0.4 to 0.5) read into figures; each regex quotes a fixture line.

Memory lines are per tensor-parallel rank (``[date TP1]``, or no rank where one process logs);
SGLang prints "GB" for GiB (sglang/srt/utils.py get_available_gpu_memory divides by 1 << 30).
"""

from __future__ import annotations

import re

from .collect import (DEVICE_NAME, KEY_EQUALS, Apply, Collector, Rule, as_bool, as_float, as_int, as_text, build, first,
                      integer, number, pairs, run_rules)
from .common import Line
from .startup import LoggedStartup

MISSING = "no 'KV Cache is allocated' or 'max_total_num_tokens=' line"

# "server_args=ServerArgs(model_path='meta-llama/Llama-3.2-3B', ..., mem_fraction_static=0.2, ..., tp_size=1, ...)",
# or as users abridge it in a paste: "server_args ... tp_size=4 ... mem_fraction_static=0.8 ..."
SERVER_ARGS = re.compile(r"server_args(?:=ServerArgs\(|\s+\.\.\.\s)(?P<dump>.*)")
# "Load weight begin. avail mem=78.81 GB"
LOAD_BEGIN = re.compile(r"Load weight begin\. avail mem=(?P<gib>\d+(?:\.\d+)?) GB")
# "Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=63.72 GB" (0.4.1), later with
# ", mem usage=15.02 GB." (a speculative model's draft logs a second one: "type=DFlashLagunaForCausalLM")
LOAD_END = re.compile(r"Load weight end\..*?(?:dtype=(?P<dtype>[\w.]+), )?(?:quant=[^,]*, fmt=[^,]*, )?"
                      r"avail mem=(?P<avail>\d+(?:\.\d+)?) GB(?:, mem usage=(?P<usage>\d+(?:\.\d+)?) GB)?")
# "KV Cache is allocated. K size: 27.13 GB, V size: 27.13 GB." (0.4.1); "KV Cache is allocated. #tokens: 38141,
# K size: 2.33 GB, V size: 2.33 GB" (0.4.9); "KV Cache is allocated. dtype: torch.bfloat16, #tokens: 392920, ...";
# an MLA pool holds one latent a token: "KV Cache is allocated. #tokens: 2454421, KV size: 160.63 GB" (0.5.8)
KV_ALLOCATED = re.compile(r"KV Cache is allocated\.(?: dtype: [\w.]+,)?(?: #tokens: (?P<tokens>\d+),)? "
                          r"(?:K size: (?P<k>\d+(?:\.\d+)?) GB, V size: (?P<v>\d+(?:\.\d+)?) GB|"
                          r"KV size: (?P<kv>\d+(?:\.\d+)?) GB)")
# "Memory pool end. avail mem=8.34 GB"
POOL_END = re.compile(r"Memory pool end\. avail mem=(?P<gib>\d+(?:\.\d+)?) GB")
# "Capture cuda graph end. Time elapsed: 18.07 s. mem usage=0.11 GB. avail mem=0.83 GB." (0.4.9) and
# "Capture target decode CUDA graph end. elapsed=12.26 s, mem usage=0.34 GB, avail mem=10.54 GB." (0.5)
GRAPH_END = re.compile(r"Capture [\w ]*?(?:cuda|CUDA) graph end\..*?mem usage=(?P<gib>\d+(?:\.\d+)?) GB")
# "max_total_num_tokens=38141, chunked_prefill_size=2048, max_prefill_tokens=16384, max_running_requests=2048,
# context_len=131072, available_gpu_mem=0.83 GB" (the scheduler's figures in force)
IN_FORCE = re.compile(r"max_total_num_tokens=(?P<tokens>\d+)(?P<rest>.*)")
# ... and its last term: "available_gpu_mem=0.83 GB"
AVAILABLE_AFTER = re.compile(r"available_gpu_mem=(?P<gib>\d+(?:\.\d+)?) GB")
# "sglang==0.4.9.post2" or "SGLang version: 0.5.2" where a launcher or report prints it
RELEASE = re.compile(r"(?:sglang==|SGLang version:?\s+v?)(?P<release>\d+\.\d+[\w.+-]*)")

ARGS = {"model": ("model_path", "served_model_name"), "tp": ("tp_size",), "pp": ("pp_size",), "dtype": ("dtype",),
        "kv_cache_dtype": ("kv_cache_dtype",), "quantization": ("quantization",),
        "mem_fraction_static": ("mem_fraction_static",), "max_model_len": ("context_length",),
        "max_num_seqs": ("max_running_requests",), "chunked_prefill_size": ("chunked_prefill_size",),
        "max_prefill_tokens": ("max_prefill_tokens",), "block_size": ("page_size",)}
KINDS = {"mem_fraction_static": as_float, "model": as_text, "dtype": as_text, "kv_cache_dtype": as_text,
         "quantization": as_text}


def server_args(c: Collector, worker: str, m: re.Match[str]) -> None:
    values = pairs(KEY_EQUALS, re.sub(r"\s+\.\.\.(?=\s|$)", ",", m["dump"]) + ")")  # an abridged paste's " ... "
    for name, keys in ARGS.items():
        c.setting(name, KINDS.get(name, as_int)(first(values, *keys)))
    if method := as_text(values.get("speculative_algorithm")):  # draft tokens mean nothing without one
        c.setting("speculative_method", method)
        c.setting("num_speculative_tokens", as_int(values.get("speculative_num_draft_tokens")))
    radix_off = as_bool(values.get("disable_radix_cache"))
    c.setting("enable_prefix_caching", None if radix_off is None else not radix_off)


def load_end(c: Collector, worker: str, m: re.Match[str]) -> None:
    """The first load is the model's; a second in the same process is its draft model's."""
    loaded = c.workers.get(worker, {})
    if m["usage"] is not None:
        c.figure(worker, "draft_weights_gib" if "weights_gib" in loaded else "weights_gib", number(m["usage"]))
        if "weights_gib" not in loaded:  # mem usage is before - after: the free memory before, where the
            # "Load weight begin" line is not in the paste (a figure the begin line stated stays)
            c.figure(worker, "free_at_start_gib", round(number(m["avail"]) + number(m["usage"]), 2))
    c.figure(worker, "free_after_weights_gib", number(m["avail"]))
    c.setting("dtype", as_text(m["dtype"]))


def kv_allocated(c: Collector, worker: str, m: re.Match[str]) -> None:
    k_gib, v_gib = (number(m["kv"]), 0.0) if m["kv"] else (number(m["k"]), number(m["v"]))
    c.pool(worker, tokens=None if m["tokens"] is None else integer(m["tokens"]), k_gib=k_gib, v_gib=v_gib)
    c.figure(worker, "kv_cache_gib", round(k_gib + v_gib, 4))  # the first pool: the model's own


def graph_end(c: Collector, worker: str, m: re.Match[str]) -> None:
    """Every capture (prefill, decode, verify...) adds its graphs' memory to the worker's total."""
    figures = c.workers.setdefault(worker, {})
    figures["cuda_graph_gib"] = round(figures.get("cuda_graph_gib", 0.0) + number(m["gib"]), 4)


def in_force(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.final("kv_tokens", int(m["tokens"]))
    values = pairs(KEY_EQUALS, m["rest"] + ",")
    for name, key in (("chunked_prefill_size", "chunked_prefill_size"), ("max_prefill_tokens", "max_prefill_tokens"),
                      ("max_num_seqs", "max_running_requests"), ("max_model_len", "context_len")):
        c.final(name, as_int(values.get(key)))
    if available := AVAILABLE_AFTER.search(m["rest"]):
        c.figure(worker, "free_after_graphs_gib", number(available["gib"]))


def setting(name: str, group: str, kind: type = str) -> Apply:
    def apply(c: Collector, worker: str, m: re.Match[str]) -> None:
        c.setting(name, kind(m[group]))
    return apply


RULES = (
    Rule(SERVER_ARGS, server_args),
    Rule(LOAD_BEGIN, lambda c, worker, m: c.figure(worker, "free_at_start_gib", number(m["gib"]))),
    Rule(LOAD_END, load_end),
    Rule(KV_ALLOCATED, kv_allocated),
    Rule(POOL_END, lambda c, worker, m: c.append("pool_end_free_gib", number(m["gib"]))),
    Rule(GRAPH_END, graph_end),
    Rule(IN_FORCE, in_force),
    Rule(DEVICE_NAME, setting("gpu_name", "gpu")),
    Rule(RELEASE, setting("release", "release")),
)


def read_sglang(lines: list[Line], where: str) -> LoggedStartup:
    """An SGLang log's settings, per-rank memory and pools; SpecError where it states no KV figure."""
    return build("sglang", where, run_rules(lines, RULES, Collector()), MISSING)
