"""An engine's start-up log against kvplan's rules (`kvplan log`), and the log's measured terms as
a plan's inputs (`from_log`).

Three readings of one log:

* from its own terms: the KV memory it logs, laid out by the release's rules (page size, KV cache
  groups, state pages, the token count it prints), at either end of the log's rounding (x.xx GiB
  +- 0.005; SGLang's K and V sizes +- 0.005 each): the token capacity and concurrency it logs must
  lie in between, or a layout rule is wrong;
* from defaults: kvplan's budget for the settings the log states (release, TP/PP, dtypes,
  utilization, max_model_len, batch limits, sampler, speculative tokens), nothing it measured:
  each term beside the logged one names the rule it follows;
* from measured terms: the GPU's total, the weights and the rest of the non-KV memory the log
  states, so that a what-if (another max_model_len, fp8 KV, a utilization that reaches N requests)
  is answered from what the engine measured.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import partial

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.errors import InputError
from kvplan.results.log import LoggedFigure, LogReport
from kvplan.specs.engines.registry import PRESETS, Replica
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.engines.logs import LoggedStartup
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import GIB


@dataclass(frozen=True)
class LogSettings:
    """What the command line adds to, or changes in, what the log states (None: the log's)."""

    engine: str | None = None
    tp: int | None = None
    pp: int | None = None
    kv_dtype: str | None = None
    max_model_len: int | None = None
    num_speculative_tokens: int | None = None
    speculative_method: str | None = None  # where the log's excerpt leaves its speculative config out


def preset_key(startup: LoggedStartup, engine: str | None = None) -> tuple[str, str]:
    """(the preset the log's release selects, a note where it is not the log's own)."""
    if engine:
        return engine, ""
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?(?:\.\d+)*([-_.]?post\d+)?", startup.release or "")
    if startup.trtllm_backend == "pytorch" and (not found or int(found[1]) < 1):
        newest = PRESETS[startup.engine][-1]  # the PyTorch backend's rules (KvCacheCreator) are the 1.0 preset's
        return newest.key, (f"the log is the PyTorch backend's{f' (release {startup.release})' if found else ''}: "
                            f"planned with {newest.key}, whose rules it follows")
    key, note = _release_preset(startup, found)
    ours = startup.engine_generation
    chosen = engine_entry(key)
    if ours and chosen.generation and chosen.generation != ours:
        # V0's engine ran (its "# GPU blocks" lines), by default before 0.8 or by VLLM_USE_V1=0 to 0.10
        same = [p for p in PRESETS[startup.engine] if p.generation == ours]
        if same:  # a later release's fallback runs the newest; a log naming none, the preset of V0's default years
            release = f" (release {startup.release})" if startup.release else ""
            preset = same[-1] if found else next((p for p in same if getattr(p, "plans_unnamed_v0_logs", False)),
                                                 same[0])
            return preset.key, (f"the log is {chosen.display_name}'s {ours} engine{release}: planned with "
                                f"{preset.key}, its rules")
    return key, note


def _release_preset(startup: LoggedStartup, found: re.Match[str] | None) -> tuple[str, str]:
    if not found:
        return startup.engine, f"the log names no {startup.engine} release: planned with the newest preset"
    version = ".".join(part for part in found.groups()[:3] if part is not None) + (found[4] or "")
    key = f"{startup.engine}=={version}"
    try:
        engine_entry(key)
    except InputError:
        newest = PRESETS[startup.engine][-1]
        return startup.engine, (f"no {startup.engine} preset holds release {version}: planned with "
                                f"{newest.key}")
    return key, ""


def _kv_dtype(logged: str | None) -> str:
    if not logged or logged == "auto":
        return "auto"
    return "fp8" if logged.startswith("fp8") else logged


def _util(startup: LoggedStartup) -> float | None:
    return startup.gpu_memory_utilization or startup.mem_fraction_static or startup.kv_memory_fraction


MODELLED_DRAFTS = ("mtp", "eagle", "eagle3")  # speculative methods whose drafter kvplan lays out from the model


def speculative_method(startup: LoggedStartup, model: ModelSpec) -> tuple[str | None, str]:
    """The log's speculative method where kvplan lays its drafter out (MTP layers from the model's
    config, an EAGLE head of its shape), and a note where it cannot (a draft model or DFlash it does
    not hold, an MTP model without MTP layers)."""
    method = startup.speculative_method
    if method is None:
        return None, ""
    if method in MODELLED_DRAFTS and (method != "mtp" or model.mtp_layers):
        return method, ""
    return None, f"the log's speculative method {method} is not laid out: its drafter's layers are not counted"


def settings_inputs(startup: LoggedStartup, given: LogSettings = LogSettings()) -> BudgetInputs:
    """What a user knew before launch, as the log states it: the release, parallelism, dtypes and the
    engine's settings; no term the engine measured."""
    key, _ = preset_key(startup, given.engine)
    sampler = None  # vLLM's logs say which top-k/top-p sampler ran; the other engines' say nothing
    if startup.flashinfer_sampler is not None:
        sampler = "flashinfer" if startup.flashinfer_sampler else "pytorch"
    spec = given.num_speculative_tokens if given.num_speculative_tokens is not None else startup.num_speculative_tokens
    return BudgetInputs(
        engine=key, tp=given.tp or startup.tp or 1, pp=given.pp or startup.pp or 1,
        kv_dtype=given.kv_dtype or _kv_dtype(startup.kv_cache_dtype), util=_util(startup),
        util_logged=_util(startup) is not None,
        max_model_len=given.max_model_len or startup.max_model_len, max_num_seqs=startup.max_num_seqs,
        max_num_batched_tokens=startup.max_num_batched_tokens, sampler=sampler,
        num_speculative_tokens=spec or 0, prefix_caching=startup.enable_prefix_caching,
        enable_lora=bool(startup.enable_lora), max_loras=startup.max_loras or 1,
        max_lora_rank=startup.max_lora_rank or 16, max_cpu_loras=startup.max_cpu_loras,
        block_size=startup.block_size if engine_entry(key).logged_block_is_built else None)


def _gib(value: float | None) -> int | None:
    return None if value is None else int(value * GIB)


def measured_inputs(startup: LoggedStartup, base: BudgetInputs,
                    total_bytes: int | None = None) -> tuple[BudgetInputs, tuple[str, ...]]:
    """`base` with the terms the log measured: the GPU's total (SGLang: the memory free before the
    weights, which is what its fraction applies to), the weights, and the rest of the non-KV memory
    as activation (what the log's utilization leaves once the weights and the logged KV memory are
    out: the profiled peak, non-torch memory and, where the release counts them, CUDA graphs).
    Where `base` changes TP, the weights are rescaled by the log's TP over the new one, and said."""
    memory, notes = startup.memory, []
    total = memory.total_gpu_gib or memory.free_at_start_gib
    if total is None and total_bytes is not None:  # an INFO log of 0.11-0.25 prints no total: the GPU's
        total = total_bytes / GIB
        notes.append(f"the log states no GPU total: {total:.2f} GiB, the GPU's as CUDA reports it, or the total given")
    if total is None or memory.kv_cache_gib is None:
        raise InputError(f"{startup.where}: the log states no GPU total or no KV memory; name the GPU, "
                         "or paste the log from the engine's start", "from_log")
    weights = memory.weights_gib if memory.weights_gib is not None else memory.weights_and_non_torch_gib
    if weights is None:
        raise InputError(f"{startup.where}: the log states no weights memory ('Model loading took'); plan from "
                         "defaults, or paste the log from the engine's start", "from_log")
    logged_tp = startup.tp or base.tp  # a log that states no TP ran at the TP asked (a given fills what it leaves out)
    if startup.tp is None and base.tp > 1:
        notes.append(f"the log states no TP: its weights are taken as TP {base.tp}'s, the TP asked")
    util = _util(startup) or engine_entry(base.engine).util  # unlogged: the release's default
    implied = partial(engine_entry(base.engine).measured_rest, util=util, weights=weights, kv=memory.kv_cache_gib)
    rest = implied(total)
    if rest < 0:  # the log's terms exceed the total it is said to have: not the GPU's (a WSL total, say)
        total = -implied(0.0) / (implied(1.0) - implied(0.0))  # the total at which the rest is nothing
        rest = 0.0
        notes.append(f"the weights and KV memory logged exceed the GPU's total x {util:g}: a total of "
                     f"{total:.2f} GiB, the least the log allows")
    if engine_entry(base.engine).fraction_of_free_memory:  # pool = fraction x (free before weights) - weights
        rest = 0.0
    if base.tp != logged_tp:
        notes.append(f"weights rescaled from the log's TP {logged_tp} to TP {base.tp}: {weights:.2f} GiB x "
                     f"{logged_tp} / {base.tp}; NCCL's buffers and the activation peak stay the log's")
    return replace(base, util=base.util or util, gpu_mem_bytes=_gib(total), weights_bytes=_gib(weights), weights_tp=logged_tp,
                   activation_bytes=max(_gib(rest) or 0, 0), overhead_bytes=0,
                   enable_lora=base.enable_lora and not startup.enable_lora), tuple(notes)  # the log's weights hold its LoRA


def tokens_for_kv(model: ModelSpec, gpu: GpuSpec | None, inputs: BudgetInputs, kv_gib: float) -> int:
    """The token capacity the release's rules give `kv_gib` of KV memory: a budget whose pool is that
    memory exactly (the whole device, no other term), laid out and counted by the engine."""
    return memory_budget(model, gpu, _exact_pool(model, gpu, inputs, kv_gib)).token_capacity


def reproduced_tokens(model: ModelSpec, gpu: GpuSpec | None, inputs: BudgetInputs,
                      startup: LoggedStartup) -> tuple[int, int]:
    """The logged KV memory's token capacity at either end of the log's rounding."""
    kv, margin = startup.kv_cache_gib or 0.0, startup.kv_rounding_gib
    return tokens_for_kv(model, gpu, inputs, kv - margin), tokens_for_kv(model, gpu, inputs, kv + margin)


def holds_logged_tokens(startup: LoggedStartup, model: ModelSpec, gpu: GpuSpec | None,
                        given: LogSettings = LogSettings()) -> bool:
    """Whether `model`'s layout holds the logged token count in the logged KV memory, within the log's
    rounding: what tells a log whose header names one model and whose memory lines are another's."""
    if not (startup.kv_tokens and startup.kv_cache_gib):
        return False
    low, high = reproduced_tokens(model, gpu, settings_inputs(startup, given), startup)
    return low <= startup.kv_tokens <= high


def _figure(name: str, unit: str, logged: float | None, predicted: float | None, rule: str,
            reproduced: tuple[float, float] | None = None) -> LoggedFigure | None:
    if logged is None:
        return None
    error = (predicted - logged) / logged if predicted is not None and logged else None
    low, high = reproduced if reproduced else (None, None)
    return LoggedFigure(name=name, unit=unit, logged=logged, reproduced_low=low, reproduced_high=high,
                        predicted=predicted, error=error, rule=rule)


def _longest_len(model: ModelSpec, gpu: GpuSpec | None, measured: BudgetInputs, target: int, top: int) -> int | None:
    """The longest max_model_len (a multiple of 16, at most `top`) at which `target` requests of it fit
    in the measured budget; None where not even 16 tokens do."""
    def fits(length: int) -> bool:
        budget = memory_budget(model, gpu, replace(measured, max_model_len=length, allow_long_max_len=True))
        return budget.token_capacity >= target * length and not budget.start_refusal
    low, high = 0, top // 16
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(16 * mid) else (low, mid - 1)
    return 16 * low or None


def _util_for(model: ModelSpec, gpu: GpuSpec | None, measured: BudgetInputs, target: int, length: int) -> float | None:
    """The least utilization (to 0.001) at which `target` requests of `length` tokens fit the measured
    terms; None where even 1.0 does not."""
    def fits(thousandths: int) -> bool:
        budget = memory_budget(model, gpu, replace(measured, util=thousandths / 1000))
        return budget.kv_pool_bytes > 0 and budget.token_capacity >= target * length
    if not fits(1000):
        return None
    low, high = 1, 1000
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid + 1, high)
    return low / 1000


