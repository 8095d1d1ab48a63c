"""The per-GPU memory budget and the KV pool it leaves, as each serving engine computes it.

Each engine's terms and pool rule are its entry in kvplan.specs.engines; this module adds them up
for one GPU of a tp x pp replica. Every term is in the result with its source, and every term can
be overridden (a measured value from a log, say).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvplan import bounds
from kvplan.calc.draft import (Drafter, draft_step, drafter, head_weights, lookahead_tokens, served_model,
                               with_draft_weights)
from kvplan.calc.kv import check_size_inputs, layers_kv, resolve_kv_format
from kvplan.calc.kvgroups import kv_groups, tokens_for_kv_bytes
from kvplan.calc.kvpacked import in_flight_tokens, packed_layout
from kvplan.calc.kvtiers import TierInputs, kv_offload_tiers
from kvplan.calc.deployterms import planned_settings
from kvplan.calc.lora import lora_term
from kvplan.calc.weights import pp_layers, stage_weights, weights_bytes, weights_per_gpu
from kvplan.errors import InputError
from kvplan.results.base import Step
from kvplan.results.capacity import MemoryBudget
from kvplan.specs.engines import DEFAULT_ENGINE
from kvplan.specs.engines.registry import BatchLimits, Engine, Replica, Term, asked_release
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import DTYPE_BYTES, GIB, kv_format


@dataclass(frozen=True)
class BudgetInputs:
    """What a user may override; None takes the engine's default."""

    engine: str = DEFAULT_ENGINE
    tp: int = 1
    pp: int = 1
    kv_dtype: str = "auto"
    weights_dtype: str = "auto"
    util: float | None = None
    util_logged: bool = False  # util is the fraction a start-up log prints (SGLang: after its server_args cuts)
    pool_as_stored: bool = False  # the pool is an allocation a log states (tokens x the layout), not a budget
    gpu_mem_bytes: int | None = None
    weights_bytes: int | None = None
    activation_bytes: int | None = None
    overhead_bytes: int | None = None
    block_size: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    allow_long_max_len: bool = False  # start past the model's context, as the engine's switch allows
    max_model_len: int | None = None  # the engine's max_model_len (None: the model's derived context)
    chunked_prefill: bool | None = None  # None: the engine's default for this max_model_len
    sampler: str | None = None  # vLLM's top-k/top-p sampler: "flashinfer" or "pytorch"; None: the release's default
    num_speculative_tokens: int = 0  # draft tokens per step (vLLM speculative_config): a state's pages and conv rows
    prefix_caching: bool | None = None  # None: the engine's default (vLLM: on for hybrids from 0.26)
    speculative_method: str | None = None  # vLLM speculative_config method: draft_model, eagle, eagle3, mtp
    draft_model: ModelSpec | None = None  # the draft model (a database spec; calc/draft.py)
    draft_weights_bytes: int | None = None  # the drafter's weights per GPU, measured (instead of the formula)
    weights_tp: int | None = None  # the TP weights_bytes was measured at (a log's): another TP rescales it
    terms_from: str | None = None  # the log the given terms were measured in (--from-log), for their source
    enable_lora: bool = False  # vLLM --enable-lora: max_loras slots of max_lora_rank (specs/engines/vllm_lora.py)
    max_loras: int = 1  # vLLM's default
    max_lora_rank: int = 16  # vLLM's default
    max_cpu_loras: int | None = None  # host memory only; vLLM requires it >= max_loras
    lora_bytes: int | None = None  # the LoRA buffers per GPU, measured (turns LoRA on)
    # vLLM's --limit-mm-per-prompt as (modality, count) pairs (None: every modality, 999 each; a 0 for
    # each skips the encoder profile) and --mm-encoder-tp-mode ("weights" or "data"; None: weights)
    limit_mm_per_prompt: tuple[tuple[str, int], ...] | None = None
    mm_encoder_tp_mode: str | None = None
    # KV offload tiers beside the pool (calc/kvtiers.py): they hold evicted prefixes, the pool is unchanged
    kv_offload_gib: float | None = None  # vLLM --kv-offloading-size: every rank's host GiB together
    kv_offload_backend: str | None = None  # native, lmcache (vLLM) or hicache (SGLang); None: the engine's
    kv_offload_disk_gib: float | None = None  # LMCache max_local_disk_size, GiB a rank
    hicache_ratio: float | None = None  # SGLang --hicache-ratio (host tokens / device tokens; default 2.0)
    hicache_size_gb: float | None = None  # SGLang --hicache-size, GB (10^9) a rank
    cpu_offload_gib: float | None = None  # vLLM --cpu-offload-gb: WEIGHTS kept on the host, GiB a GPU (not KV)
    disaggregation_mode: str | None = None  # a disaggregated worker's role: "prefill" or "decode" (None: both)

    def __post_init__(self) -> None:
        """Names are checked when the inputs are made, so a sweep or a plan refuses a bad one at once
        rather than marking every point it would have computed."""
        from kvplan.calc.weights import weight_format
        from kvplan.units import kv_format

        engine_entry(self.engine)
        if self.kv_dtype != "auto":
            kv_format(self.kv_dtype)
        if self.weights_dtype != "auto":
            weight_format(self.weights_dtype)
        if self.sampler not in (None, "flashinfer", "pytorch"):
            raise InputError(f"unknown sampler '{self.sampler}'; choose flashinfer or pytorch", "sampler")
        if self.disaggregation_mode not in (None, "prefill", "decode"):
            raise InputError(f"unknown disaggregation mode '{self.disaggregation_mode}'; choose prefill or decode",
                             "disaggregation_mode")
        if self.mm_encoder_tp_mode not in (None, "weights", "data"):
            raise InputError(f"unknown mm_encoder_tp_mode '{self.mm_encoder_tp_mode}'; choose weights or data",
                             "mm_encoder_tp_mode")
        if any(count < 0 for _, count in self.limit_mm_per_prompt or ()):
            raise InputError("{limit_mm_per_prompt} counts must not be negative", "limit_mm_per_prompt")

    @property
    def overridden(self) -> bool:
        """True when anything but the parallelism and dtypes departs from the default engine's defaults."""
        return engine_entry(self.engine) is not engine_entry(DEFAULT_ENGINE) or any(
            getattr(self, name) is not None for name in (
                "util", "gpu_mem_bytes", "weights_bytes", "activation_bytes", "overhead_bytes", "block_size",
                "max_num_batched_tokens", "max_num_seqs", "chunked_prefill", "sampler", "prefix_caching",
                "draft_weights_bytes", "limit_mm_per_prompt", "mm_encoder_tp_mode"))

    def engine_defaults(self) -> "BudgetInputs":
        """The same deployment under the default engine's budget with nothing overridden."""
        return BudgetInputs(tp=self.tp, pp=self.pp, kv_dtype=self.kv_dtype, weights_dtype=self.weights_dtype,
                            max_model_len=self.max_model_len, num_speculative_tokens=self.num_speculative_tokens,
                            enable_lora=self.enable_lora, max_loras=self.max_loras, max_lora_rank=self.max_lora_rank,
                            speculative_method=self.speculative_method, draft_model=self.draft_model,
                            limit_mm_per_prompt=self.limit_mm_per_prompt, mm_encoder_tp_mode=self.mm_encoder_tp_mode)


