"""`kvplan fit`: one GPU (or a TP x PP replica) for a model, its whole memory breakdown, whether the
engine starts at max_len, whether it serves the concurrency asked for, and, when not, what would
(more TP, more replicas, fp8 KV, quantized weights, a shorter max_len), each with its numbers."""

from __future__ import annotations

from dataclasses import replace

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.deployterms import term_deploy
from kvplan.calc.fixes import Change, single_changes
from kvplan.calc.kv import paged_request_bytes, resolve_kv_format
from kvplan.calc.draft import pool_model
from kvplan.calc.startup import startup
from kvplan.calc.tierverdict import with_reload_verdicts
from kvplan import bounds
from kvplan.errors import InputError
from kvplan.errors import KvplanError
from kvplan.results.capacity import FitResult, Knob, MemoryBudget, StartCheck
from kvplan.specs.engines.registry import Deploy
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import DTYPE_BYTES, GIB, ceil_div, fmt_binary


def concurrency(model: ModelSpec, budget: MemoryBudget, ctx: int) -> tuple[int, int]:
    """(requests of `ctx` tokens that fit the pool, paged bytes of one on one GPU)."""
    fmt = resolve_kv_format(model, budget.kv_dtype)
    per_request = paged_request_bytes(model, ctx, fmt, budget.tp, budget.block_size, budget.pp)
    return budget.usable_pool_bytes // per_request, per_request


def deployment_settings(model: ModelSpec, gpu: GpuSpec | None, budget: MemoryBudget, max_len: int,
                        max_num_seqs: int) -> Deploy:
    """What the engine command carries: the model as the user named it (a path, or the repo id with
    its revision), and only the flags the checkpoint needs: a dtype or KV dtype where the engine's
    auto would choose another, a quantization where the weights are cast as they load."""
    engine = engine_entry(budget.engine)
    auto, _ = engine.auto_dtype(model, gpu)
    checkpoint = model.quantization or model.dtype  # what the weights are stored as
    asked = budget.weights_dtype
    cast = asked if asked not in ("auto", checkpoint) and (asked == "fp8" or asked not in DTYPE_BYTES) else None
    long = (engine.long_context_switch,) if budget.allow_long_max_len and max_len > model.max_context else ()
    disk = next((t for t in budget.kv_offload if t.medium == "local disk"), None)
    switch: tuple[str, ...] = (long + engine.sampler_environment(budget.sampler)
                               + (engine.disk_tier_environment(round(disk.size_bytes / GIB, 6)) if disk else ()))
    return Deploy(model=model.served or model.hf_repo or model.name, revision=model.revision, environment=switch,
                  tp=budget.tp,
                  pp=budget.pp, max_len=max_len, util=budget.util,
                  kv_dtype=budget.kv_dtype if budget.kv_dtype != budget.dtype else "auto", max_num_seqs=max_num_seqs,
                  dtype=budget.dtype if budget.dtype != auto else None,
                  quantization=cast,
                  max_num_batched_tokens=budget.max_num_batched_tokens
                  if budget.max_num_batched_tokens != budget.default_batched_tokens else None,
                  chunked_prefill=budget.chunked_prefill if budget.chunked_prefill != budget.default_chunked_prefill
                  else None, **term_deploy(budget))


def engine_command(model: ModelSpec, gpu: GpuSpec | None, budget: MemoryBudget, max_len: int,
                   max_num_seqs: int) -> tuple[str, str]:
    """(the command that starts the engine of `budget` so, "" for an engine with none; and what it
    cannot say: a weights format the engine does not cast to at load needs its own checkpoint)."""
    engine = engine_entry(budget.engine)
    deploy = deployment_settings(model, gpu, budget, max_len, max_num_seqs)
    command = engine.write_command(deploy)
    note = ""
    if command and deploy.quantization and engine.command and deploy.quantization not in engine.command.quantizations:
        note = (f"{engine.display_name} does not cast weights to {deploy.quantization} as it loads them: serve a "
                f"checkpoint of this model quantized to {deploy.quantization} instead of {deploy.model}")
    elif command and budget.speculative_method in ("eagle", "eagle3") and not budget.draft_model_repo:
        head = {"eagle": "EAGLE", "eagle3": "EAGLE-3"}[budget.speculative_method]
        note = (f"add the {head} head's repo as \"model\" in the speculative config: "
                f"{engine.display_name} loads the head from it (kvplan sized a head of {model.name}'s shape)")
    return command, note


