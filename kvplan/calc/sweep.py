"""Sweeps: one axis swept (context, batch or TP), compared along another (models, GPUs, KV dtypes,
TP sizes). Every point is one call of the single-point calculators, so a sweep's numbers are the
numbers `batch`, `size` and `fit` print. As in `batch` and `fit`, the engine runs with max_model_len
= max_len (default: the model's context), and as in `plan` with at most max_num_seqs requests at once; a point where it
does not start, or whose requests are longer than max_len, is a gap with its reason."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.draft import pool_model
from kvplan.calc.kv import paged_request_bytes, request_bytes, resolve_kv_format
from kvplan.calc.roofline import decode_roofline
from kvplan.calc.startup import startup
from kvplan import bounds
from kvplan.errors import InputError, KvplanError
from kvplan.results.sweep import SweepPoint, SweepResult
from kvplan.units import GIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

X_AXES = ("ctx", "batch", "tp")
METRICS = {
    "concurrency": "max concurrency, paged, capped at max_num_seqs (requests)",
    "kv_gib": "KV per request (GiB)",
    "tokens_per_s": "decode throughput (tokens/s)",
    "kv_pool_gib": "KV pool per GPU (GiB)",
    "weights_gib": "weights per GPU (GiB)",
    **{f"waste_{name}": f"KV memory wasted, {name} allocation (%)" for name in ("fixed", "exact", "doubling", "paged")},
}
WASTE_REQUESTS = 500  # chat requests simulated per point for the waste metrics


Value = bool | int | float | None  # a metric at a point: None where it does not apply (null in JSON)


def waste(model, budget, fmt, strategy: str, max_len: int, tp: int, pp: int) -> float | None:
    """The share of KV memory not holding tokens (%), simulated on chat requests up to max_len
    tokens, admitted under the budget's caps (max_num_seqs, max_num_batched_tokens) as `frag` admits
    them; None when the pool does not hold one request of max_len."""
    from kvplan.calc.frag import Caps, make_strategy, simulate, summarize
    from kvplan.specs.workloads import generate

    per_token = request_bytes(model, 1, fmt, tp, pp)
    capacity = budget.usable_pool_bytes // per_token
    if capacity < max_len:
        return None
    requests = generate("chat", WASTE_REQUESTS, 0, max_len)
    caps = Caps(budget.max_num_seqs, budget.max_num_batched_tokens)
    stats = simulate(make_strategy(strategy, capacity, max_len, budget.block_size), requests, caps=caps)
    return 100 * (1 - summarize(strategy, stats, requests, budget.block_size, max_len, per_token).live_share)


def point(model, gpu, ctx: int, batch: int | None, inputs: BudgetInputs, metric: str = "",
          max_len: int | None = None) -> dict[str, Value]:
    """Every metric at one point: the budget; requests of ctx tokens paged into it (`fitting`), of
    which the engine runs min(fitting, max_num_seqs) at once (`concurrency`); whether it starts with
    max_model_len = max_len (default: the model's context); the roofline at the batch (default: that
    concurrency); and, when asked for, the waste of one allocation strategy with max_len = ctx."""
    budget = memory_budget(model, gpu, inputs)
    model = pool_model(model, inputs.speculative_method, inputs.draft_model, inputs.num_speculative_tokens)  # + drafter
    fmt = resolve_kv_format(model, budget.kv_dtype)  # auto: the dtype the engine serves
    max_len = max_len or model.max_context
    fitting = budget.usable_pool_bytes // paged_request_bytes(model, ctx, fmt, inputs.tp, budget.block_size, inputs.pp)
    concurrency = min(fitting, budget.max_num_seqs)
    at = batch or concurrency
    roof = decode_roofline(model, gpu, budget, fmt, at, ctx) if at >= 1 else None
    values: dict[str, Value] = {
        "concurrency": concurrency, "fitting": fitting, "max_num_seqs": budget.max_num_seqs, "max_len": max_len,
        "starts": startup(model, budget, max_len).starts, "kv_gib": request_bytes(model, ctx, fmt) / GIB,
        "tokens_per_s": roof.tokens_per_s if roof else None, "kv_pool_gib": budget.usable_pool_bytes / GIB,
        "weights_gib": budget.weights_bytes / GIB, "compute_bound_batch": roof.compute_bound_batch if roof else None}
    if metric.startswith("waste_"):
        values[metric] = waste(model, budget, fmt, metric.removeprefix("waste_"), ctx, inputs.tp, inputs.pp)
    return values


def at_point(x_axis: str, x: int, ctx: int, batch: int | None,
             inputs: BudgetInputs) -> tuple[int, int | None, BudgetInputs]:
    """(context, batch, inputs) of the point at x on the swept axis."""
    if x_axis == "ctx":
        return x, batch, inputs
    if x_axis == "batch":
        return ctx, x, inputs
    return ctx, batch, replace(inputs, tp=x)


def one_point(label: str, model, gpu, x_axis: str, x: int, ctx: int, batch: int | None, inputs: BudgetInputs,
              metric: str, max_len: int | None) -> SweepPoint:
    """The point at x: its metrics, or the gap and its reason (a TP the heads do not allow, an engine
    that does not start, a batch that does not fit)."""
    at_ctx, at_batch, at_inputs = at_point(x_axis, x, ctx, batch, inputs)
    try:
        values = point(model, gpu, at_ctx, at_batch, at_inputs, metric, max_len)
    except KvplanError as err:
        return SweepPoint(series=label, x=x, value=None, fits=False, why=str(err), metrics={})
    why = _does_not_fit(values, at_ctx, at_batch)
    if why:
        values[metric] = None  # not priced: null in JSON, empty in CSV
    return SweepPoint(series=label, x=x, value=values[metric], fits=not why, why=why, metrics=values)


def sweep(series: list[tuple[str, ModelSpec, GpuSpec, BudgetInputs]], x_axis: str, xs: tuple[int, ...], ctx: int,
          batch: int | None, metric: str, max_len: int | None = None) -> SweepResult:
    """`series`: (label, model, gpu, inputs) per compared item; x swept over `xs`; the engine runs
    with max_model_len = max_len (default: each series' own, as a log states it, else its model's context)."""
    if metric not in METRICS:
        raise InputError(f"unknown metric '{metric}'; choose from {', '.join(METRICS)}")
    if x_axis not in X_AXES:
        raise InputError(f"cannot sweep '{x_axis}'; sweep one of {', '.join(X_AXES)}")
    if max_len is not None:
        bounds.tokens(max_len, "max_len")
    points: list[SweepPoint] = []
    marks: dict[str, dict[str, int]] = {}
    for label, model, gpu, inputs in series:
        own = max_len or inputs.max_model_len  # a series' own max_model_len: a log's (--from-log)
        mine = [one_point(label, model, gpu, x_axis, x, ctx, batch, inputs, metric, own) for x in xs]
        points.extend(mine)
        marks[label] = {"max_context": model.max_context, "max_len": own or model.max_context,
                        "compute_bound_batch": next((int(p.metrics.get("compute_bound_batch") or 0) for p in mine
                                                     if p.metrics.get("compute_bound_batch")), 0)}
    return SweepResult(x_axis=x_axis, ctx_tokens=None if x_axis == "ctx" else ctx, metric=metric,
                       metric_label=metric_label(metric, points), points=tuple(points), marks=marks)


def metric_label(metric: str, points: list[SweepPoint]) -> str:
    """The metric's label; for concurrency, the max_num_seqs it is capped at (each, when series differ)."""
    caps = sorted({int(p.metrics.get("max_num_seqs") or 0) for p in points if p.metrics})
    if metric != "concurrency" or not caps:
        return METRICS[metric]
    return METRICS[metric].replace("max_num_seqs", "max_num_seqs " + " / ".join(f"{c:,}" for c in caps))


def _does_not_fit(values: dict[str, Value], ctx: int, batch: int | None) -> str:
    """Why a point is not shown ("" when it is): the engine does not start at max_len, its requests
    are longer than max_len or do not fit the pool, or its batch does not fit or is above max_num_seqs."""
    max_len, fitting, seqs = int(values["max_len"] or 0), int(values["fitting"] or 0), int(values["max_num_seqs"] or 0)
    if not values["starts"]:
        return f"the engine does not start at max_len {max_len:,} (one request of it does not fit the pool)"
    if ctx > max_len:
        return f"its requests are longer than max_len {max_len:,} (the engine refuses them)"
    if fitting < 1:
        return f"no request of {ctx:,} tokens fits the pool"
    if batch is not None and batch > fitting:
        return f"a batch above {fitting:,} requests does not fit"
    if batch is not None and batch > seqs:
        return f"a batch above max_num_seqs {seqs:,} is not run at once"
    return ""