def batch_limits(inputs: BudgetInputs, gpu: GpuSpec | None, total_bytes: int, max_model_len: int) -> BatchLimits:
    """The scheduler's caps: what the user gave, else the engine's default for this GPU."""
    default = engine_entry(inputs.engine).batch_limits(gpu, total_bytes, max_model_len, inputs.chunked_prefill)
    return BatchLimits(inputs.max_num_batched_tokens or default.max_num_batched_tokens,
                       inputs.max_num_seqs or default.max_num_seqs, default.chunked_prefill)


def _check(inputs: BudgetInputs, util: float) -> None:
    """The readers' ranges (kvplan.bounds), for callers that did not come through a reader."""
    bounds.fraction(util, "util")
    bounds.gpus(inputs.tp, "tp")
    bounds.gpus(inputs.pp, "pp")
    if inputs.max_num_seqs is not None:
        bounds.requests(inputs.max_num_seqs, "max_num_seqs")
    if inputs.max_num_batched_tokens is not None:
        bounds.tokens(inputs.max_num_batched_tokens, "max_num_batched_tokens")
    if inputs.num_speculative_tokens < 0:
        raise InputError("{num_speculative_tokens} must not be negative", "num_speculative_tokens")
    for name in ("gpu_mem_bytes", "weights_bytes", "activation_bytes", "overhead_bytes", "lora_bytes",
                 "draft_weights_bytes", "kv_offload_gib", "kv_offload_disk_gib", "hicache_ratio", "hicache_size_gb",
                 "cpu_offload_gib"):
        if (getattr(inputs, name) or 0) < 0:
            raise InputError(f"{{{name}}} must not be negative", name)


