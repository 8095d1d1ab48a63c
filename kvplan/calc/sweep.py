"""Sweeps: one axis swept (context, batch or TP), compared along another (models, GPUs, KV dtypes,
TP sizes). Every point is one call of the single-point calculators, so a sweep's numbers are the
numbers `batch`, `size` and `fit` print."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kv import paged_request_bytes, request_bytes, resolve_kv_format
from kvplan.calc.roofline import decode_roofline
from kvplan.calc.startup import startup
from kvplan.errors import InputError, KvplanError
from kvplan.results.sweep import SweepPoint, SweepResult
from kvplan.units import GIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

X_AXES = ("ctx", "batch", "tp")
METRICS = {
    "concurrency": "max concurrency, paged (requests)",
    "kv_gib": "KV per request (GiB)",
    "tokens_per_s": "decode throughput (tokens/s)",
    "kv_pool_gib": "KV pool per GPU (GiB)",
    "weights_gib": "weights per GPU (GiB)",
    **{f"waste_{name}": f"KV memory wasted, {name} allocation (%)" for name in ("fixed", "exact", "doubling", "paged")},
}
WASTE_REQUESTS = 500  # chat requests simulated per point for the waste metrics


def waste(model, budget, fmt, strategy: str, max_len: int, tp: int, pp: int) -> float:
    """The share of KV memory not holding tokens, simulated on chat requests up to max_len tokens,
    admitted under the budget's caps (max_num_seqs, max_num_batched_tokens) as `frag` admits them."""
    from kvplan.calc.frag import Caps, make_strategy, simulate, summarize
    from kvplan.specs.workloads import generate

    per_token = request_bytes(model, 1, fmt, tp, pp)
    capacity = budget.usable_pool_bytes // per_token
    if capacity < max_len:
        return math.nan
    requests = generate("chat", WASTE_REQUESTS, 0, max_len)
    caps = Caps(budget.max_num_seqs, budget.max_num_batched_tokens)
    stats = simulate(make_strategy(strategy, capacity, max_len, budget.block_size), requests, caps=caps)
    return 100 * (1 - summarize(strategy, stats, requests, budget.block_size, max_len, per_token).live_share)


def point(model, gpu, ctx: int, batch: int | None, inputs: BudgetInputs, metric: str = "") -> dict[str, float]:
    """Every metric at one point: the budget, requests of ctx tokens paged into it, the roofline
    (and, when asked for, the waste of one allocation strategy with max_len = ctx)."""
    budget = memory_budget(model, gpu, inputs)
    fmt = resolve_kv_format(model, budget.kv_dtype)
    per_request = paged_request_bytes(model, ctx, fmt, inputs.tp, budget.block_size, inputs.pp)
    concurrency = budget.usable_pool_bytes // per_request
    at = batch or concurrency
    roof = decode_roofline(model, gpu, budget, fmt, at, ctx) if at >= 1 else None
    values = {"concurrency": concurrency, "starts": float(startup(model, budget, ctx).starts),
              "kv_gib": request_bytes(model, ctx, fmt) / GIB,
              "tokens_per_s": roof.tokens_per_s if roof else 0.0, "kv_pool_gib": budget.usable_pool_bytes / GIB,
              "weights_gib": budget.weights_bytes / GIB, "compute_bound_batch": roof.compute_bound_batch if roof else 0}
    if metric.startswith("waste_"):
        values[metric] = waste(model, budget, fmt, metric.removeprefix("waste_"), ctx, inputs.tp, inputs.pp)
    return values


def sweep(series: list[tuple[str, ModelSpec, GpuSpec, BudgetInputs]], x_axis: str, xs: tuple[int, ...], ctx: int,
          batch: int | None, metric: str) -> SweepResult:
    """`series`: (label, model, gpu, inputs) per compared item; x swept over `xs`."""
    if metric not in METRICS:
        raise InputError(f"unknown metric '{metric}'; choose from {', '.join(METRICS)}")
    if x_axis not in X_AXES:
        raise InputError(f"cannot sweep '{x_axis}'; sweep one of {', '.join(X_AXES)}")
    points, marks = [], {}
    for label, model, gpu, inputs in series:
        for x in xs:
            at_ctx, at_batch, at_inputs = ctx, batch, inputs
            if x_axis == "ctx":
                at_ctx = x
            elif x_axis == "batch":
                at_batch = x
            else:
                at_inputs = replace(inputs, tp=x)
            try:
                values = point(model, gpu, at_ctx, at_batch, at_inputs, metric)
                why = _does_not_fit(values, at_batch)
            except KvplanError as err:
                values, why = None, str(err)  # e.g. a TP the heads do not allow: a gap, with its reason
            shown = values is not None and not why
            value = values[metric] if values is not None and shown else math.nan
            points.append(SweepPoint(series=label, x=x, value=value, fits=shown, why=why, metrics=values or {}))
        marks[label] = {"max_context": model.max_context,
                        "compute_bound_batch": next((p.metrics.get("compute_bound_batch", 0) for p in points
                                                     if p.series == label and p.metrics), 0)}
    return SweepResult(x_axis=x_axis, ctx_tokens=None if x_axis == "ctx" else ctx, metric=metric,
                       metric_label=METRICS[metric], points=tuple(points), marks=marks)


def _does_not_fit(values: dict, batch: int | None) -> str:
    """Why a point is not shown: the engine does not start at max_len = its context, or its batch
    does not fit the pool ("" when it fits)."""
    if not values["starts"]:
        return "the engine does not start (one request of this context does not fit)"
    if batch is not None and batch > values["concurrency"]:
        return f"a batch above {int(values['concurrency']):,} requests does not fit"
    return ""