def _knob(model: ModelSpec, gpu: GpuSpec, ctx: int, max_len: int, target: int, inputs: BudgetInputs,
          change: Change) -> Knob | None:
    settings = dict(change.settings)
    max_len = int(settings.pop("max_model_len", max_len))
    try:
        budget = memory_budget(model, gpu, replace(inputs, **settings))  # type: ignore[arg-type]
    except KvplanError:
        return None  # e.g. a TP the heads do not allow
    pooled = pool_model(model, inputs.speculative_method, inputs.draft_model, inputs.num_speculative_tokens)
    n, _ = concurrency(pooled, budget, ctx)  # a drafter's KV layers too, as fit counts them
    fits = startup(pooled, budget, max_len).starts and n >= target
    command = engine_command(model, gpu, budget, max_len, min(n, budget.max_num_seqs))[0] if fits else ""
    return Knob(change=change.label, fix=change.settings, kv_pool_bytes=budget.kv_pool_bytes, concurrency=n,
                fits=fits, command=command)


def _knobs(model: ModelSpec, gpu: GpuSpec, ctx: int, max_len: int, target: int, inputs: BudgetInputs,
           budget: MemoryBudget, start: StartCheck) -> list[Knob]:
    shorter = start.largest_max_model_len if not start.starts and start.largest_max_model_len >= ctx else None
    changes = single_changes(tp=inputs.tp, kv_dtype=budget.kv_dtype, weights_dtype=inputs.weights_dtype,
                             largest_max_model_len=shorter)
    n, _ = concurrency(pool_model(model, inputs.speculative_method, inputs.draft_model, inputs.num_speculative_tokens),
                       budget, ctx)
    knobs = [knob for change in changes if (knob := _knob(model, gpu, ctx, max_len, target, inputs, change))
             and (knob.fits or knob.concurrency > n)]  # only the changes that help
    if start.starts and 1 <= n < target:
        replicas = ceil_div(target, n)
        command = engine_command(model, gpu, budget, max_len, min(n, budget.max_num_seqs))[0]
        knobs.append(Knob(change=f"{replicas} replicas ({replicas * budget.tp * budget.pp} GPUs)",
                          fix={"replicas": replicas}, kv_pool_bytes=budget.kv_pool_bytes, concurrency=n * replicas,
                          fits=True, command=command))
    return knobs


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
        if max_len < ctx:  # the engine refuses a request longer than max_model_len (plan refuses it alike)
            raise InputError(f"{{max_len}} {max_len:,} is shorter than the {ctx:,}-token requests; use {{max_len}} "
                             ">= {ctx}", "max_len", "ctx")
    max_len = max_len or model.max_context
    budget = with_reload_verdicts(model, gpu, memory_budget(model, gpu, inputs))
    pooled = pool_model(model, inputs.speculative_method, inputs.draft_model, inputs.num_speculative_tokens)
    n, per_request = concurrency(pooled, budget, ctx)  # a drafter's KV layers too (calc/draft.py)
    start = startup(pooled, budget, max_len)
    fits = start.starts and n >= target
    knobs = [] if fits else _knobs(model, gpu, ctx, max_len, target, inputs, budget, start)
    seqs = budget.max_num_seqs
    command, note = engine_command(model, gpu, budget, max_len, min(seqs, n) if n else seqs) if fits else ("", "")
    return FitResult(model=model.name, model_origin=model.origin, gpu=gpu.name, ctx_tokens=ctx, max_len=max_len,
                     target_concurrency=target, budget=budget, bytes_per_request=per_request, concurrency=n,
                     kv_used_bytes=n * per_request, free_bytes=budget.usable_pool_bytes - n * per_request,
                     held_back_bytes=max(budget.total_bytes - budget.weights_bytes - budget.activation_bytes
                                         - budget.overhead_bytes - budget.lora_bytes - budget.usable_pool_bytes, 0),
                     start=start, fits=fits, verdict=_verdict(budget, start, n, per_request, ctx, target),
                     knobs=tuple(knobs), command=command, command_note=note)