def memory_budget(model: ModelSpec, gpu: GpuSpec | None, inputs: BudgetInputs = BudgetInputs()) -> MemoryBudget:
    """One GPU of a tp x pp replica: each term of the budget and the KV pool it leaves.
    `gpu` may be None when gpu_mem_bytes gives the memory (the probe's local device)."""
    if gpu is None and inputs.gpu_mem_bytes is None:
        raise InputError("a budget needs a GPU from the database or its memory ({gpu_mem_bytes})", "gpu_mem_bytes")
    engine = engine_entry(inputs.engine)
    util = engine.default_util(gpu, inputs.tp, inputs.pp, model=model, role=inputs.disaggregation_mode,
                               running=inputs.max_num_seqs) if inputs.util is None else inputs.util
    _check(inputs, util)
    if inputs.pp > model.num_layers:
        raise InputError(f"{{pp}} {inputs.pp} is more stages than {model.name}'s {model.num_layers} layers; "
                         f"give {{pp}} {model.num_layers} or fewer", "pp")
    dtype, dtype_source = served_dtype(model, gpu, inputs)
    draft = drafter(inputs.speculative_method, inputs.draft_model, inputs.num_speculative_tokens, model)
    if draft and inputs.pp > 1:
        raise InputError("kvplan does not lay a drafter out over pipeline stages; give {pp} 1", "pp")
    target, model = model, served_model(model, draft)  # the pool holds the drafter's KV layers too
    fmt = (kv_format(engine.auto_kv_dtype(target, dtype)) if inputs.kv_dtype == "auto"
           else resolve_kv_format(model, inputs.kv_dtype))
    spec, caching = draft.num_speculative_tokens if draft else inputs.num_speculative_tokens, inputs.prefix_caching
    block = (engine.default_block_size(model, gpu, fmt, inputs.tp, num_spec=spec, prefix_caching=caching)
             if inputs.block_size is None else inputs.block_size)  # 0 is an error, not 'default'
    check_size_inputs(model, 1, 1, inputs.tp, block)
    total = _given(inputs, "gpu_mem_bytes") or engine.total_memory(_gpu(gpu))
    max_model_len = inputs.max_model_len or model.max_context
    limits = batch_limits(inputs, gpu, total.value, max_model_len)
    replica = Replica(gpu, inputs.tp, inputs.pp, dtype, max_model_len, inputs.sampler,
                      mm_limits=inputs.limit_mm_per_prompt, mm_encoder_tp_mode=inputs.mm_encoder_tp_mode,
                      weights_dtype=inputs.weights_dtype)
    if inputs.util_logged and inputs.util is not None:
        util = engine.logged_fraction(util, target, replica)
    util_cut = engine.fraction_cut(target, inputs.util is not None, replica)
    util = engine.fraction_in_force(util, target, given=inputs.util is not None, replica=replica)
    draft_term = _draft_weights(target, draft, inputs, dtype)
    weights = _measured_weights(inputs) or with_draft_weights(_with_extras(_weights(target, inputs, dtype),
                                                                    engine.weights_extra(target, replica)), draft_term)
    weights = _on_host(weights, inputs.cpu_offload_gib)
    activation = _given(inputs, "activation_bytes") or engine.activation(target, replica, limits)
    overhead = _given(inputs, "overhead_bytes") or engine.overhead(target, replica, limits)
    lora = lora_term(target, engine, dtype, tp=inputs.tp, pp=inputs.pp, enable=inputs.enable_lora,
                     max_loras=inputs.max_loras, rank=inputs.max_lora_rank, max_cpu_loras=inputs.max_cpu_loras,
                     measured=inputs.lora_bytes)
    pool = engine.pool(total.value, util, weights.value + (lora.value if lora else 0), activation.value,
                       overhead.value)
    stage_step = None
    if inputs.pp > 1 and engine.pipeline_stages:
        weights, activation, pool, stage_step = _binding_stage(target, inputs, engine, replica, limits, dtype, total,
                                                               util, weights, activation, overhead,
                                                               lora.value if lora else 0)

    layers = layers_kv(model, 1, fmt, inputs.tp, block, inputs.pp)
    page = sum(layer.count * layer.page_bytes_per_layer for layer in layers if not layer.state_bytes_per_layer)
    per_token = sum(layer.bytes_per_token for layer in layers)
    groups = (kv_groups(model, fmt, inputs.tp, block, inputs.pp, engine.kv_group_ratio, engine.hybrid_pages, spec)
              if engine.kv_groups else None)
    state_pages = engine.state_pages_per_request(model, gpu, block_size=block, max_model_len=max_model_len,
                                                 num_spec=spec, prefix_caching=caching)
    if groups:  # a recurrent state's layers take a block each, padded to the attention page (vLLM MambaSpec)
        page += groups.state_layers * groups.page_bytes_per_layer
    # pages that hold nothing: padding layers, and pages grown to one size (vLLM unify_kv_cache_spec_page_size)
    padding = groups.pool_bytes_per_block - page if groups else 0
    packed = packed_layout(model, block, inputs.pp) if engine.packed_kv_groups else None
    if packed:  # a block costs the widest group's pages (DeepSeek-V4: calc/kvpacked.py)
        page, padding = packed.bytes_per_block, 0
    # what a page costs in the engine's count (SGLang: an MLA token as its latent), unless the pool is an
    # allocation a log states, laid out page by page
    counted = page if inputs.pool_as_stored else engine.counted_page_bytes(model, fmt, inputs.pp, block, page)
    blocks = max(pool, 0) // (counted + padding) if page else 0
    tokens = blocks * block if page else 0
    if packed and engine.tokens_rule == "concurrency":
        in_flight = in_flight_tokens(engine.async_scheduling, inputs.pp, limits.max_num_batched_tokens)
        tokens = packed.tokens(blocks, max_model_len, in_flight)
    elif groups and engine.tokens_rule == "concurrency":
        tokens = tokens_for_kv_bytes(model, max(pool, 0), fmt, tp=inputs.tp, block_size=block, pp=inputs.pp,
                                     newer_rule=engine.kv_group_ratio, states=engine.hybrid_pages,
                                     max_model_len=max_model_len, max_num_batched_tokens=limits.max_num_batched_tokens,
                                     per_concurrency=True, num_spec=spec, state_pages=state_pages) or tokens
    tiers = kv_offload_tiers(model, gpu, engine, inputs, TierInputs(page + padding, block, per_token, tokens, inputs.tp,
                             inputs.pp, fmt.name), any(layer.state_bytes_per_layer for layer in layers))
    defaults = engine.batch_limits(gpu, total.value, max_model_len)  # what a command line may leave out
    terms = {"total": total, "weights": weights, "activation": activation, "overhead": overhead}
    if lora:
        terms["lora"] = lora
    steps = _explain(engine, terms, util, pool, page, padding, blocks, block, tokens, max_model_len,
                     len(packed.groups) if packed else 0)
    if stage_step:
        steps.insert(len(terms) + 1, stage_step)
    if draft:
        steps.insert(2, draft_step(draft, draft_term, model.num_layers - target.num_layers))
    steps += [step for tier in tiers for step in tier.explain]
    return MemoryBudget(
        engine=engine.key if "==" in inputs.engine else engine.name, engine_release=engine.release,
        engine_formula=engine.formula, engine_source=engine.source,
        model=target.name, gpu=gpu.name if gpu else "local device", tp=inputs.tp, pp=inputs.pp, dtype=dtype,
        dtype_source=dtype_source, dtype_cast=dtype != model.compute_dtype,
        start_refusal=engine.start_refusal(target, replica, limits, asked_release(inputs.engine)), weights_dtype=inputs.weights_dtype, kv_dtype=fmt.name,
        block_size=block, max_num_batched_tokens=limits.max_num_batched_tokens, max_num_seqs=limits.max_num_seqs,
        chunked_prefill=limits.chunked_prefill, max_model_len=max_model_len, sampler=inputs.sampler,
        default_batched_tokens=defaults.max_num_batched_tokens, default_chunked_prefill=defaults.chunked_prefill,
        padding_layers=groups.padding_layers if groups else 0, num_speculative_tokens=spec, prefix_caching=caching,
        state_pages=state_pages, speculative_method=draft.method if draft else None,
        draft_model=draft.draft.name if draft and draft.draft else None,
        draft_weights_bytes=draft_term.value if draft_term and inputs.weights_bytes is None else 0,
        draft_weights_source=draft_term.source if draft_term else "", draft_kv_layers=model.num_layers - target.num_layers,
        lookahead_tokens=lookahead_tokens(draft),
        allow_long_max_len=inputs.allow_long_max_len, util=util, util_name=engine.util_name,
        util_source="util" if inputs.util is not None else "engine default", util_cut=util_cut,
        total_bytes=total.value, total_source=total.source, weights_bytes=weights.value,
        weights_source=weights.source, activation_bytes=activation.value,
        activation_source=activation.source, overhead_bytes=overhead.value, overhead_source=overhead.source,
        kv_pool_bytes=pool, weights_fit=weights.value < total.value, page_bytes=page,
        kv_bytes_per_token=per_token, num_blocks=blocks,
        token_capacity=tokens, explain=tuple(steps), lora_bytes=lora.value if lora else 0,
        lora_source=lora.source if lora else "", lora_formula=lora.formula if lora else "",
        kv_offload=tiers, cpu_offload_bytes=int(inputs.cpu_offload_gib * GIB) if inputs.cpu_offload_gib else 0,
        **planned_settings(inputs, draft),
    )


