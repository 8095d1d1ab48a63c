"""Evaluate capacity scenarios against their expectations, offline and deterministically.

For each scenario: the engine's KV pool on one GPU of a tp x pp replica (calc.budget), requests of
the scenario's peak length paged into it (calc.kv), and where asked the paged utilization of a
simulated workload (calc.frag). Every failed expectation is explained by the closest single change
that would make the whole scenario pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.draft import pool_model
from kvplan.calc.fixes import single_changes
from kvplan.calc.frag import make_strategy, simulate, summarize
from kvplan.calc.kv import paged_request_bytes, request_bytes, resolve_kv_format
from kvplan.calc.search import largest_true
from kvplan.calc.startup import startup
from kvplan.errors import KvplanError
from kvplan.results.capacity import StartCheck
from kvplan.results.check import CheckReport, Outcome, ScenarioFix, ScenarioResult
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.checkfile import Scenario
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.specs.workloads import generate
from kvplan.units import GIB, fmt_binary


@dataclass(frozen=True)
class ScenarioFigures:
    """What the model computes for a scenario: the figures its expectations are judged on."""

    fits: bool
    start: StartCheck
    concurrency: int
    kv_tokens: int
    kv_gib_per_request: float
    gpus: int
    weights_fraction: float
    max_len_concurrency: int
    max_num_seqs: int  # the scenario's, else the engine's default for the GPU
    max_len: int  # the request length no_preemption is judged at
    pool_bytes: int
    block_size: int
    kv_dtype: str  # as the budget resolved it (auto: the dtype the engine serves)


def _bytes(gib: float | None) -> int | None:
    return None if gib is None else round(gib * GIB)


def scenario_inputs(s: Scenario) -> BudgetInputs:
    return BudgetInputs(speculative_method=s.speculative_method, draft_model=s.draft_spec,
                        draft_weights_bytes=_bytes(s.draft_weights_gib),engine=s.engine, tp=s.tp, pp=s.pp, kv_dtype=s.kv_dtype, weights_dtype=s.weights_dtype,
                        util=s.util, block_size=s.block_size, max_num_batched_tokens=s.max_num_batched_tokens,
                        max_num_seqs=s.max_num_seqs, allow_long_max_len=s.allow_long_max_len,
                        max_model_len=s.max_model_len, sampler=s.sampler, chunked_prefill=s.chunked_prefill,
                        num_speculative_tokens=s.num_speculative_tokens, gpu_mem_bytes=_bytes(s.gpu_mem_gib),
                        weights_bytes=_bytes(s.weights_gib), activation_bytes=_bytes(s.activation_gib),
                        overhead_bytes=_bytes(s.overhead_gib), enable_lora=s.enable_lora or s.lora_gib is not None,
                        max_loras=s.max_loras, max_lora_rank=s.max_lora_rank, max_cpu_loras=s.max_cpu_loras,
                        lora_bytes=_bytes(s.lora_gib), mm_encoder_tp_mode=s.mm_encoder_tp_mode,
                        limit_mm_per_prompt=tuple(s.limit_mm_per_prompt.items()) if s.limit_mm_per_prompt else None,
                        cpu_offload_gib=s.cpu_offload_gib, kv_offload_gib=s.kv_offload_gib,
                        kv_offload_backend=s.kv_offload_backend, kv_offload_disk_gib=s.kv_offload_disk_gib,
                        hicache_ratio=s.hicache_ratio, hicache_size_gb=s.hicache_size_gb,
                        disaggregation_mode=s.disaggregation_mode)


def figures(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> ScenarioFigures:
    inputs = scenario_inputs(s)
    budget = memory_budget(model, gpu, inputs)
    # vLLM's cpu_offload_gb (weights on the host) is out of the budget's weights already (calc/budget.py _on_host)
    model = pool_model(model, s.speculative_method, s.draft_spec, s.num_speculative_tokens)  # a drafter's KV layers
    fmt = resolve_kv_format(model, budget.kv_dtype)
    per_request = paged_request_bytes(model, s.peak_tokens, fmt, s.tp, budget.block_size, s.pp)
    pool = budget.usable_pool_bytes
    seqs = budget.max_num_seqs
    # the engine runs max_num_seqs requests at most, whatever the pool holds (as plan and sweep count)
    concurrency = min(pool // per_request, seqs) if per_request else 0
    max_len = s.max_model_len or s.ctx or model.max_context
    at_max = paged_request_bytes(model, max_len, fmt, s.tp, budget.block_size, s.pp)
    start = startup(model, budget, s.max_model_len or model.max_context)
    return ScenarioFigures(
        fits=budget.weights_fit and concurrency >= 1 and start.starts, start=start, concurrency=concurrency,
        kv_tokens=budget.token_capacity,
        kv_gib_per_request=request_bytes(model, s.peak_tokens, fmt) / GIB, gpus=s.tp * s.pp * s.replicas,
        weights_fraction=budget.weights_bytes / budget.total_bytes, max_len_concurrency=pool // at_max if at_max else 0,
        max_num_seqs=seqs, max_len=max_len, pool_bytes=pool, block_size=budget.block_size,
        kv_dtype=budget.kv_dtype)


@lru_cache(maxsize=256)
def paged_utilization(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> float:
    """The live share of memory under paging, simulated on the scenario's workload."""
    budget = memory_budget(model, gpu, BudgetInputs(engine=s.engine, tp=s.tp, pp=s.pp, kv_dtype=s.kv_dtype,
                                                    weights_dtype=s.weights_dtype, util=s.util))
    per_token = request_bytes(model, 1, resolve_kv_format(model, budget.kv_dtype), s.tp, s.pp)
    capacity = budget.usable_pool_bytes // per_token
    if capacity < budget.block_size:
        return 0.0
    max_len = s.ctx or model.max_context
    requests = generate(s.workload, s.requests, 0, max_len)
    stats = simulate(make_strategy("paged", capacity, max_len, budget.block_size), requests)
    return summarize("paged", stats, requests, budget.block_size, max_len, per_token).live_share


