"""TensorRT-LLM's start-up lines (the C++ runtime's "[TensorRT-LLM][INFO]" lines and trtllm-bench's
engine summary) read into figures; each regex quotes a fixture line. Its "GB" and "MB" step by 1024
(cpp/tensorrt_llm/runtime/memoryCounters.cpp, doubleBytesToString)."""

from __future__ import annotations

import re

from .collect import Collector, Rule, build, integer, number, run_rules
from .common import Line
from .startup import LoggedStartup

MISSING = "no 'Allocated ... GiB for max tokens in paged KV cache' or 'blocks in KV cache primary pool' line"
UNIT_GIB = {"KB": 1 / 1024**2, "KiB": 1 / 1024**2, "MB": 1 / 1024, "MiB": 1 / 1024, "GB": 1.0, "GiB": 1.0}

# "Memory usage when calculating max tokens in paged kv cache: total: 79.10 GiB, available: 63.62 GiB"
MEMORY_USAGE = re.compile(r"Memory usage when calculating max tokens in paged kv cache: total: (?P<total>\d+(?:\.\d+)?) GiB, "
                          r"available: (?P<available>\d+(?:\.\d+)?) GiB")
# "Number of blocks in KV cache primary pool: 4607"
PRIMARY_BLOCKS = re.compile(r"Number of blocks in KV cache primary pool: (?P<blocks>\d+)")
# "Number of tokens per block: 64."
TOKENS_PER_BLOCK = re.compile(r"Number of tokens per block: (?P<tokens>\d+)")
# "[MemUsageChange] Allocated 62.99 GiB for max tokens in paged KV cache (294848)."
KV_ALLOCATED = re.compile(r"Allocated (?P<gib>\d+(?:\.\d+)?) GiB for max tokens in paged KV cache \((?P<tokens>\d+)\)")
# "Loaded engine size: 6214 MiB"
ENGINE_SIZE = re.compile(r"Loaded engine size: (?P<mib>\d+(?:\.\d+)?) MiB")
# "[MemUsageChange] Allocated 928.77 MiB for execution context memory."
EXECUTION_CONTEXT = re.compile(r"Allocated (?P<mib>\d+(?:\.\d+)?) MiB for execution context memory")
# "[MemUsageChange] Allocated 1.14 GB GPU memory for runtime buffers." / "Allocated 43.29 MB GPU memory for decoder."
GPU_ALLOCATION = re.compile(r"Allocated (?P<amount>\d+(?:\.\d+)?) (?P<unit>[KMG]i?B) GPU memory for (?P<what>runtime buffers|decoder)")
# "Engine version 0.12.0.dev2024073000 found in the config file" / "TensorRT-LLM Version:   0.12.0.dev2024073000"
# / "[TensorRT-LLM] TensorRT-LLM version: 0.20.0"
RELEASE = re.compile(r"(?:Engine version|TensorRT[- ]LLM [Vv]ersion:)\s+(?P<release>\d[\w.+-]*)")
# The PyTorch backend (no built engine): "[TRT-LLM] [I] max_seq_len=157, max_num_requests=4096, max_num_tokens=23552"
TORCH_LIMITS = re.compile(r"max_seq_len=(?P<len>\d+), max_num_requests=(?P<seqs>\d+), max_num_tokens=(?P<tokens>\d+)")
# "[TRT-LLM] [I] Rank 0 uses 8.46 GB for model weights." (GiB: the PyTorch backend divides by 1024^3)
TORCH_WEIGHTS = re.compile(r"Rank (?P<rank>\d+) uses (?P<gib>\d+(?:\.\d+)?) GB for model weights")
# "Both free_gpu_memory_fraction and max_tokens are set (to 0.800000011920929 and 860308, respectively)."
FRACTION_AND_TOKENS = re.compile(r"Both free_gpu_memory_fraction and max_tokens are set \(to (?P<fraction>\d+(?:\.\d+)?) and "
                                 r"(?P<tokens>\d+)")
# "Peak memory during memory usage profiling (torch + non-torch): 13.11 GiB, available KV cache memory when
# calculating max tokens: 5.95 GiB, fraction is set 0.9, kv size is 73728. device total memory 119.70 GiB"
TORCH_PEAK = re.compile(r"Peak memory during memory usage profiling \(torch \+ non-torch\): [\d.]+ GiB, available KV "
                        r"cache memory when calculating max tokens: [\d.]+ GiB, fraction is set (?P<fraction>[\d.]+), "
                        r"kv size is \d+\. device total memory (?P<total>[\d.]+) GiB")
