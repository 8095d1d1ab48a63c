"""The start-up log reader (kvplan.specs.enginelog) against the real logs of tests/fixtures/engine_logs/:
every figure SOURCES.yaml records by hand under `logged:` is what read_log reads from the raw text,
and the model, release, tp and max_model_len where the log states them. Hand-written small logs pin
the cases users paste: wrapped lines, colours, interleaved workers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from engine_fixtures import LOGS, SOURCES
from kvplan.errors import SpecError
from kvplan.specs.enginelog import LoggedStartup, read_log

Get = Callable[[LoggedStartup], object]


def per_worker(name: str) -> Get:
    """A worker figure, one value per worker that states it (a SOURCES list), or the one value."""
    def get(s: LoggedStartup) -> object:
        values = tuple(getattr(w, name) for w in s.workers if getattr(w, name) is not None)
        return values[0] if len(set(values)) == 1 else values
    return get


def memory(name: str) -> Get:
    return lambda s: getattr(s.memory, name)


def setting(name: str) -> Get:
    return lambda s: getattr(s, name)


# SOURCES.yaml's keys (written by several hands, in each engine's own words) -> what read_log returns.
# SGLang's "GB" and vLLM V0's "GB" are GiB (kvplan/specs/enginelog/startup.py says where each divides).
KEYS: dict[str, Get] = {
    "weights_gib": memory("weights_gib"), "weights_gb": memory("weights_gib"),
    "weights_gb_per_rank": per_worker("weights_gib"), "draft_weights_gb": memory("draft_weights_gib"),
    "kv_cache_gib": memory("kv_cache_gib"), "kv_cache_size_gib": memory("kv_cache_gib"),
    "kv_cache_bytes": memory("kv_cache_bytes"),
    "kv_tokens": setting("kv_tokens"), "kv_tokens_capacity": setting("kv_tokens"),
    "max_total_num_tokens": setting("kv_tokens"),
    "max_concurrency": setting("max_concurrency"),
    "max_model_len": setting("max_model_len"), "context_len": setting("max_model_len"),
    "gpu_memory_utilization": setting("gpu_memory_utilization"), "mem_fraction_static": setting("mem_fraction_static"),
    "kv_memory_percentage": setting("kv_memory_fraction"),
    "num_gpu_blocks": setting("num_gpu_blocks"), "kv_blocks": setting("num_gpu_blocks"),
    "num_cpu_blocks": setting("num_cpu_blocks"), "tokens_per_block": setting("block_size"),
    "cuda_graph_gib": memory("cuda_graph_gib"), "cuda_graph_actual_gib": memory("cuda_graph_gib"),
    "cuda_graph_gb": memory("cuda_graph_gib"), "cuda_graph_decode_gb": memory("cuda_graph_gib"),
    "cuda_graph_estimated_gib": memory("cuda_graph_estimated_gib"),
    "activation_gib": memory("activation_gib"),
    "non_torch_gib": memory("non_torch_gib"), "non_torch_memory_gib": memory("non_torch_gib"),
    "total_gpu_gib": memory("total_gpu_gib"), "total_gpu_memory_gib": memory("total_gpu_gib"),
    "total_gib": memory("total_gpu_gib"),
    "instance_can_use_gib": memory("requested_gib"), "requested_gib": memory("requested_gib"),
    "initial_memory_usage_gib": memory("initial_memory_usage_gib"),
    "peak_torch_memory_gib": memory("peak_torch_memory_gib"),
    "memory_usage_post_profile_gib": memory("memory_usage_post_profile_gib"),
    "kv_dtype": setting("kv_cache_dtype"),
    "kv_needed_for_max_model_len_gib": setting("kv_needed_gib"),
    "estimated_max_model_len": setting("estimated_max_model_len"),
    "gpu_memory_utilization_equivalent_without_cudagraph_profiling": setting("util_without_graph_profiling"),
    "padding_layers": setting("padding_layers"), "mamba_cache_blocks": setting("mamba_cache_blocks"),
    "avail_before_weights_gb": memory("free_at_start_gib"),
    "avail_after_weights_gb": per_worker("free_after_weights_gib"),
    "free_after_load_gib": memory("free_after_weights_gib"),
    "available_gpu_mem_gb": memory("free_after_graphs_gib"),
    "memory_pool_end_avail_gb": lambda s: s.pool_end_free_gib if len(s.pool_end_free_gib) > 1 else s.pool_end_free_gib[0],
    "k_size_gb": lambda s: s.pools[0].k_gib, "v_size_gb": lambda s: s.pools[0].v_gib,
    "kv_tokens_target_pool": lambda s: s.pools[0].tokens,
    "kv_tokens_swa_or_draft_pools": lambda s: {p.tokens for p in s.pools[1:]}.pop(),
    "chunked_prefill_size": setting("chunked_prefill_size"), "max_prefill_tokens": setting("max_prefill_tokens"),
    "max_running_requests": setting("max_num_seqs"),
    "engine_mib": setting("engine_mib"), "execution_context_mib": setting("execution_context_mib"),
    "runtime_buffers_gb": setting("runtime_buffers_gib"), "decoder_gb": setting("decoder_gib"),
}
# Keys naming one worker: "free_on_startup_gib_tp1" is TP1's "Free memory on device" figure.
WORKER_KEYS = {"free_on_startup_gib": "free_at_start_gib", "weights_plus_non_torch_gib": "weights_and_non_torch_gib",
               "kv_cache_in_use_gib": "kv_cache_gib"}
# The 0.10.0 TP 8 logs: SOURCES records rank 0's figures and first pool pair (its notes say so), where the
# binding worker is the one with the least KV memory (asserted apart below).
RANK0_RECORDED = {"vllm-0.10.0-qwen3-235b-a22b-fp8-h100-tp8-1.log", "vllm-0.10.0-qwen3-32b-h100-tp8-1.log"}


def getter(key: str) -> Get:
    if match := re.fullmatch(r"(?P<name>\w+)_tp(?P<rank>\d+)", key):
        return lambda s: getattr(s.worker(f"TP{match['rank']}"), WORKER_KEYS[match["name"]])
    return KEYS[key]


def expected(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


@pytest.fixture(scope="module")
def parsed() -> dict[str, LoggedStartup]:
    return {name: read_log((LOGS / name).read_text(), name) for name in SOURCES}


def test_every_fixture_is_read_as_its_engine(parsed):
    assert len(parsed) == len(SOURCES) == 78
    assert all(parsed[name].engine == entry["engine"] for name, entry in SOURCES.items())


CASES = [(name, key) for name, entry in SOURCES.items() for key in entry["logged"]]


@pytest.mark.parametrize("name, key", CASES, ids=[f"{n}:{k}" for n, k in CASES])
def test_every_logged_figure_is_read(parsed, name, key):
    startup, value = parsed[name], expected(SOURCES[name]["logged"][key])
    if name in RANK0_RECORDED and key in ("kv_cache_gib", "kv_tokens", "max_concurrency"):
        got = {"kv_cache_gib": startup.worker("rank=0").kv_cache_gib, "kv_tokens": startup.pools[0].tokens,
               "max_concurrency": startup.pools[0].max_concurrency}[key]
    else:
        got = getter(key)(startup)
    assert got == value, (name, key, got, value)
