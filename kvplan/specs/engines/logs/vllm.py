"""vLLM's start-up lines, V0 (0.5 to 0.7) and V1 (0.8 on), read into figures.

Each regex quotes a line of tests/fixtures/engine_logs/ it matches. Memory lines come from the
workers (gpu_worker.py, gpu_model_runner.py: one per GPU), pool lines from the engine core
(kv_cache_utils.py), settings from the banner, the non-default args, the config dump and the
scheduler. The settings dumps are read in vllm_settings.py.
"""

from __future__ import annotations

import re

from .collect import Apply, Collector, Rule, build, integer, number, run_rules
from .common import Line
from .startup import LoggedStartup
from .vllm_settings import SETTING_RULES, setting

MISSING = "no 'Available KV cache memory', 'GPU KV cache size' or V0 'Memory profiling' line"


def phrase(pattern: str) -> re.Pattern[str]:
    """A message regex whose spaces may be missing: a terminal that wraps a line at a space drops
    it (vLLM 0.10.1.1 logs hard-wrapped at 147 columns read "Model loadingtook 7.1217 GiBand")."""
    return re.compile(pattern.replace(" ", " ?"))


GIB = r"(?P<gib>-?\d+(?:\.\d+)?) GiB"

# V1: "Model loading took 27.6656 GiB and 119.554644 seconds", 0.12+: "took 29.3114 GiB memory and ..", V0 0.8:
# "Model loading took 8.6253 GB and 7.670299 seconds" (GiB: model_runner.py divides by GiB_bytes)
MODEL_LOADING = phrase(r"Model loading took (?P<gib>-?\d+(?:\.\d+)?) Gi?B\b")
# V0: "Loading model weights took 14.9888 GB" (GiB: model_runner.py divides by 2**30)
V0_WEIGHTS = phrase(r"Loading model weights took (?P<gib>\d+(?:\.\d+)?) GB\b")
# "Available KV cache memory: 35.74 GiB" (gpu_worker.py determine_available_memory, per worker)
AVAILABLE_KV = phrase(r"Available KV cache memory: " + GIB)
# 0.10.2+: "... Current kv cache memory in use is 16440489164 bytes." / 0.26+: "... is 12.26 GiB."
KV_IN_USE = phrase(r"Current kv cache memory in use is (?P<amount>\d+(?:\.\d+)?) (?P<unit>bytes|GiB)")
# "Graph capturing finished in 189 secs, took 2.60 GiB" (may be negative: "took -0.26 GiB")
GRAPH_TOOK = phrase(r"Graph capturing finished in \d+ secs?, took " + GIB)
# 0.19+: "CUDA graph pool memory: 2.62 GiB (actual), 2.73 GiB (estimated), difference: 0.11 GiB (4.3%)."
GRAPH_POOL = phrase(r"CUDA graph pool memory: (?P<actual>-?\d+(?:\.\d+)?) GiB \(actual\), "
                        r"(?P<estimated>-?\d+(?:\.\d+)?) GiB \(estimated\)")
# 0.18+: "Estimated CUDA graph memory: 2.73 GiB total"
GRAPH_ESTIMATE = phrase(r"Estimated CUDA graph memory: " + GIB + " total")
# 0.10.2+: "Free memory on device (23.21/23.65 GiB) on startup. Desired GPU memory utilization is (0.9, 21.28 GiB)."
FREE_ON_DEVICE = phrase(r"Free memory on device \((?P<free>\d+(?:\.\d+)?)/(?P<total>\d+(?:\.\d+)?) GiB\) on startup\. "
                            r"Desired GPU memory utilization is \((?P<util>\d+(?:\.\d+)?), (?P<requested>\d+(?:\.\d+)?) GiB\)")
# 0.10.2-0.2x: "Actual usage is 5.79 GiB for weight, 0.17 GiB for peak activation, 0.02 GiB for non-torch
# memory, and 0.14 GiB for CUDAGraph memory."
USAGE_SPLIT = phrase(r"Actual usage is (?P<weights>-?\d+(?:\.\d+)?) GiB for weight, (?P<activation>-?\d+(?:\.\d+)?) GiB "
                         r"for peak activation, (?P<non_torch>-?\d+(?:\.\d+)?) GiB for non-torch memory, and "
                         r"(?P<graph>-?\d+(?:\.\d+)?) GiB for CUDAGraph memory")