def _exact_pool(model: ModelSpec, gpu: GpuSpec | None, inputs: BudgetInputs, kv_gib: float) -> BudgetInputs:
    """A budget whose pool is `kv_gib` of KV memory exactly: the whole device, no other term (the
    device grown by the fraction the engine still takes of a whole one: SGLang's multimodal and
    aiter cuts)."""
    replica = Replica(gpu, inputs.tp, inputs.pp, max_model_len=inputs.max_model_len or model.max_context)
    pool = int(kv_gib * GIB)
    kept = engine_entry(inputs.engine).fraction_in_force(1.0, model, given=True, replica=replica)
    return replace(inputs, gpu_mem_bytes=math.ceil((pool + GIB) / kept), util=1.0, util_logged=False,
                   pool_as_stored=True, weights_bytes=GIB, activation_bytes=0, overhead_bytes=0)


def _predicted(model: ModelSpec, gpu: GpuSpec | None, startup: LoggedStartup, settings: BudgetInputs):
    """kvplan's budget from the log's settings (on the log's GPU total where kvplan holds no such GPU);
    None where neither is known."""
    total = startup.memory.total_gpu_gib or startup.memory.free_at_start_gib
    if gpu is None and total is None:
        return None
    return memory_budget(model, gpu, settings if gpu is not None else replace(settings, gpu_mem_bytes=_gib(total)))