def _outcomes(model: ModelSpec, gpu: GpuSpec, s: Scenario, m: ScenarioFigures) -> list[Outcome]:
    e, out = s.expect, []

    def add(name: str, expected: str, actual: str, passed: bool, bound=None, value=None) -> None:
        out.append(Outcome(expectation=name, expected=expected, actual=actual, passed=passed, bound=bound,
                           value=value))

    if not m.start.starts:  # checked for every scenario: nothing else holds if the engine will not start
        add("starts", f"max_model_len {m.start.max_model_len:,}",
            f"needs {fmt_binary(m.start.needed_bytes)}, pool {fmt_binary(m.start.kv_pool_bytes)}", False,
            m.start.max_model_len, m.start.largest_max_model_len)

    if e.fits is not None:
        add("fits", str(e.fits).lower(), str(m.fits).lower(), m.fits == e.fits, e.fits, m.fits)
    if e.min_concurrency is not None:
        add("min_concurrency", f">= {e.min_concurrency:,}", f"{m.concurrency:,}", m.concurrency >= e.min_concurrency,
            e.min_concurrency, m.concurrency)
    if e.min_kv_tokens is not None:
        add("min_kv_tokens", f">= {e.min_kv_tokens:,}", f"{m.kv_tokens:,}", m.kv_tokens >= e.min_kv_tokens, e.min_kv_tokens,
            m.kv_tokens)
    if e.max_kv_gib_per_request is not None:
        add("max_kv_gib_per_request", f"<= {e.max_kv_gib_per_request:g}", f"{m.kv_gib_per_request:.3f}",
            m.kv_gib_per_request <= e.max_kv_gib_per_request, e.max_kv_gib_per_request, m.kv_gib_per_request)
    if e.max_gpus is not None:
        add("max_gpus", f"<= {e.max_gpus}", str(m.gpus), m.gpus <= e.max_gpus, e.max_gpus, m.gpus)
    if e.max_weights_fraction is not None:
        add("max_weights_fraction", f"<= {e.max_weights_fraction:g}", f"{m.weights_fraction:.3f}",
            m.weights_fraction <= e.max_weights_fraction, e.max_weights_fraction, m.weights_fraction)
    if e.min_paged_utilization is not None:
        util = paged_utilization(model, gpu, s)
        add("min_paged_utilization", f">= {e.min_paged_utilization:g}", f"{util:.3f}", util >= e.min_paged_utilization,
            e.min_paged_utilization, util)
    if e.no_preemption:
        add("no_preemption", f">= {m.max_num_seqs:,} at {m.max_len:,}", f"{m.max_len_concurrency:,}", m.max_len_concurrency >= m.max_num_seqs, m.max_num_seqs,
            m.max_len_concurrency)
    return out


