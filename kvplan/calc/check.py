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
from kvplan.calc.frag import make_strategy, simulate, summarize
from kvplan.calc.kv import paged_request_bytes, request_bytes, resolve_kv_format
from kvplan.errors import KvplanError
from kvplan.calc.startup import startup
from kvplan.results.capacity import StartCheck
from kvplan.results.check import Outcome, ScenarioResult
from kvplan.specs.checkfile import Scenario
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.specs.workloads import generate
from kvplan.units import GIB, fmt_binary


@dataclass(frozen=True)
class Measured:
    fits: bool
    start: StartCheck
    concurrency: int
    kv_tokens: int
    kv_gib_per_request: float
    gpus: int
    weights_fraction: float
    max_len_concurrency: int


def measure(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> Measured:
    inputs = BudgetInputs(engine=s.engine, tp=s.tp, pp=s.pp, kv_dtype=s.kv_dtype, weights_dtype=s.weights_dtype,
                          util=s.util, block_size=s.block_size)
    budget = memory_budget(model, gpu, inputs)
    fmt = resolve_kv_format(model, s.kv_dtype)
    per_request = paged_request_bytes(model, s.peak_tokens, fmt, s.tp, budget.block_size, s.pp)
    pool = max(budget.kv_pool_bytes, 0)
    concurrency = pool // per_request if per_request else 0
    at_max = paged_request_bytes(model, s.max_model_len or s.ctx or model.max_context, fmt, s.tp, budget.block_size,
                                 s.pp)
    start = startup(model, budget, s.max_model_len or model.max_context)
    return Measured(
        fits=budget.weights_fit and concurrency >= 1 and start.starts, start=start, concurrency=concurrency,
        kv_tokens=budget.token_capacity,
        kv_gib_per_request=request_bytes(model, s.peak_tokens, fmt) / GIB, gpus=s.tp * s.pp * s.replicas,
        weights_fraction=budget.weights_bytes / budget.total_bytes, max_len_concurrency=pool // at_max if at_max else 0)


@lru_cache(maxsize=256)
def paged_utilization(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> float:
    """The live share of memory under paging, simulated on the scenario's workload."""
    budget = memory_budget(model, gpu, BudgetInputs(engine=s.engine, tp=s.tp, pp=s.pp, kv_dtype=s.kv_dtype,
                                                    weights_dtype=s.weights_dtype, util=s.util))
    per_token = request_bytes(model, 1, resolve_kv_format(model, s.kv_dtype), s.tp, s.pp)
    capacity = max(budget.kv_pool_bytes, 0) // per_token
    if capacity < budget.block_size:
        return 0.0
    max_len = s.ctx or model.max_context
    requests = generate(s.workload, s.requests, 0, max_len)
    stats = simulate(make_strategy("paged", capacity, max_len, budget.block_size), requests)
    return summarize("paged", stats, requests, budget.block_size, max_len, per_token).live_share


def _outcomes(model: ModelSpec, gpu: GpuSpec, s: Scenario, m: Measured) -> list[Outcome]:
    e, out = s.expect, []

    def add(name: str, expected: str, actual: str, passed: bool) -> None:
        out.append(Outcome(expectation=name, expected=expected, actual=actual, passed=passed))

    if not m.start.starts:  # checked for every scenario: nothing else holds if the engine will not start
        add("starts", f"max_model_len {m.start.max_model_len:,}",
            f"needs {fmt_binary(m.start.needed_bytes)}, pool {fmt_binary(m.start.kv_pool_bytes)}", False)

    if e.fits is not None:
        add("fits", str(e.fits).lower(), str(m.fits).lower(), m.fits == e.fits)
    if e.min_concurrency is not None:
        add("min_concurrency", f">= {e.min_concurrency:,}", f"{m.concurrency:,}", m.concurrency >= e.min_concurrency)
    if e.min_kv_tokens is not None:
        add("min_kv_tokens", f">= {e.min_kv_tokens:,}", f"{m.kv_tokens:,}", m.kv_tokens >= e.min_kv_tokens)
    if e.max_kv_gib_per_request is not None:
        add("max_kv_gib_per_request", f"<= {e.max_kv_gib_per_request:g}", f"{m.kv_gib_per_request:.3f}",
            m.kv_gib_per_request <= e.max_kv_gib_per_request)
    if e.max_gpus is not None:
        add("max_gpus", f"<= {e.max_gpus}", str(m.gpus), m.gpus <= e.max_gpus)
    if e.max_weights_fraction is not None:
        add("max_weights_fraction", f"<= {e.max_weights_fraction:g}", f"{m.weights_fraction:.3f}",
            m.weights_fraction <= e.max_weights_fraction)
    if e.min_paged_utilization is not None:
        util = paged_utilization(model, gpu, s)
        add("min_paged_utilization", f">= {e.min_paged_utilization:g}", f"{util:.3f}", util >= e.min_paged_utilization)
    if e.no_preemption:
        seqs = s.max_num_seqs or 256  # vLLM's default max_num_seqs on most GPUs
        add("no_preemption", f"{seqs:,} requests of {s.max_model_len or s.ctx or model.max_context:,} tokens fit",
            f"{m.max_len_concurrency:,} fit", m.max_len_concurrency >= seqs)
    return out


def _suggest(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> tuple[str, dict, int] | None:
    """(in words, as scenario fields, the concurrency then): the first single change, in this order,
    after which every expectation passes."""
    changes = []
    start = measure(model, gpu, s).start
    if not start.starts and start.largest_max_model_len >= s.peak_tokens:
        changes.append((f"max_model_len: {start.largest_max_model_len}", dict(max_model_len=start.largest_max_model_len)))
    changes += [("kv_dtype: fp8", dict(kv_dtype="fp8"))] if s.kv_dtype not in ("fp8", "int4") else []
    changes += [(f"tp: {tp}", dict(tp=tp)) for tp in (2, 4, 8) if tp > s.tp]
    changes += [(f"weights_dtype: {d}", dict(weights_dtype=d)) for d in ("fp8", "int4") if s.weights_dtype != d]
    for label, update in changes:
        try:
            trial = s.model_copy(update=update)
            m = measure(model, gpu, trial)
            if all(o.passed for o in _outcomes(model, gpu, trial, m)):
                return f"passes with {label}: {m.concurrency:,} requests", update, m.concurrency
        except KvplanError:
            continue
    return None


def evaluate(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> ScenarioResult:
    m = measure(model, gpu, s)
    outcomes = _outcomes(model, gpu, s, m)
    passed = all(o.passed for o in outcomes)
    words, fix, fixed = (None if passed else _suggest(model, gpu, s)) or (None, None, None)
    return ScenarioResult(name=s.name, model=model.name, model_origin=model.origin, gpu=gpu.name, tp=s.tp, pp=s.pp,
                          passed=passed, outcomes=tuple(outcomes), suggestion=words, fix=fix, fix_concurrency=fixed,
                          ignored_flags=s.ignored_flags)
