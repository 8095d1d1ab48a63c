"""The real start-up logs of tests/fixtures/engine_logs/, read as kvplan reads them: each fixture's
source and logged figures (SOURCES.yaml), how kvplan plans the ones it can describe (kvplan.yaml for
vLLM, kvplan-sglang.yaml, kvplan-trtllm.yaml), the token capacity its logged KV memory holds (an
interval: the log rounds the memory to two decimals), and what kvplan predicts from what a user knows
before launch. tests/test_engine_logs.py asserts it; examples/bench_accuracy.py prints it."""

from __future__ import annotations

from pathlib import Path

import yaml

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.draft import pool_model
from kvplan.calc.kv import layers_kv, resolve_kv_format
from kvplan.calc.kvgroups import tokens_for_kv_bytes
from kvplan.errors import KvplanError
from kvplan.results.capacity import MemoryBudget
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.units import GIB

LOGS = Path(__file__).parent / "fixtures" / "engine_logs"
SOURCES: dict[str, dict] = {e["file"]: e for e in yaml.safe_load((LOGS / "SOURCES.yaml").read_text())}
PLANNED: list[dict] = [
    {**entry, "engine": engine}
    for engine, name in (("vllm", "kvplan.yaml"), ("sglang", "kvplan-sglang.yaml"), ("trtllm", "kvplan-trtllm.yaml"))
    for entry in yaml.safe_load((LOGS / name).read_text())]


def known(name: str) -> dict:
    """What a fixture's log states (`logged:`), and what is known beside it (`given:`: its command
    line, the issue's title or the engine's default, which the log does not print)."""
    return {**SOURCES[name].get("given", {}), **SOURCES[name]["logged"]}


def version(planned: dict) -> tuple[int, ...]:
    return tuple(int(part) for part in str(planned["release"]).split(".")[:3])


def per_token_bytes(model, planned: dict) -> int:
    """K and V of every layer on one GPU, for one token (SGLang's cell, TensorRT-LLM's per-token size)."""
    fmt = resolve_kv_format(model, planned.get("kv_dtype", "auto"))
    return sum(layer.bytes_per_token for layer in layers_kv(model, 1, fmt, planned.get("tp", 1), 1,
                                                            planned.get("pp", 1)))


def as_served(model, planned: dict):
    """The model as the log's engine holds it: the MTP drafter's decoder layers (speculative_method mtp:
    the spec's mtp_layers, Qwen3.5's mtp_num_hidden_layers, full attention of the model's shape, each
    registering a KV cache of its own, kvplan/calc/draft.py: 'Add 3 padding layers' for 16 + 1 full
    layers beside 48 GDN ones) and the recurrent state's dtype the checkpoint's config sets (ssm_dtype:
    mamba_ssm_dtype, read by vLLM's Qwen3_5 config)."""
    model = pool_model(model, planned.get("speculative_method"), None, planned.get("num_speculative_tokens", 0))
    ssm = planned.get("ssm_dtype")
    if not ssm:
        return model
    layers = [g.model_copy(update={"ssm_dtype": ssm}) if g.kind == "gdn" else g for g in model.layers]
    return model.model_copy(update={"layers": layers})