# "Rank 0 prefetching /root/.cache/huggingface/hub/models--nvidia--Llama-3.1-8B-Instruct-FP8/snapshots/026c.../x.safetensors"
HF_CACHE_PATH = re.compile(r"/models--(?P<org>[^/\s]+?)--(?P<name>[^/\s]+)/snapshots/")
# "TRTGptModel maxSequenceLen: 4098", "TRTGptModel maxNumSequences: 4096", "TRTGptModel maxNumTokens: 8192"
TRT_MODEL = re.compile(r"TRTGptModel (?P<key>maxSequenceLen|maxNumSequences|maxNumTokens): (?P<value>\d+)")
# trtllm-bench's summary: "Model:                  meta-llama/Llama-2-7b-hf", "KV Cache Dtype:         FP8",
# "TP Size:                1", "Max Sequence Length:    4098", "KV Memory Percentage:   99.0%"
SUMMARY = re.compile(r"^(?P<key>Model|Dtype|KV Cache Dtype|Quantization|Max Sequence Length|TP Size|PP Size|"
                     r"Max Runtime Batch Size|Max Runtime Tokens|KV Memory Percentage):\s+(?P<value>\S+)$")

# trtllm-serve's limits over a build's: "[TRT-LLM] [I] Overriding max_batch_size from build_config to 64"
OVERRIDING = re.compile(r"Overriding (?P<key>max_batch_size|max_seq_len|max_num_tokens) from build_config to (?P<value>\d+)")
# "[TRT-LLM] [I] Using LLM with AutoDeploy backend": its cache manager's "Allocated 0.00 GiB for max tokens in paged
# KV cache (N)" is a placeholder's, before AutoDeploy resizes the cache itself
AUTODEPLOY = re.compile(r"Using LLM with AutoDeploy backend")
# "[TRT-LLM] [I] Using LLM with PyTorch backend" (the LLM API's choice: no built engine)
TORCH_BACKEND = re.compile(r"Using LLM with PyTorch backend")

OVERRIDE_NAMES = {"max_batch_size": "max_num_seqs", "max_seq_len": "max_model_len", "max_num_tokens": "max_num_batched_tokens"}
TRT_NAMES = {"maxSequenceLen": "max_model_len", "maxNumSequences": "max_num_seqs",
             "maxNumTokens": "max_num_batched_tokens"}
SUMMARY_NAMES = {"Model": "model", "Dtype": "dtype", "KV Cache Dtype": "kv_cache_dtype",
                 "Quantization": "quantization", "Max Sequence Length": "max_model_len", "TP Size": "tp",
                 "PP Size": "pp", "Max Runtime Batch Size": "max_num_seqs", "Max Runtime Tokens": "max_num_batched_tokens"}
SUMMARY_INTS = {"max_model_len", "tp", "pp", "max_num_seqs", "max_num_batched_tokens"}


def torch_limits(c: Collector, worker: str, m: re.Match[str]) -> None:
    """The limits each KV cache manager is built with: the last line is the served cache's (the
    estimation pass before it caps max_seq_len to its own small pool)."""
    c.setting("trtllm_backend", "pytorch")
    c.final("max_model_len", int(m["len"]))
    c.final("max_num_seqs", int(m["seqs"]))
    c.final("max_num_batched_tokens", int(m["tokens"]))