def _fixes(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> list[ScenarioFix]:
    """Both fixes of preemption where both pass; else the first single change, in the order of
    calc.fixes, after which every expectation passes."""
    m = figures(model, gpu, s)
    passing = [ScenarioFix(settings=update, concurrency=fixed.concurrency)
               for update in _preemption_fixes(model, s, m) if (fixed := _passes(model, gpu, s, update)) is not None]
    if passing:
        return passing
    wanted = s.expect.min_concurrency
    if wanted is not None and m.concurrency == m.max_num_seqs < wanted:  # the pool holds more than the engine runs
        if (fixed := _passes(model, gpu, s, dict(max_num_seqs=wanted))) is not None:
            return [ScenarioFix(settings=dict(max_num_seqs=wanted), concurrency=fixed.concurrency)]
    start = m.start
    shorter = start.largest_max_model_len if not start.starts and start.largest_max_model_len >= s.peak_tokens else None
    for change in single_changes(tp=s.tp, kv_dtype=s.kv_dtype, weights_dtype=s.weights_dtype,
                                 largest_max_model_len=shorter):
        if (fixed := _passes(model, gpu, s, change.settings)) is not None:
            return [ScenarioFix(settings=change.settings, concurrency=fixed.concurrency)]
    return []


def _passes(model: ModelSpec, gpu: GpuSpec, s: Scenario, update: dict) -> ScenarioFigures | None:
    try:
        trial = s.model_copy(update=update)
        m = figures(model, gpu, trial)
    except KvplanError:
        return None
    return m if all(o.passed for o in _outcomes(model, gpu, trial, m)) else None


def _preemption_fixes(model: ModelSpec, s: Scenario, m: ScenarioFigures) -> list[dict]:
    """The two settings that stop preemption: fewer sequences, or shorter ones that all fit."""
    if not s.expect.no_preemption or m.max_len_concurrency >= m.max_num_seqs:
        return []
    fixes: list[dict] = []
    if m.max_len_concurrency >= 1:
        fixes.append(dict(max_num_seqs=m.max_len_concurrency))
    longest = _longest_len(model, s, m)
    if longest >= 1:
        fixes.append(dict(max_model_len=longest, **({"ctx": longest} if s.ctx and s.ctx > longest else {})))
    return fixes


def _longest_len(model: ModelSpec, s: Scenario, m: ScenarioFigures) -> int:
    """The longest max_model_len at which max_num_seqs requests of it fit the pool (0 if none)."""
    fmt = resolve_kv_format(model, m.kv_dtype)
    share = m.pool_bytes // m.max_num_seqs
    return max(largest_true(lambda n: paged_request_bytes(model, n, fmt, s.tp, m.block_size, s.pp) <= share,
                            1, m.max_len), 0)


def evaluate(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> ScenarioResult:
    m = figures(model, gpu, s)
    outcomes = _outcomes(model, gpu, s, m)
    passed = all(o.passed for o in outcomes)
    fixes = [] if passed else _fixes(model, gpu, s)
    first = fixes[0] if fixes else None
    return ScenarioResult(name=s.name, model=model.name, model_origin=model.origin, gpu=gpu.name, tp=s.tp, pp=s.pp,
                          passed=passed, outcomes=tuple(outcomes), fixes=tuple(fixes),
                          fix=first.settings if first else None, fix_concurrency=first.concurrency if first else None,
                          ignored_flags=s.ignored_flags, engine=engine_entry(s.engine).display_name,
                          command_settings=dict(s.command_settings))


def report(results: list[ScenarioResult]) -> CheckReport:
    failed = sum(not r.passed for r in results)
    return CheckReport(passed=len(results) - failed, failed=failed, scenarios=tuple(results))