def logged_interval(model, planned: dict) -> tuple[int, int] | None:
    """The tokens the logged KV memory holds at either end of its rounding (x.xx GiB +- 0.005; SGLang's
    K and V sizes +- 0.005 each), by the engine's own layout; None where kvplan cannot lay it out."""
    logged = known(planned["file"])
    tp, pp = planned.get("tp", 1), planned.get("pp", 1)
    if planned["engine"] == "sglang":
        if "k_size_gb" in logged:
            kv, spread = logged["k_size_gb"] + logged["v_size_gb"], 0.01
        elif "kv_cache_gib" in logged:  # MLA: "KV size: X GB", the tokens counted x the layout's bytes
            kv, spread = logged["kv_cache_gib"], 0.005
        else:  # bench_latency prints no pool line
            return None
        per = per_token_bytes(model, planned)
        return int((kv - spread) * GIB) // per, int((kv + spread) * GIB) // per
    if planned["engine"] == "trtllm":
        per_block = logged.get("tokens_per_block", 32)  # KvCacheConfig's default where the log prints none
        block = per_block * per_token_bytes(model, planned)
        ends = [int((logged["kv_cache_gib"] + d) * GIB) // block * per_block for d in (-0.005, 0.005)]
        return ends[0], ends[1]
    if "kv_cache_gib" not in logged:  # V0 before 0.6.4 prints its block count, not the memory that holds it
        return None
    model = as_served(model, planned)
    fmt = resolve_kv_format(model, planned.get("kv_dtype", "auto"))
    release = engine_entry(f"vllm=={planned['release']}")
    spec, caching = planned.get("num_speculative_tokens", 0), planned.get("prefix_caching")
    block = release.default_block_size(model, None, fmt, tp, num_spec=spec, prefix_caching=caching)
    count = dict(tp=tp, pp=pp, max_model_len=logged.get("max_model_len"),
                 # the log's own line where vLLM raised it ("Raising max_num_batched_tokens ... to 2496")
                 max_num_batched_tokens=planned.get("max_num_batched_tokens", 8192),
                 per_concurrency=release.tokens_rule == "concurrency",  # from 0.20.1: concurrency x max_model_len
                 newer_rule=version(planned) >= (0, 12),  # from 0.12: the group-size ratio
                 block_size=block, num_spec=spec,
                 state_pages=release.state_pages_per_request(model, None, block_size=block, num_spec=spec,
                                                             max_model_len=logged.get("max_model_len") or 0,
                                                             prefix_caching=caching))
    ends = [tokens_for_kv_bytes(model, int((logged["kv_cache_gib"] + d) * GIB), fmt, **count) for d in (-0.005, 0.005)]
    return None if None in ends else (ends[0], ends[1])  # type: ignore[return-value]


def before_launch(planned: dict) -> BudgetInputs:
    """What a user knows before launch: the release, the model, GPU and parallelism, and what the
    command line sets (or the log's non-default args, written as one); nothing the engine measured."""
    entry = SOURCES[planned["file"]]
    release = planned.get("release")  # a log naming none (SGLang's main) is planned as kvplan does: the newest preset
    logged, key = known(planned["file"]), f"{planned['engine']}=={release}" if release else planned["engine"]
    settings: dict = {}
    if entry.get("command"):
        command = entry["command"].split(" (")[0]  # a note on where the line comes from, in parentheses
        try:
            settings, _ = engine_entry(key).read_command(command)
        except KvplanError:  # a command that is not one line of this engine (a build step, prose)
            settings = {}
    util = settings.get("util", logged.get("gpu_memory_utilization", logged.get("mem_fraction_static",
                  # TensorRT-LLM: the fraction its executor was given, or trtllm-bench's "KV Memory Percentage"
                  logged.get("free_gpu_memory_fraction", logged.get("kv_memory_percentage")))))
    return BudgetInputs(engine=key, tp=planned.get("tp", 1), pp=planned.get("pp", 1), util=util,
                        weights_dtype=planned.get("weights_dtype", "auto"), kv_dtype=planned.get("kv_dtype", "auto"),
                        max_model_len=logged.get("max_model_len", logged.get("context_len", settings.get("max_model_len"))),
                        max_num_seqs=settings.get("max_num_seqs", logged.get("max_num_seqs")),
                        max_num_batched_tokens=settings.get("max_num_batched_tokens", logged.get("max_num_batched_tokens")),
                        sampler=planned.get("sampler", settings.get("sampler")),
                        num_speculative_tokens=planned.get("num_speculative_tokens", 0),
                        prefix_caching=planned.get("prefix_caching"), speculative_method=planned.get("speculative_method"),
                        # TensorRT-LLM: tokens per block are the engine build's, known before launch
                        block_size=logged.get("tokens_per_block") if planned["engine"] == "trtllm" else None)


def predicted(catalog, planned: dict) -> MemoryBudget | None:
    """kvplan's budget from before_launch, where the fixture's GPU is one kvplan holds."""
    if not planned.get("gpu"):
        return None
    return memory_budget(catalog.model(planned["model"]), catalog.gpu(planned["gpu"]), before_launch(planned))


def error(value: float, logged: float) -> float:
    return (value - logged) / logged
