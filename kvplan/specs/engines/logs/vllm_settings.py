"""vLLM's settings as its log states them: the release banner, the non-default args dict (0.9+),
the args Namespace (0.8), the engine's config dump, the command line a user pasted, and the
scheduler's and sampler's own lines. The first statement of a setting wins: the dumps agree where
they overlap, and the user's own arguments come first in a log."""

from __future__ import annotations

import re
from collections.abc import Callable

from .collect import (DEVICE_NAME, KEY_COLON, Apply, KEY_EQUALS, Collector, Rule, as_bool, as_float, as_int, as_text, first, flags, number,
                      pairs)

# Each setting: the names the dumps and the command line give it, and its type.
DUMP_NAMES: dict[str, tuple[tuple[str, ...], Callable[[object], object]]] = {
    "model": (("model", "model_tag"), as_text),
    "tp": (("tensor_parallel_size", "tp"), as_int),
    "pp": (("pipeline_parallel_size", "pp"), as_int),
    "dtype": (("dtype",), as_text),
    "kv_cache_dtype": (("kv_cache_dtype",), as_text),
    "quantization": (("quantization",), as_text),
    "max_model_len": (("max_model_len", "max_seq_len"), as_int),
    "gpu_memory_utilization": (("gpu_memory_utilization",), as_float),
    "block_size": (("block_size",), as_int),
    "max_num_seqs": (("max_num_seqs",), as_int),
    "max_num_batched_tokens": (("max_num_batched_tokens",), as_int),
    "enable_prefix_caching": (("enable_prefix_caching",), as_bool),
    "num_speculative_tokens": (("num_speculative_tokens", "num_spec_tokens"), as_int),
    "enable_lora": (("enable_lora",), as_bool),
    "max_loras": (("max_loras",), as_int),
    "max_lora_rank": (("max_lora_rank",), as_int),
    "max_cpu_loras": (("max_cpu_loras",), as_int),
}
SWITCHES = ("enable_prefix_caching", "enable_lora")  # a bare flag on a pasted command line that sets True

# V1: "Initializing a V1 LLM engine (v0.10.1.1) with config: ..."; V0: "Initializing an LLM engine (v0.6.4) with"
ENGINE_RELEASE = re.compile(r"Initializing an? (?:V[01] )?LLM engine \(v(?P<release>[^)\s]+)\)")
# "vLLM API server version 0.10.0" (api_server.py)
SERVER_RELEASE = re.compile(r"vLLM API server version (?P<release>\d[^\s,]*)")
# 0.20+ banner: " ▄▄ ▄█ █     █     █ ▀▄▀ █  version 0.22.1"
BANNER_RELEASE = re.compile(r"█\s+version (?P<release>\d[^\s,]*)")
# A bug report's header (club-3090's template): "- **vLLM:** `0.20.1rc1.dev16+g7a1eb8ac2`"
REPORT_RELEASE = re.compile(r"\*\*vLLM:?\*\*:?\s*`v?(?P<release>\d[^`\s]*)`")
# "... with config: model='Qwen/Qwen3-8B', speculative_config=None, ... dtype=torch.bfloat16, max_seq_len=40960, ..."
CONFIG_DUMP = re.compile(r"LLM engine \(v[^)]*\) with config: (?P<dump>.*)")
# Inside the dump: "speculative_config=SpeculativeConfig(method='mtp', model='...', num_spec_tokens=3)"
SPECULATIVE = re.compile(r"speculative_config=SpeculativeConfig\((?P<dump>[^)]*)")
# 0.9+: "non-default args: {'model_tag': 'Qwen/Qwen3-8B', 'max_model_len': 8192, 'gpu_memory_utilization': 0.85}"
NON_DEFAULT = re.compile(r"non-default args: (?P<dump>\{.*)")
# 0.8: "args: Namespace(subparser='serve', model_tag='/opt/llm/deepseek-r1-14b', ... gpu_memory_utilization=0.9, ..."
NAMESPACE = re.compile(r"args: Namespace\((?P<dump>.*)")
# A pasted command: "$ vllm serve meta-llama/Meta-Llama-3-8B", "user@host:~$ vllm serve unsloth/Qwen3.6-27B-NVFP4
# --gpu-memory-utilization 0.7 --max-model-len 1048576", "python -m vllm.entrypoints.openai.api_server --model X"
COMMAND = re.compile(r"(?:^|[$#>]\s*)(?:vllm serve|python3? -m vllm\.entrypoints\.[\w.]+)(?P<args>(?:\s.*)?)$")
# "Chunked prefill is enabled with max_num_batched_tokens=8192." (the value in force)
CHUNKED = re.compile(r"Chunked prefill is enabled with max_num_batched_tokens=(?P<tokens>\d+)")
# "Raising max_num_batched_tokens from 2048 to 2496 to accommodate 'video' input ..."
RAISED_BATCH = re.compile(r"Raising max_num_batched_tokens from \d+ to (?P<tokens>\d+)")
# "Using max model len 16384" (config.py)
MAX_MODEL_LEN = re.compile(r"Using max model len (?P<len>\d+)")
# "Using FlashInfer for top-p & top-k sampling." (topk_topp_sampler.py, 0.8 to 0.20)
FLASHINFER_SAMPLER = re.compile(r"Using FlashInfer for top-p & top-k sampling")
# "FlashInfer is not available. Falling back to the PyTorch-native implementation of top-p & top-k sampling."
NO_FLASHINFER_SAMPLER = re.compile(r"FlashInfer is not available\. Falling back to the PyTorch-native")
# 0.21+: "The current --gpu-memory-utilization=0.9200 is equivalent to --gpu-memory-utilization=0.9182 without
# CUDA graph memory profiling. To maintain the same effective KV cache size as before, increase
# --gpu-memory-utilization to 0.9218."
UTIL_EQUIVALENT = re.compile(r"The current --gpu-memory-utilization=(?P<util>\d+(?:\.\d+)?) is equivalent to "
                             r"--gpu-memory-utilization=(?P<without>\d+(?:\.\d+)?) without CUDA graph memory profiling"
                             r"(?:.*?increase --gpu-memory-utilization to (?P<keep>\d+(?:\.\d+)?))?")