def _draft_weights(target: ModelSpec, draft: Drafter | None, inputs: BudgetInputs, dtype: str) -> Term | None:
    """The drafter's weights on one GPU (calc/draft.py): given, a database draft's, or a head's formula."""
    if draft is None:
        return None
    if inputs.draft_weights_bytes is not None:
        return Term(inputs.draft_weights_bytes, "draft_weights_bytes", "given")
    if draft.draft is not None and draft.method == "draft_model":  # an EAGLE head's repo: its config's formula
        term = _weights(draft.draft, inputs, dtype)
        return Term(term.value, f"draft {draft.draft.name}: {term.source}", term.formula)
    return head_weights(target, draft, dtype, inputs.tp)


def _gpu(gpu: GpuSpec | None) -> GpuSpec:
    if gpu is None:  # memory_budget refused this already unless gpu_mem_bytes gave the total
        raise InputError("a budget needs a GPU from the database or its memory ({gpu_mem_bytes})", "gpu_mem_bytes")
    return gpu


def _on_host(weights: Term, cpu_offload_gib: float | None) -> Term:
    """vLLM cpu_offload_gb: up to that many GiB of each GPU's weights stay in host memory and stream
    in each forward (vLLM 0.34 vllm/model_executor/offloader/base.py: cpu_offload_max_bytes = int(gb x 1024^3));
    the rest is resident."""
    if not cpu_offload_gib:
        return weights
    host = int(cpu_offload_gib * GIB)
    return Term(max(weights.value - host, 0), f"{weights.source}, less {cpu_offload_gib:g} GiB kept on the host "
                "(cpu_offload_gib)", f"{weights.formula} - {host:,} B")