# 0.26+: "Actual usage is 57.26 GiB for consumed memory (weights + non-torch), 0.23 GiB for peak
# activation, and 0.11 GiB for CUDAGraph memory."
USAGE_CONSUMED = phrase(r"Actual usage is (?P<consumed>-?\d+(?:\.\d+)?) GiB for consumed memory \(weights \+ "
                            r"non-torch\), (?P<activation>-?\d+(?:\.\d+)?) GiB for peak activation, and "
                            r"(?P<graph>-?\d+(?:\.\d+)?) GiB for CUDAGraph memory")
# V0 0.6.4, one line: "Memory profiling results: total_gpu_memory=23.58GiB initial_memory_usage=15.34GiB
# peak_torch_memory=17.06GiB memory_usage_post_profile=15.35GiB non_torch_memory=0.35GiB kv_cache_size=3.81GiB
# gpu_memory_utilization=0.90"
V0_PROFILE_LINE = phrase(r"Memory profiling results: (?P<terms>(?:\w+=-?\d+(?:\.\d+)?(?:GiB)?\s*)+)")
V0_PROFILE_TERM = phrase(r"(?P<key>\w+)=(?P<value>-?\d+(?:\.\d+)?)(?:GiB)?")
# V0 0.6.5, a table after "Memory profiling results:": "total_gpu_memory     79.22GiB",
# "the current vLLM instance can use    71.29GiB", "PyTorch activation peak memory       1.26GiB"
V0_PROFILE_ROW = phrase(r"^(?P<key>total_gpu_memory|gpu_memory_utilization|the current vLLM instance can use|"
                            r"model weights take|non_torch_memory|PyTorch activation peak memory|"
                            r"available_kv_cache_memory)\s+(?P<value>-?\d+(?:\.\d+)?)(?:GiB)?$")
# V0 0.6.6 to 0.8, one line or wrapped over three: "model weights take 8.51GiB; non_torch_memory takes 0.26GiB;
# PyTorch activation peak memory takes 0.94GiB; the rest of the memory reserved for KV Cache is 2.18GiB."
# (worker.py determine_num_available_blocks; V1 0.8 gpu_worker.py prints the same terms)
V0_WEIGHTS_TAKE = phrase(r"model weights take (?P<gib>\d+(?:\.\d+)?)GiB;")
V0_NON_TORCH_TAKES = phrase(r"non_torch_memory takes (?P<gib>-?\d+(?:\.\d+)?)GiB")
V0_ACTIVATION_TAKES = phrase(r"PyTorch activation peak memory takes (?P<gib>-?\d+(?:\.\d+)?)GiB")
V0_KV_REST = phrase(r"the rest of the memory reserved for KV Cache is (?P<gib>-?\d+(?:\.\d+)?)GiB")
# V0 0.6.6 to 0.8: "the current vLLM instance can use total_gpu_memory (79.25GiB) x gpu_memory_utilization (0.15) = 11.89GiB"
V0_INSTANCE = phrase(r"total_gpu_memory \((?P<total>\d+(?:\.\d+)?)GiB\) x gpu_memory_utilization "
                         r"\((?P<util>\d+(?:\.\d+)?)\) = (?P<requested>\d+(?:\.\d+)?)GiB")
# "GPU KV cache size: 1,594,928 tokens" (kv_cache_utils.py, the engine core: one per worker in 0.10.0)
POOL_TOKENS = phrase(r"GPU KV cache size: (?P<tokens>[\d,]+) tokens")
# "Maximum concurrency for 32,768 tokens per request: 48.67x" (V0: "for 20000 tokens per request: 1.56x")
CONCURRENCY = phrase(r"Maximum concurrency for (?P<len>[\d,]+) tokens per request: (?P<x>\d+(?:\.\d+)?)x")
# V0: "# GPU blocks: 1952, # CPU blocks: 2048" (a paste may lose the leading "# "); 0.8 V0: "# CUDA blocks: 5517,
# # CPU blocks: 9362" or "# cuda blocks: 190100, # CPU blocks: 0"
V0_BLOCKS = phrase(r"(?:GPU|CUDA|cuda) blocks: (?P<gpu>\d+), # CPU blocks: (?P<cpu>\d+)")
# "The model's max seq len (29000) is larger than the maximum number of tokens that can be stored in KV cache (23648)."
V0_CAPACITY = phrase(r"max seq len \((?P<len>\d+)\) is larger than the maximum number of tokens that can be "
                         r"stored in KV cache \((?P<tokens>\d+)\)")