def fraction_and_tokens(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.setting("kv_memory_fraction", round(number(m["fraction"]), 6))
    c.final("kv_max_tokens", int(m["tokens"]))


def torch_weights(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.setting("trtllm_backend", "pytorch")
    c.figure(worker, "weights_gib", number(m["gib"]))


def torch_peak(c: Collector, worker: str, m: re.Match[str]) -> None:
    """The profiling run ends: the KV cache allocated before it was the estimation pass's (a pool of
    about max_num_tokens, freed now), not the one served (KvCacheCreator.build_managers)."""
    c.setting("trtllm_backend", "pytorch")
    c.setting("kv_memory_fraction", round(number(m["fraction"]), 6))
    c.figure(worker, "total_gpu_gib", number(m["total"]))
    c.pools = [pool for pool in c.pools if pool["worker"] != worker]
    c.workers.get(worker, {}).pop("kv_cache_gib", None)


def memory_usage(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.figure(worker, "total_gpu_gib", number(m["total"]))
    c.figure(worker, "free_after_weights_gib", number(m["available"]))


def primary_blocks(c: Collector, worker: str, m: re.Match[str]) -> None:
    c.pool(worker, blocks=int(m["blocks"]))
    c.setting("num_gpu_blocks", int(m["blocks"]))


def kv_allocated(c: Collector, worker: str, m: re.Match[str]) -> None:
    """The pool's size completes the pool its block count opened (or opens one of its own)."""
    if not c.pools or c.pools[-1].get("tokens") is not None:
        c.pool(worker)
    c.pools[-1].update(gib=number(m["gib"]), tokens=integer(m["tokens"]))
    c.figure(worker, "kv_cache_gib", number(m["gib"]))


def gpu_allocation(c: Collector, worker: str, m: re.Match[str]) -> None:
    name = "runtime_buffers_gib" if m["what"] == "runtime buffers" else "decoder_gib"
    c.setting(name, round(number(m["amount"]) * UNIT_GIB[m["unit"]], 6))


def summary(c: Collector, worker: str, m: re.Match[str]) -> None:
    key, value = m["key"], m["value"]
    if key == "KV Memory Percentage":
        c.setting("kv_memory_fraction", round(number(value.rstrip("%")) / 100, 6))
    elif SUMMARY_NAMES[key] in SUMMARY_INTS:
        c.setting(SUMMARY_NAMES[key], int(value) if value.isdigit() else None)
    else:
        c.setting(SUMMARY_NAMES[key], value if key == "Model" else value.lower())


RULES = (
    Rule(MEMORY_USAGE, memory_usage),
    Rule(PRIMARY_BLOCKS, primary_blocks),
    Rule(TOKENS_PER_BLOCK, lambda c, worker, m: c.setting("block_size", int(m["tokens"]))),
    Rule(KV_ALLOCATED, kv_allocated),
    Rule(ENGINE_SIZE, lambda c, worker, m: c.setting("engine_mib", number(m["mib"]))),
    Rule(EXECUTION_CONTEXT, lambda c, worker, m: c.setting("execution_context_mib", number(m["mib"]))),
    Rule(GPU_ALLOCATION, gpu_allocation),
    Rule(RELEASE, lambda c, worker, m: c.setting("release", m["release"])),
    Rule(TRT_MODEL, lambda c, worker, m: c.setting(TRT_NAMES[m["key"]], int(m["value"]))),
    Rule(SUMMARY, summary),
    Rule(TORCH_LIMITS, torch_limits),
    Rule(TORCH_WEIGHTS, torch_weights),
    Rule(FRACTION_AND_TOKENS, fraction_and_tokens),
    Rule(TORCH_PEAK, torch_peak),
    Rule(HF_CACHE_PATH, lambda c, worker, m: c.setting("model", f"{m['org']}/{m['name']}")),
    Rule(OVERRIDING, lambda c, worker, m: c.final(OVERRIDE_NAMES[m["key"]], int(m["value"]))),
    Rule(AUTODEPLOY, lambda c, worker, m: c.setting("trtllm_backend", "autodeploy")),
    Rule(TORCH_BACKEND, lambda c, worker, m: c.setting("trtllm_backend", "pytorch")),
)


def read_trtllm(lines: list[Line], where: str) -> LoggedStartup:
    """A TensorRT-LLM log's settings, memory and pool; SpecError where it states no KV figure."""
    collected = run_rules(lines, RULES, Collector())
    if collected.settings.get("trtllm_backend") == "pytorch":
        # KvCacheCreator passes its own estimate as max_tokens (the min of it and any user cap), so the
        # "Both free_gpu_memory_fraction and max_tokens are set" warning names no cap of the user's
        collected.settings.pop("kv_max_tokens", None)
    if collected.settings.get("trtllm_backend") == "autodeploy":  # a placeholder's 0.00 GiB is no pool's size
        collected.pools = [{k: v for k, v in pool.items() if k != "gib"} for pool in collected.pools]
        for figures in collected.workers.values():
            if figures.get("kv_cache_gib") == 0:
                del figures["kv_cache_gib"]
    return build("trtllm", where, collected, MISSING)