def _measured_weights(inputs: BudgetInputs) -> Term | None:
    """weights_bytes as given; measured at another TP (weights_tp, a log's), the engine shards them
    by TP: rescaled by weights_tp / tp, and said so."""
    given = _given(inputs, "weights_bytes")
    if given is None or not inputs.weights_tp or inputs.weights_tp == inputs.tp:
        return given
    value = given.value * inputs.weights_tp // inputs.tp
    return Term(value, f"{given.source} at TP {inputs.weights_tp}, rescaled to TP {inputs.tp}",
                f"{given.value:,} B x {inputs.weights_tp} / {inputs.tp}")


def _given(inputs: BudgetInputs, field: str) -> Term | None:
    """A term the user gave; its source is the field's name, which the CLI shows as its flag."""
    value = getattr(inputs, field)
    if value is None:
        return None
    if not inputs.terms_from:
        return Term(value, field, "given")
    rest = " (all the non-KV memory but the weights)" if field == "activation_bytes" else ""
    return Term(value, f"as logged in {inputs.terms_from}{rest}", "given")


def served_dtype(model: ModelSpec, gpu: GpuSpec | None, inputs: BudgetInputs) -> tuple[str, str]:
    """(the dtype the engine serves weights and activations in, and why): a 16- or 32-bit
    weights_dtype given, else the engine's rule for an auto dtype on this GPU."""
    if inputs.weights_dtype in DTYPE_BYTES and inputs.weights_dtype != "fp8":
        return inputs.weights_dtype, "given"
    return engine_entry(inputs.engine).auto_dtype(model, gpu)