# 0.29: "To serve at least one request with the model's max seq len (196608)," (the next line: ...)
ONE_REQUEST_LEN = phrase(r"To serve at least one request with the model's max seq len \((?P<len>\d+)\)")
# "23.25 GiB KV cache is needed, which is larger than the available KV cache memory (22.5 GiB)."
KV_NEEDED = phrase(r"(?P<gib>\d+(?:\.\d+)?) GiB KV cache is needed, which is larger than the available KV cache memory")
# "Based on the available memory, the estimated maximum model length is 190272."
ESTIMATED_LEN = phrase(r"the estimated maximum model length is (?P<len>\d+)")
# "Engine 000: vllm cache_config_info with initialization after num_gpu_blocks is: 5867"
NUM_GPU_BLOCKS = phrase(r"num_gpu_blocks is: (?P<blocks>\d+)")
# "Add 3 padding layers, may waste at most 6.25% KV cache memory"
PADDING = phrase(r"Add (?P<layers>\d+) padding layers")
# "Capping cudagraph capture sizes from max 512 to 352 to fit Mamba cache blocks (361 blocks available)."
MAMBA_BLOCKS = phrase(r"Mamba cache blocks \((?P<blocks>\d+) blocks available\)")


def worker_figures(**names: str) -> Apply:
    """A rule's apply: each named group of the match, as a float, into the worker's figure `name`."""
    def apply(c: Collector, worker: str, m: re.Match[str]) -> None:
        for name, group in names.items():
            c.figure(worker, name, number(m[group]))
    return apply


def kv_in_use(c: Collector, worker: str, m: re.Match[str]) -> None:
    if m["unit"] == "bytes":
        c.figure(worker, "kv_cache_bytes", integer(m["amount"]))
    else:
        c.figure(worker, "kv_cache_gib", number(m["amount"]))


def free_on_device(c: Collector, worker: str, m: re.Match[str]) -> None:
    worker_figures(free_at_start_gib="free", total_gpu_gib="total", requested_gib="requested")(c, worker, m)
    c.setting("gpu_memory_utilization", number(m["util"]))


def v0_profile_line(c: Collector, worker: str, m: re.Match[str]) -> None:
    names = {"total_gpu_memory": "total_gpu_gib", "initial_memory_usage": "initial_memory_usage_gib",
             "peak_torch_memory": "peak_torch_memory_gib", "memory_usage_post_profile": "memory_usage_post_profile_gib",
             "non_torch_memory": "non_torch_gib", "kv_cache_size": "kv_cache_gib"}
    for term in V0_PROFILE_TERM.finditer(m["terms"]):
        if term["key"] in names:
            c.figure(worker, names[term["key"]], number(term["value"]))
        elif term["key"] == "gpu_memory_utilization":
            c.setting("gpu_memory_utilization", number(term["value"]))


def v0_profile_row(c: Collector, worker: str, m: re.Match[str]) -> None:
    names = {"total_gpu_memory": "total_gpu_gib", "the current vLLM instance can use": "requested_gib",
             "model weights take": "weights_gib", "non_torch_memory": "non_torch_gib",
             "PyTorch activation peak memory": "activation_gib", "available_kv_cache_memory": "kv_cache_gib"}
    if m["key"] == "gpu_memory_utilization":
        c.setting("gpu_memory_utilization", number(m["value"]))
    else:
        c.figure(worker, names[m["key"]], number(m["value"]))


def v0_instance(c: Collector, worker: str, m: re.Match[str]) -> None:
    worker_figures(total_gpu_gib="total", requested_gib="requested")(c, worker, m)
    c.setting("gpu_memory_utilization", number(m["util"]))