def _figures(startup: LoggedStartup, predicted, low: int, high: int, length: int, block: int) -> list[LoggedFigure]:
    memory, per = startup.memory, 1 / GIB
    p = predicted
    known = startup.kv_cache_gib is not None  # a log that states no KV memory reproduces no capacity
    rows = (
        ("GPU total", "GiB", memory.total_gpu_gib, p and p.total_bytes * per, p and p.total_source, None),
        ("weights", "GiB", memory.weights_gib, p and (p.weights_bytes + p.lora_bytes) * per,  # vLLM loads LoRA with them
         p and (p.weights_source + (f" + {p.lora_source}" if p.lora_bytes else "")), None),
        ("activation peak", "GiB", memory.activation_gib, p and p.activation_bytes * per, p and p.activation_source,
         None),
        ("non-torch", "GiB", memory.non_torch_gib, p and p.overhead_bytes * per, p and p.overhead_source, None),
        ("KV cache", "GiB", memory.kv_cache_gib, p and p.kv_pool_bytes * per, p and p.engine_formula, None),
        ("token capacity", "tokens", startup.kv_tokens, p and p.token_capacity,
         f"{block}-token pages of the release's layout", (low, high) if known else None),
        ("max concurrency", "x", startup.max_concurrency, p and p.token_capacity / length, f"tokens / {length:,}",
         (round(low / length, 2), round(high / length, 2)) if known else None),
    )
    return [f for name, unit, logged, guess, rule, span in rows
            if (f := _figure(name, unit, logged, guess, rule or "", span)) is not None]