def _weights(model: ModelSpec, inputs: BudgetInputs, dtype: str) -> Term:
    cast = inputs.weights_dtype == "auto" and not model.quantization and dtype != model.compute_dtype
    total, how = weights_bytes(model, dtype if cast else inputs.weights_dtype)  # cast at load: the served width
    split = inputs.tp * inputs.pp
    label = (inputs.weights_dtype if inputs.weights_dtype != "auto" else
             f"checkpoint {model.dtype}, served {dtype}" if cast else f"checkpoint, {model.quantization or model.dtype}")
    towers = f", vision tower {model.tower_params / 1e9:,.2f}B" if model.tower_params else ""
    source = f"{model.params_total / 1e9:,.1f}B params ({label}{towers})" + (f" / {split} GPUs" if split > 1 else "")
    return Term(weights_per_gpu(total, inputs.tp, inputs.pp), source, how + (f", / {split}" if split > 1 else ""))


def _binding_stage(model: ModelSpec, inputs: BudgetInputs, engine: Engine, replica: Replica, limits: BatchLimits,
                   dtype: str, total: Term, util: float, weights: Term, activation: Term,
                   overhead: Term, lora_bytes: int = 0) -> tuple[Term, Term, int, Step]:
    """Each pipeline stage sizes its own pool from its own weights (the embedding on the first, the LM
    head on the last, its share of the layers) and activation (only the last samples); the engine
    keeps the smallest (vLLM: the fewest blocks over the workers). The pools are compared per token
    of the fullest stage's layers, which every per-request count here assumes; returns the binding
    stage's weights and activation, its pool in those terms, and the step that says so."""
    layers = pp_layers(model.num_layers, inputs.pp)
    fullest = max(layers)
    given_weights = inputs.weights_bytes is not None
    if given_weights:
        stage_bytes = [(weights.value, weights.formula)] * inputs.pp
    else:
        cast = inputs.weights_dtype == "auto" and not model.quantization and dtype != model.compute_dtype
        whole = weights_bytes(model, dtype if cast else inputs.weights_dtype)[0]
        extra = weights.value - weights_per_gpu(whole, inputs.tp, inputs.pp)  # the engine's buffers, every GPU
        stage_bytes = [(w + extra, formula + (f" + {extra:,} B" if extra else ""))
                       for w, formula in stage_weights(model, whole, inputs.tp, inputs.pp, 4 if dtype == "fp32" else 2)]
    stages = []
    for i, (count, (own, formula)) in enumerate(zip(layers, stage_bytes)):
        last = i == inputs.pp - 1
        act = activation if inputs.activation_bytes is not None or last else \
            engine.activation(model, replace(replica, samples=False), limits)
        pool = engine.pool(total.value, util, own + lora_bytes, act.value, overhead.value)
        stages.append((pool * fullest // count if pool > 0 else pool, i, count, own, formula, act))
    pool, i, count, own, formula, act = min(stages)
    listing = ", ".join(f"{c} layers: {p / GIB:.2f} GiB" for p, _, c, _, _, _ in stages)
    step = Step(label=f"pipeline stages ({inputs.pp})", value=f"stage {i + 1}: {pool:,} B",
                formula=f"each stage's pool per {fullest} layers ({listing}); the engine keeps the smallest")
    stage = f"; stage {i + 1} of {inputs.pp}: {count} layers" + (", the embedding" if i == 0 else "") + \
        (", the LM head" if i == inputs.pp - 1 else "")
    source = weights.source.replace(f" / {inputs.tp * inputs.pp} GPUs", "") + ("" if given_weights else stage)
    return Term(own, source, formula), act, pool, step


def _with_extras(weights: Term, extras: list[tuple[int, str]]) -> Term:
    """The parameters' bytes and what the engine loads beside them (a RoPE table, padding)."""
    if not extras:
        return weights
    return Term(weights.value + sum(b for b, _ in extras), weights.source + "".join(f" + {w}" for _, w in extras),
                weights.formula + "".join(f" + {b:,} B ({w})" for b, w in extras))


def _explain(engine: Engine, terms: dict[str, Term], util: float, pool: int, page: int, padding: int, blocks: int,
             block: int, tokens: int, max_model_len: int, packed_groups: int = 0) -> list[Step]:
    steps = [Step(label=name, formula=term.formula or term.source, value=f"{term.value:,} B")
             for name, term in terms.items()]
    formula = engine.formula.replace("util", f"{util:g}")
    if "lora" in terms:  # vLLM counts the LoRA buffers with the weights (vllm_lora.py)
        formula = formula.replace("weights", "weights + lora")
    for name, term in terms.items():
        formula = formula.replace(name, f"{term.value / GIB:.2f} GiB")
    return steps + [
        Step(label=f"KV pool ({engine.name})", formula=formula, value=f"{pool:,} B"),
        Step(label="page, all layers", formula=f"{block} tokens x KV bytes per token", value=f"{page:,} B")
        if not packed_groups else Step(label=f"block, widest of {packed_groups} groups", value=f"{page:,} B",
                                       formula="caches packed side by side in a block (vLLM packed KV cache groups)"),
        *([Step(label="padding layers' pages", formula="the last group of each layer kind filled to the group size, "
                "smaller pages grown to the largest (vLLM KV cache groups)", value=f"{padding:,} B")] if padding else []),
        Step(label="blocks", formula=f"floor({max(pool, 0):,} B / {page + padding:,} B)", value=f"{blocks:,}"),
        Step(label="token capacity", value=f"{tokens:,}",
             formula=f"{blocks:,} blocks x {block} tokens" if tokens == blocks * block else
             f"max concurrency x max_model_len {max_model_len:,} (as the engine logs it)"),
    ]
