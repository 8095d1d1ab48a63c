"""`fit` (does one GPU hold the model and its KV, and if not, what would) and `plan` (the smallest
deployment for N concurrent requests at a context, across TP, PP and replicas)."""

from __future__ import annotations

from dataclasses import replace

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.capacity import max_context
from kvplan.calc.kv import paged_request_bytes, resolve_kv_format
from kvplan.errors import InputError, KvplanError
from kvplan.results.base import Step
from kvplan.results.capacity import Deployment, FitResult, Knob, MemoryBudget, PlanResult
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import ceil_div, fmt_binary

TP_SIZES = (1, 2, 4, 8, 16, 32, 64)
PP_SIZES = (1, 2, 4, 8, 16)


def _concurrency(model: ModelSpec, budget: MemoryBudget, ctx: int) -> tuple[int, int]:
    """(requests of `ctx` tokens that fit the pool, paged bytes of one on one GPU)."""
    fmt = resolve_kv_format(model, budget.kv_dtype)
    per_request = paged_request_bytes(model, ctx, fmt, budget.tp, budget.block_size, budget.pp)
    return max(budget.kv_pool_bytes, 0) // per_request, per_request


def _knob(model: ModelSpec, gpu: GpuSpec, ctx: int, inputs: BudgetInputs, change: str, flags: str,
          **update) -> Knob | None:
    try:
        budget = memory_budget(model, gpu, replace(inputs, **update))
    except KvplanError:
        return None  # e.g. a TP the heads do not allow
    n, _ = _concurrency(model, budget, ctx)
    return Knob(change=change, flags=flags, kv_pool_bytes=budget.kv_pool_bytes, concurrency=n, fits=n >= 1)


def _knobs(model: ModelSpec, gpu: GpuSpec, ctx: int, inputs: BudgetInputs, budget: MemoryBudget) -> list[Knob]:
    knobs = [_knob(model, gpu, ctx, inputs, f"tensor parallel {tp}", f"--tp {tp}", tp=tp)
             for tp in TP_SIZES if inputs.tp < tp <= 8]
    if budget.kv_dtype not in ("fp8", "int4"):
        knobs.append(_knob(model, gpu, ctx, inputs, "fp8 KV cache", "--kv-dtype fp8", kv_dtype="fp8"))
    for dtype in ("fp8", "int4"):
        if inputs.weights_dtype != dtype:
            knobs.append(_knob(model, gpu, ctx, inputs, f"{dtype} weights", f"--weights-dtype {dtype}",
                               weights_dtype=dtype))
    longest = max_context(model, resolve_kv_format(model, budget.kv_dtype), budget, 1)
    if 0 < longest < ctx:
        knobs.append(Knob(change=f"context {longest:,} tokens", flags=f"--ctx {longest}",
                          kv_pool_bytes=budget.kv_pool_bytes, concurrency=1, fits=True))
    return [k for k in knobs if k is not None]


def fit(model: ModelSpec, gpu: GpuSpec, ctx: int, inputs: BudgetInputs = BudgetInputs()) -> FitResult:
    if ctx < 1:
        raise InputError(f"--ctx {ctx} must be at least 1")
    budget = memory_budget(model, gpu, inputs)
    n, per_request = _concurrency(model, budget, ctx)
    used = n * per_request
    if not budget.weights_fit:
        verdict = (f"does not fit: weights alone take {fmt_binary(budget.weights_bytes)} of "
                   f"{fmt_binary(budget.total_bytes)}")
    elif n < 1:
        short = per_request - max(budget.kv_pool_bytes, 0)
        verdict = f"does not fit: no room for one {ctx:,}-token request ({fmt_binary(short)} short)"
    else:
        verdict = f"fits: {n:,} concurrent requests of {ctx:,} tokens"
    knobs = _knobs(model, gpu, ctx, inputs, budget) if n < 1 else []
    return FitResult(model=model.name, model_origin=model.origin, gpu=gpu.name, ctx_tokens=ctx, budget=budget, bytes_per_request=per_request,
                     concurrency=n, kv_used_bytes=used, free_bytes=max(budget.kv_pool_bytes, 0) - used,
                     fits=n >= 1, verdict=verdict, knobs=tuple(knobs))


