"""`kvplan fit`: one GPU (or a TP x PP replica) for a model, its whole memory breakdown, whether the
engine starts at max_len, whether it serves the concurrency asked for, and, when not, what would
(more TP, more replicas, fp8 KV, quantized weights, a shorter max_len), each with its numbers."""

from __future__ import annotations

from dataclasses import replace

from kvplan.calc.budget import BudgetInputs, default_batch_limits, memory_budget
from kvplan.calc.commands import sglang_command, vllm_command
from kvplan.calc.kv import paged_request_bytes, resolve_kv_format
from kvplan.calc.startup import startup
from kvplan.errors import InputError, KvplanError
from kvplan.results.capacity import FitResult, Knob, MemoryBudget, StartCheck
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import ceil_div, fmt_binary

TP_CHOICES = (2, 4, 8)


def concurrency(model: ModelSpec, budget: MemoryBudget, ctx: int) -> tuple[int, int]:
    """(requests of `ctx` tokens that fit the pool, paged bytes of one on one GPU)."""
    fmt = resolve_kv_format(model, budget.kv_dtype)
    per_request = paged_request_bytes(model, ctx, fmt, budget.tp, budget.block_size, budget.pp)
    return max(budget.kv_pool_bytes, 0) // per_request, per_request


def engine_command(model: ModelSpec, budget: MemoryBudget, max_len: int, max_num_seqs: int) -> str:
    build = sglang_command if budget.engine == "sglang" else vllm_command
    return build(model, budget.tp, budget.pp, max_len, budget.util, budget.kv_dtype, max_num_seqs)


def _knob(model, gpu, ctx, max_len, target, inputs, change, flags, **update) -> Knob | None:
    try:
        budget = memory_budget(model, gpu, replace(inputs, **update))
    except KvplanError:
        return None  # e.g. a TP the heads do not allow
    n, _ = concurrency(model, budget, ctx)
    starts = startup(model, budget, update.get("max_len", max_len)).starts
    return Knob(change=change, flags=flags, kv_pool_bytes=budget.kv_pool_bytes, concurrency=n,
                fits=starts and n >= target)


def _knobs(model, gpu, ctx, max_len, target, inputs, budget, start: StartCheck) -> list[Knob]:
    knob = lambda change, flags, **update: _knob(model, gpu, ctx, max_len, target, inputs, change, flags,  # noqa: E731
                                                 **update)
    knobs = [knob(f"tensor parallel {tp}", f"--tp {tp}", tp=tp) for tp in TP_CHOICES if inputs.tp < tp]
    if budget.kv_dtype not in ("fp8", "int4"):
        knobs.append(knob("fp8 KV cache", "--kv-dtype fp8", kv_dtype="fp8"))
    knobs += [knob(f"{dtype} weights", f"--weights-dtype {dtype}", weights_dtype=dtype)
              for dtype in ("fp8", "int4") if inputs.weights_dtype != dtype]
    n, _ = concurrency(model, budget, ctx)
    if start.starts and 1 <= n < target:
        replicas = ceil_div(target, n)
        knobs.append(Knob(change=f"{replicas} replicas ({replicas * budget.tp * budget.pp} GPUs)", flags="",
                          kv_pool_bytes=budget.kv_pool_bytes, concurrency=n * replicas, fits=True))
    if not start.starts and start.largest_max_model_len >= ctx:
        knobs.append(Knob(change=f"max_len {start.largest_max_model_len:,}",
                          flags=f"--max-len {start.largest_max_model_len}", kv_pool_bytes=budget.kv_pool_bytes,
                          concurrency=n, fits=n >= target))
    return [k for k in knobs if k is not None]


def _verdict(budget: MemoryBudget, start: StartCheck, n: int, per_request: int, ctx: int, target: int) -> str:
    engine = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM"}.get(budget.engine, "the engine")
    if not budget.weights_fit:
        return (f"does not fit: weights alone take {fmt_binary(budget.weights_bytes)} of "
                f"{fmt_binary(budget.total_bytes)}")
    if n < 1:
        short = per_request - max(budget.kv_pool_bytes, 0)
        return f"does not fit: no room for one {ctx:,}-token request ({fmt_binary(short)} short)"
    if not start.starts:
        return f"will not start: {engine} refuses it, {start.reason}; {start.fix.replace('--max-model-len', '--max-len')}"
    if n < target:
        return f"does not fit: {n:,} of the {target:,} concurrent requests of {ctx:,} tokens"
    return f"fits: {n:,} concurrent requests of {ctx:,} tokens" + (f" (of {target:,} asked)" if target > 1 else "")


def fit(model: ModelSpec, gpu: GpuSpec, ctx: int, inputs: BudgetInputs = BudgetInputs(), *,
        max_len: int | None = None, target: int = 1) -> FitResult:
    if ctx < 1 or target < 1 or (max_len is not None and max_len < 1):
        raise InputError("--ctx, --concurrency and --max-len must be at least 1")
    max_len = max_len or model.max_context
    budget = memory_budget(model, gpu, inputs)
    n, per_request = concurrency(model, budget, ctx)
    start = startup(model, budget, max_len)
    fits = start.starts and n >= target
    knobs = [] if fits else _knobs(model, gpu, ctx, max_len, target, inputs, budget, start)
    seqs = inputs.max_num_seqs or default_batch_limits(gpu, budget.total_bytes)[1]
    return FitResult(model=model.name, model_origin=model.origin, gpu=gpu.name, ctx_tokens=ctx, max_len=max_len,
                     target_concurrency=target, budget=budget, bytes_per_request=per_request, concurrency=n,
                     kv_used_bytes=n * per_request, free_bytes=max(budget.kv_pool_bytes, 0) - n * per_request,
                     held_back_bytes=max(budget.total_bytes - budget.weights_bytes - budget.activation_bytes
                                         - budget.overhead_bytes - max(budget.kv_pool_bytes, 0), 0),
                     start=start, fits=fits, verdict=_verdict(budget, start, n, per_request, ctx, target),
                     knobs=tuple(knobs), command=engine_command(model, budget, max_len, min(seqs, n) if n else seqs))