def pool_tokens(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.pool(worker, tokens=integer(m["tokens"]))


def concurrency(c: Collector, worker: str, m: re.Match[str]) -> None:
    """The concurrency line follows its pool's size line; V0 prints it after the blocks line."""
    open_pools = [pool for pool in c.pools if pool.get("max_concurrency") is None]
    if not open_pools:
        c.pool(worker)
        open_pools = c.pools[-1:]
    open_pools[-1].update(max_concurrency=number(m["x"]), concurrency_len_tokens=integer(m["len"]))
    c.setting("max_model_len", integer(m["len"]))


def generation(name: str, then: Apply | None = None) -> Apply:
    """A rule's apply that marks the engine generation (V0, V1) its line belongs to, then does `then`."""
    def apply(c: Collector, worker: str, m: re.Match[str]) -> None:
        c.setting("engine_generation", name)
        if then:
            then(c, worker, m)
    return apply


def v0_blocks(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.pool(worker, blocks=int(m["gpu"]))
    c.setting("num_gpu_blocks", int(m["gpu"]))
    c.setting("num_cpu_blocks", int(m["cpu"]))


def v0_capacity(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.setting("_capacity_tokens", int(m["tokens"]))
    c.setting("max_model_len", int(m["len"]))


MEMORY_RULES = (
    Rule(MODEL_LOADING, worker_figures(weights_gib="gib")),
    Rule(V0_WEIGHTS, worker_figures(weights_gib="gib")),
    Rule(AVAILABLE_KV, worker_figures(kv_cache_gib="gib")),
    Rule(KV_IN_USE, kv_in_use),
    Rule(GRAPH_TOOK, worker_figures(cuda_graph_gib="gib")),
    Rule(GRAPH_POOL, worker_figures(cuda_graph_gib="actual", cuda_graph_estimated_gib="estimated")),
    Rule(GRAPH_ESTIMATE, worker_figures(cuda_graph_estimated_gib="gib")),
    Rule(FREE_ON_DEVICE, free_on_device),
    Rule(USAGE_SPLIT, worker_figures(weights_gib="weights", activation_gib="activation",
                                     non_torch_gib="non_torch", cuda_graph_gib="graph")),
    Rule(USAGE_CONSUMED, worker_figures(weights_and_non_torch_gib="consumed", activation_gib="activation",
                                        cuda_graph_gib="graph")),
    Rule(V0_PROFILE_LINE, generation("V0", v0_profile_line)),
    Rule(V0_PROFILE_ROW, generation("V0", v0_profile_row)),
    Rule(V0_WEIGHTS_TAKE, worker_figures(weights_gib="gib")),
    Rule(V0_NON_TORCH_TAKES, worker_figures(non_torch_gib="gib")),
    Rule(V0_ACTIVATION_TAKES, worker_figures(activation_gib="gib")),
    Rule(V0_KV_REST, worker_figures(kv_cache_gib="gib")),
    Rule(V0_INSTANCE, v0_instance),
)
POOL_RULES = (
    Rule(POOL_TOKENS, generation("V1", pool_tokens)),
    Rule(CONCURRENCY, concurrency),
    Rule(V0_BLOCKS, generation("V0", v0_blocks)),
    Rule(V0_CAPACITY, generation("V0", v0_capacity)),
    Rule(ONE_REQUEST_LEN, setting("max_model_len", "len")),
    Rule(KV_NEEDED, setting("kv_needed_gib", "gib", number)),
    Rule(ESTIMATED_LEN, setting("estimated_max_model_len", "len")),
    Rule(NUM_GPU_BLOCKS, setting("num_gpu_blocks", "blocks")),
    Rule(PADDING, setting("padding_layers", "layers")),
    Rule(MAMBA_BLOCKS, setting("mamba_cache_blocks", "blocks")),
)


# V0's CacheConfig default block_size (tokens a block); the V0 logs print no block size of their own
V0_BLOCK_SIZE = 16
# "Initializing a V1 LLM engine (v0.10.1.1)" is V1's; "Initializing an LLM engine (v0.6.4)" (0.5 to 0.8) and
# "Initializing a V0 LLM engine (v0.9.2)" V0's
ENGINE_LINE = phrase(r"Initializing (?P<article>an|a V0|a V1) LLM engine \(v")


def engine_line(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.setting("engine_generation", "V1" if m["article"] == "a V1" else "V0")


def read_vllm(lines: list[Line], where: str) -> LoggedStartup:
    """A vLLM log's settings, per-worker memory and pools; SpecError where it states no KV figure."""
    collected = run_rules(lines, MEMORY_RULES + POOL_RULES + SETTING_RULES + (Rule(ENGINE_LINE, engine_line),),
                          Collector())
    block = collected.settings.get("block_size") or V0_BLOCK_SIZE
    for pool in collected.pools:  # V0 states whole blocks, not tokens: "# GPU blocks: 1952" holds 31,232
        if pool.get("tokens") is None and pool.get("blocks") is not None:
            pool["tokens"] = pool["blocks"] * block
    return build("vllm", where, collected, MISSING)