def _deployments(model: ModelSpec, gpu: GpuSpec, n: int, ctx: int, inputs: BudgetInputs, per_node: int):
    for tp in TP_SIZES:
        if tp > per_node:
            break  # tensor parallelism stays inside a node
        for pp in PP_SIZES:
            if pp > model.num_layers:
                break
            try:
                budget = memory_budget(model, gpu, replace(inputs, tp=tp, pp=pp))
            except KvplanError:
                continue
            per_replica, per_request = _concurrency(model, budget, ctx)
            if per_replica < 1:
                continue
            replicas = ceil_div(n, per_replica)
            gpus = replicas * tp * pp
            yield Deployment(kv_dtype=budget.kv_dtype, tp=tp, pp=pp, concurrency_per_replica=per_replica,
                             replicas=replicas, gpus=gpus, nodes=ceil_div(gpus, per_node),
                             kv_pool_bytes_per_gpu=budget.kv_pool_bytes, bytes_per_request_per_gpu=per_request)


def plan(model: ModelSpec, gpu: GpuSpec, concurrency: int, ctx: int, kv_dtypes: tuple[str, ...] = ("auto",),
         inputs: BudgetInputs = BudgetInputs(), gpus_per_node: int = 8) -> PlanResult:
    """Per KV dtype, the deployment with the fewest GPUs (then the smallest replica) serving
    `concurrency` requests of `ctx` tokens at once."""
    if concurrency < 1 or ctx < 1 or gpus_per_node < 1:
        raise InputError("--concurrency, --ctx and --gpus-per-node must be at least 1")
    best, candidates, infeasible = [], [], []
    for kv_dtype in kv_dtypes:  # bad settings (dtype, engine, util) are errors, not infeasible plans
        memory_budget(model, gpu, replace(inputs, kv_dtype=kv_dtype, tp=1, pp=1))
        options = list(_deployments(model, gpu, concurrency, ctx, replace(inputs, kv_dtype=kv_dtype), gpus_per_node))
        if not options:
            infeasible.append(f"KV {kv_dtype}: no TP <= {gpus_per_node} x PP <= {PP_SIZES[-1]} holds one "
                              f"{ctx:,}-token request")
            continue
        options.sort(key=lambda d: (d.gpus, d.tp * d.pp, d.pp))
        best.append(options[0])
        candidates.extend(options)
    return PlanResult(model=model.name, model_origin=model.origin, gpu=gpu.name, concurrency=concurrency, ctx_tokens=ctx,
                      gpus_per_node=gpus_per_node, best=tuple(best), candidates=tuple(candidates),
                      infeasible=tuple(infeasible),
                      explain=tuple(step for d in best for step in _explain(d, concurrency, gpus_per_node)))


def _explain(d: Deployment, n: int, per_node: int) -> list[Step]:
    name = f"{d.kv_dtype} TP{d.tp} x PP{d.pp}"
    return [
        Step(label=f"{name}: requests per replica",
             formula=f"floor({max(d.kv_pool_bytes_per_gpu, 0):,} B pool / {d.bytes_per_request_per_gpu:,} B per request)",
             value=f"{d.concurrency_per_replica:,}"),
        Step(label=f"{name}: replicas", formula=f"ceil({n:,} / {d.concurrency_per_replica:,})", value=f"{d.replicas:,}"),
        Step(label=f"{name}: GPUs", formula=f"{d.replicas:,} x {d.tp} x {d.pp}", value=f"{d.gpus:,}"),
        Step(label=f"{name}: nodes", formula=f"ceil({d.gpus:,} / {per_node})", value=f"{d.nodes:,}"),
    ]
