"""`kvplan fit`: one GPU (or a TP x PP replica) for a model, its whole memory breakdown, whether the
engine starts at max_len, whether it serves the concurrency asked for, and, when not, what would
(more TP, more replicas, fp8 KV, quantized weights, a shorter max_len), each with its numbers."""

from __future__ import annotations

from dataclasses import replace

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.fixes import Change, single_changes
from kvplan.calc.kv import paged_request_bytes, resolve_kv_format
from kvplan.calc.startup import startup
from kvplan import bounds
from kvplan.errors import KvplanError
from kvplan.results.capacity import FitResult, Knob, MemoryBudget, StartCheck
from kvplan.specs.engines import Deploy
from kvplan.specs.engines import engine as engine_entry
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import ceil_div, fmt_binary


def concurrency(model: ModelSpec, budget: MemoryBudget, ctx: int) -> tuple[int, int]:
    """(requests of `ctx` tokens that fit the pool, paged bytes of one on one GPU)."""
    fmt = resolve_kv_format(model, budget.kv_dtype)
    per_request = paged_request_bytes(model, ctx, fmt, budget.tp, budget.block_size, budget.pp)
    return budget.usable_pool_bytes // per_request, per_request


def engine_command(model: ModelSpec, budget: MemoryBudget, max_len: int, max_num_seqs: int) -> str:
    """The command that starts the engine of `budget` so ("" for an engine with no command)."""
    deploy = Deploy(model=model.hf_repo or model.name, tp=budget.tp, pp=budget.pp, max_len=max_len, util=budget.util,
                    kv_dtype=budget.kv_dtype, max_num_seqs=max_num_seqs)
    return engine_entry(budget.engine).write_command(deploy)


def _knob(model: ModelSpec, gpu: GpuSpec, ctx: int, max_len: int, target: int, inputs: BudgetInputs,
          change: Change) -> Knob | None:
    settings = dict(change.settings)
    max_len = int(settings.pop("max_model_len", max_len))
    try:
        budget = memory_budget(model, gpu, replace(inputs, **settings))  # type: ignore[arg-type]
    except KvplanError:
        return None  # e.g. a TP the heads do not allow
    n, _ = concurrency(model, budget, ctx)
    starts = startup(model, budget, max_len).starts
    return Knob(change=change.label, fix=change.settings, kv_pool_bytes=budget.kv_pool_bytes, concurrency=n,
                fits=starts and n >= target)


def _knobs(model: ModelSpec, gpu: GpuSpec, ctx: int, max_len: int, target: int, inputs: BudgetInputs,
           budget: MemoryBudget, start: StartCheck) -> list[Knob]:
    shorter = start.largest_max_model_len if not start.starts and start.largest_max_model_len >= ctx else None
    changes = single_changes(tp=inputs.tp, kv_dtype=budget.kv_dtype, weights_dtype=inputs.weights_dtype,
                             largest_max_model_len=shorter)
    knobs = [_knob(model, gpu, ctx, max_len, target, inputs, change) for change in changes]
    n, _ = concurrency(model, budget, ctx)
    if start.starts and 1 <= n < target:
        replicas = ceil_div(target, n)
        knobs.append(Knob(change=f"{replicas} replicas ({replicas * budget.tp * budget.pp} GPUs)",
                          fix={"replicas": replicas}, kv_pool_bytes=budget.kv_pool_bytes, concurrency=n * replicas,
                          fits=True))
    return [k for k in knobs if k is not None]


def _verdict(budget: MemoryBudget, start: StartCheck, n: int, per_request: int, ctx: int, target: int) -> str:
    if not budget.weights_fit:
        return (f"does not fit: weights alone take {fmt_binary(budget.weights_bytes)} of "
                f"{fmt_binary(budget.total_bytes)}")
    if n < 1:
        short = per_request - budget.usable_pool_bytes
        return f"does not fit: no room for one {ctx:,}-token request ({fmt_binary(short)} short)"
    if not start.starts:
        return f"will not start: {start.engine} refuses it, {start.reason}"
    if n < target:
        return f"does not fit: {n:,} of the {target:,} concurrent requests of {ctx:,} tokens"
    return f"fits: {n:,} concurrent requests of {ctx:,} tokens" + (f" (of {target:,} asked)" if target > 1 else "")


def fit(model: ModelSpec, gpu: GpuSpec, ctx: int, inputs: BudgetInputs = BudgetInputs(), *,
        max_len: int | None = None, target: int = 1) -> FitResult:
    bounds.tokens(ctx, "ctx")
    bounds.requests(target, "target")
    if max_len is not None:
        bounds.tokens(max_len, "max_len")
    max_len = max_len or model.max_context
    budget = memory_budget(model, gpu, inputs)
    n, per_request = concurrency(model, budget, ctx)
    start = startup(model, budget, max_len)
    fits = start.starts and n >= target
    knobs = [] if fits else _knobs(model, gpu, ctx, max_len, target, inputs, budget, start)
    seqs = budget.max_num_seqs
    return FitResult(model=model.name, model_origin=model.origin, gpu=gpu.name, ctx_tokens=ctx, max_len=max_len,
                     target_concurrency=target, budget=budget, bytes_per_request=per_request, concurrency=n,
                     kv_used_bytes=n * per_request, free_bytes=budget.usable_pool_bytes - n * per_request,
                     held_back_bytes=max(budget.total_bytes - budget.weights_bytes - budget.activation_bytes
                                         - budget.overhead_bytes - budget.usable_pool_bytes, 0),
                     start=start, fits=fits, verdict=_verdict(budget, start, n, per_request, ctx, target),
                     knobs=tuple(knobs), command=engine_command(model, budget, max_len, min(seqs, n) if n else seqs))
