"""Evaluate capacity scenarios against their expectations, offline and deterministically.

For each scenario: the engine's KV pool on one GPU of a tp x pp replica (calc.budget), requests of
the scenario's peak length paged into it (calc.kv), and where asked the paged utilization of a
simulated workload (calc.frag). Every failed expectation is explained by the closest single change
that would make the whole scenario pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from kvplan.calc.budget import BudgetInputs, default_batch_limits, memory_budget
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
    max_num_seqs: int  # the scenario's, else the engine's default for the GPU
    max_len: int  # the request length no_preemption is judged at
    pool_bytes: int
    block_size: int


def measure(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> Measured:
    inputs = BudgetInputs(engine=s.engine, tp=s.tp, pp=s.pp, kv_dtype=s.kv_dtype, weights_dtype=s.weights_dtype,
                          util=s.util, block_size=s.block_size, max_num_batched_tokens=s.max_num_batched_tokens,
                          max_num_seqs=s.max_num_seqs)
    budget = memory_budget(model, gpu, inputs)
    if s.cpu_offload_gib:  # vLLM keeps up to cpu_offload_gb GiB of each GPU's weights on the host
        resident = max(budget.weights_bytes - int(s.cpu_offload_gib * GIB), 0)
        budget = memory_budget(model, gpu, replace(inputs, weights_bytes=resident))
    fmt = resolve_kv_format(model, s.kv_dtype)
    per_request = paged_request_bytes(model, s.peak_tokens, fmt, s.tp, budget.block_size, s.pp)
    pool = max(budget.kv_pool_bytes, 0)
    concurrency = pool // per_request if per_request else 0
    max_len = s.max_model_len or s.ctx or model.max_context
    at_max = paged_request_bytes(model, max_len, fmt, s.tp, budget.block_size, s.pp)
    seqs = s.max_num_seqs or default_batch_limits(gpu, budget.total_bytes)[1]
    start = startup(model, budget, s.max_model_len or model.max_context)
    return Measured(
        fits=budget.weights_fit and concurrency >= 1 and start.starts, start=start, concurrency=concurrency,
        kv_tokens=budget.token_capacity,
        kv_gib_per_request=request_bytes(model, s.peak_tokens, fmt) / GIB, gpus=s.tp * s.pp * s.replicas,
        weights_fraction=budget.weights_bytes / budget.total_bytes, max_len_concurrency=pool // at_max if at_max else 0,
        max_num_seqs=seqs, max_len=max_len, pool_bytes=pool, block_size=budget.block_size)


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


def _suggest(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> tuple[str, dict, int] | None:
    """(in words, as scenario fields, the concurrency then): the first single change, in this order,
    after which every expectation passes; for preemption, both of its fixes where both work."""
    measured = measure(model, gpu, s)
    start = measured.start
    passing = [(label, update, m.concurrency) for label, update in _preemption_fixes(model, s, measured)
               if (m := _passes(model, gpu, s, update)) is not None]
    if passing:
        words = " or ".join(f"{label}: {seqs:,} requests" for label, _, seqs in passing)
        return f"passes with {words}", passing[0][1], passing[0][2]
    for label, update in _other_fixes(s, start):
        if (m := _passes(model, gpu, s, update)) is not None:
            return f"passes with {label}: {m.concurrency:,} requests", update, m.concurrency
    return None


def _passes(model: ModelSpec, gpu: GpuSpec, s: Scenario, update: dict) -> Measured | None:
    try:
        trial = s.model_copy(update=update)
        m = measure(model, gpu, trial)
    except KvplanError:
        return None
    return m if all(o.passed for o in _outcomes(model, gpu, trial, m)) else None


def _preemption_fixes(model: ModelSpec, s: Scenario, m: Measured) -> list[tuple[str, dict]]:
    """The two settings that stop preemption: fewer sequences, or shorter ones that all fit."""
    if not s.expect.no_preemption or m.max_len_concurrency >= m.max_num_seqs:
        return []
    fixes = []
    if m.max_len_concurrency >= 1:
        fixes.append((f"--max-num-seqs {m.max_len_concurrency}", dict(max_num_seqs=m.max_len_concurrency)))
    longest = _longest_len(model, s, m)
    if longest >= 1:
        shorter = dict(max_model_len=longest, **({"ctx": longest} if s.ctx and s.ctx > longest else {}))
        fixes.append((f"--max-model-len {longest}", shorter))
    return fixes


def _other_fixes(s: Scenario, start: StartCheck) -> list[tuple[str, dict]]:
    changes = []
    if not start.starts and start.largest_max_model_len >= s.peak_tokens:
        changes.append((f"max_model_len: {start.largest_max_model_len}", dict(max_model_len=start.largest_max_model_len)))
    changes += [("kv_dtype: fp8", dict(kv_dtype="fp8"))] if s.kv_dtype not in ("fp8", "int4") else []
    changes += [(f"tp: {tp}", dict(tp=tp)) for tp in (2, 4, 8) if tp > s.tp]
    changes += [(f"weights_dtype: {d}", dict(weights_dtype=d)) for d in ("fp8", "int4") if s.weights_dtype != d]
    return changes


def _longest_len(model: ModelSpec, s: Scenario, m: Measured) -> int:
    """The longest max_model_len at which max_num_seqs requests of it fit the pool (0 if none):
    a binary search over the paged request size, which grows with the length."""
    fmt = resolve_kv_format(model, s.kv_dtype)
    block = m.block_size
    share = m.pool_bytes // m.max_num_seqs
    lo, hi = 0, m.max_len
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if paged_request_bytes(model, mid, fmt, s.tp, block, s.pp) <= share:
            lo = mid
        else:
            hi = mid - 1
    return lo


def evaluate(model: ModelSpec, gpu: GpuSpec, s: Scenario) -> ScenarioResult:
    m = measure(model, gpu, s)
    outcomes = _outcomes(model, gpu, s, m)
    passed = all(o.passed for o in outcomes)
    words, fix, fixed = (None if passed else _suggest(model, gpu, s)) or (None, None, None)
    return ScenarioResult(name=s.name, model=model.name, model_origin=model.origin, gpu=gpu.name, tp=s.tp, pp=s.pp,
                          passed=passed, outcomes=tuple(outcomes), suggestion=words, fix=fix, fix_concurrency=fixed,
                          ignored_flags=s.ignored_flags)