# 0.19: "To try it now, set VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 and increase --gpu-memory-utilization
# from 0.9000 to 0.9616 to maintain the same effective KV cache size."
UTIL_TO_KEEP = re.compile(r"increase --gpu-memory-utilization from (?P<util>\d+(?:\.\d+)?) to (?P<keep>\d+(?:\.\d+)?)")


def dump_settings(c: Collector, values: dict[str, object]) -> None:
    """The settings a dump or command line states, by DUMP_NAMES."""
    for name, (keys, kind) in DUMP_NAMES.items():
        c.setting(name, kind(first(values, *keys)))


def from_dump(pattern: re.Pattern[str]) -> Apply:
    def apply(c: Collector, worker: str, m: re.Match[str]) -> None:
        dump_settings(c, pairs(pattern, m["dump"]))
    return apply


def config_dump(c: Collector, worker: str, m: re.Match[str]) -> None:
    values = pairs(KEY_EQUALS, m["dump"])
    if speculative := SPECULATIVE.search(m["dump"]):
        inner = pairs(KEY_EQUALS, speculative["dump"])
        values = {**values, "num_spec_tokens": inner.get("num_spec_tokens"), "model": values.get("model")}
        c.setting("speculative_method", as_text(inner.get("method")))
    dump_settings(c, values)


def non_default(c: Collector, worker: str, m: re.Match[str]) -> None:
    values = pairs(KEY_COLON, m["dump"])
    c.setting("speculative_method", as_text(values.get("method")))
    dump_settings(c, values)


def command(c: Collector, worker: str, m: re.Match[str]) -> None:
    values = flags("serve" + m["args"].replace(" -tp ", " --tensor-parallel-size "))
    values = {key: value for key, value in values.items() if value is not True or key in SWITCHES}
    dump_settings(c, values)


def setting(name: str, group: str, kind: Callable[[str], object] = int) -> Apply:
    def apply(c: Collector, worker: str, m: re.Match[str]) -> None:
        c.setting(name, kind(m[group]))
    return apply


def constant(name: str, value: object) -> Apply:
    def apply(c: Collector, worker: str, m: re.Match[str]) -> None:
        c.setting(name, value)
    return apply


def util_equivalent(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.setting("gpu_memory_utilization", number(m["util"]))
    c.setting("util_without_graph_profiling", number(m["without"]))
    if m["keep"]:
        c.setting("util_to_keep_kv_with_graph_profiling", number(m["keep"]))


def util_to_keep(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.setting("gpu_memory_utilization", number(m["util"]))
    c.setting("util_to_keep_kv_with_graph_profiling", number(m["keep"]))


SETTING_RULES = (
    Rule(ENGINE_RELEASE, setting("release", "release", str)),
    Rule(SERVER_RELEASE, setting("release", "release", str)),
    Rule(BANNER_RELEASE, setting("release", "release", str)),
    Rule(REPORT_RELEASE, setting("release", "release", str)),
    Rule(NON_DEFAULT, non_default),
    Rule(CONFIG_DUMP, config_dump),
    Rule(NAMESPACE, from_dump(KEY_EQUALS)),
    Rule(COMMAND, command),
    Rule(CHUNKED, setting("max_num_batched_tokens", "tokens")),
    Rule(RAISED_BATCH, setting("max_num_batched_tokens", "tokens")),
    Rule(MAX_MODEL_LEN, setting("max_model_len", "len")),
    Rule(DEVICE_NAME, setting("gpu_name", "gpu", str)),
    Rule(FLASHINFER_SAMPLER, constant("flashinfer_sampler", True)),
    Rule(NO_FLASHINFER_SAMPLER, constant("flashinfer_sampler", False)),
    Rule(UTIL_EQUIVALENT, util_equivalent),
    Rule(UTIL_TO_KEEP, util_to_keep),
)