def explain_log(startup: LoggedStartup, model: ModelSpec, gpu: GpuSpec | None, *,
                given: LogSettings = LogSettings(), target: int | None = None, source: str = "") -> LogReport:
    """Each figure the log states: reproduced from its own terms, predicted from defaults (where the
    GPU or its total is known), and the rule it follows; then when max_num_seqs preempts, and what
    reaches `target` requests of max_model_len."""
    key, note = preset_key(startup, given.engine)
    method, draft_note = speculative_method(startup, model)
    method = given.speculative_method or method
    settings = replace(settings_inputs(startup, given), speculative_method=method)
    predicted = _predicted(model, gpu, startup, settings)
    if predicted is not None:  # the batch limits the engine defaults to on this GPU, where the log omits them
        settings = replace(settings, max_num_seqs=settings.max_num_seqs or predicted.max_num_seqs,
                           max_num_batched_tokens=settings.max_num_batched_tokens or predicted.max_num_batched_tokens)
    layout = memory_budget(model, gpu, _exact_pool(model, gpu, settings, startup.kv_cache_gib or 0.0))
    low, high = reproduced_tokens(model, gpu, settings, startup)
    length, logged_tokens = layout.max_model_len, startup.kv_tokens or 0
    # a log cut before its token line still states the KV memory: the tokens it holds, in the release's layout
    tokens, held = logged_tokens or (layout.token_capacity if startup.kv_cache_gib else 0), ""
    if tokens and not logged_tokens:
        held = " (the logged KV cache memory's)"
    seqs = startup.max_num_seqs or layout.max_num_seqs
    each = tokens // seqs if seqs else 0
    preempts = ("" if not tokens else
                f"{seqs:,} running requests share {tokens:,} tokens{held}: past {each:,} tokens each on average "
                "the scheduler preempts (and recomputes) the newest" if each < length else
                f"{seqs:,} running requests of at most max_model_len {length:,} tokens fit in {tokens:,}{held}: "
                "the scheduler never preempts for KV")
    notes = tuple(n for n in (note, draft_note) if n)
    if startup.kv_max_tokens and startup.kv_tokens and startup.kv_tokens - startup.kv_max_tokens < layout.block_size:
        notes += (f"the pool is capped by max_tokens {startup.kv_max_tokens:,} (the smaller of it and the fraction's "
                  "wins): a prediction from the fraction is an upper bound, not this pool",)
    if predicted is None:
        notes += ("no GPU kvplan holds and no total in the log: no prediction from defaults (name the GPU)",)
    target_util, target_len = None, None
    terms: tuple[float | None, float | None, float | None, int | None] = (None, None, None, None)
    measured = None
    try:
        measured, rescaled = measured_inputs(startup, settings, predicted.total_bytes if predicted else None)
        # to 4 decimals of a GiB, as a check file states them, so that the capacity guarded is the file's
        total_gib, weights_gib, rest_gib = (round((b or 0) / GIB, 4) for b in (
            measured.gpu_mem_bytes, measured.weights_bytes, measured.activation_bytes))
        measured = replace(measured, gpu_mem_bytes=round(total_gib * GIB), weights_bytes=round(weights_gib * GIB),
                           activation_bytes=round(rest_gib * GIB), allow_long_max_len=True)
        # the logged capacity where kvplan's rounding of the terms gives a few tokens more: a guard the engine meets
        capacity = memory_budget(model, gpu, measured).token_capacity
        terms = (total_gib, weights_gib, rest_gib, min(capacity, logged_tokens) if logged_tokens else capacity)
    except InputError:  # a log without the terms (a one-line excerpt): from defaults, said so
        rescaled = ("the log states too few terms to plan from: what-ifs are from defaults",)
        measured = settings if predicted is not None and gpu is not None else None
    notes += rescaled
    if target and measured is not None:
        target_util = _util_for(model, gpu, measured, target, length)
        target_len = _longest_len(model, gpu, measured, target, length)
    return LogReport(
        source=source or startup.where, engine=key, release=startup.release or "", model=model.name,
        model_in_log=startup.model or "", gpu=gpu.name if gpu else "", gpu_in_log=startup.gpu_name or "",
        tp=settings.tp, pp=settings.pp, kv_dtype=layout.kv_dtype, max_model_len=length,
        block_size=layout.block_size, max_num_seqs=seqs,
        gpu_memory_utilization=predicted.util if predicted else (settings.util or engine_entry(key).util),
        figures=tuple(_figures(startup, predicted, low, high, length, layout.block_size)),
        kv_tokens=logged_tokens, tokens_per_request_at_max_num_seqs=each,
        preempts_at=preempts, notes=notes, target=target, target_util=target_util, target_max_model_len=target_len,
        util=settings.util, max_num_batched_tokens=settings.max_num_batched_tokens,
        allow_long_max_len=length > model.max_context,
        num_speculative_tokens=settings.num_speculative_tokens, measured_total_gib=terms[0],
        measured_weights_gib=terms[1], measured_rest_gib=terms[2], guarded_kv_tokens=terms[3])
