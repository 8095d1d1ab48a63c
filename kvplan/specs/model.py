"""A model spec: its identity, its sizes, and its layers grouped by attention kind."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, model_validator

from kvplan.specs.base import NAME_PATTERN, Bytes, Dim, Frozen, Heads, Layers, Params, Small, Tokens, Vocab
from kvplan.specs.vision import VisionSpec

if TYPE_CHECKING:  # the union of every layer kind: imported where a spec is validated (_with_every_kind)
    from kvplan.specs.layer_union import LayerGroup

WeightDtype = Literal["bf16", "fp16", "fp32", "fp8"]


def _calendar_date(value: object) -> date:
    """A date as YAML writes it (2025-04-29, read as a date) or as JSON does ("2025-04-29"); no
    number (pydantic would read 20250429 as seconds since 1970) and no time of day."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    elif isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError(f"{value!r} is not a date; give it as YYYY-MM-DD, e.g. 2025-04-29")


ReleaseDate = Annotated[date, BeforeValidator(_calendar_date)]


class MoESpec(Frozen):
    num_experts: Small
    experts_per_token: Small
    shared_experts: Annotated[int, Strict(), Field(ge=0, le=1_000_000)] = 0
    expert_intermediate_size: Dim | None = None

    @model_validator(mode="after")
    def check_top_k(self) -> MoESpec:
        if self.experts_per_token > self.num_experts:
            raise ValueError("experts_per_token must not exceed num_experts")
        return self


class ModelSpec(Frozen):
    """One model: its identity, its sizes, and its layers grouped by attention kind."""

    name: str = Field(pattern=NAME_PATTERN)
    display_name: str
    hf_repo: str | None = None
    aliases: tuple[str, ...] = ()
    family: str
    architecture: str
    source: str
    # The day this config was published (its release announcement, model card or first commit, which
    # released_source names); None where no checkable source gives one: never guessed.
    released: ReleaseDate | None = None
    released_source: str | None = None
    hidden_size: Dim
    intermediate_size: Dim
    vocab_size: Vocab
    num_layers: Layers
    num_attention_heads: Heads
    params_total: Params
    params_active: Params | None = None
    params_source: str | None = None
    checkpoint_bytes: Bytes | None = None
    # Parameters of the towers that run on images or audio (vision encoder, projector), included in
    # params_total: memory, but no work per text token.
    tower_params: Params | None = None
    # The vision tower's sizes where the engine profiles it (kvplan.specs.vision); None: text only.
    vision: VisionSpec | None = None
    # config.json's vision_config num_hidden_layers and hidden_size as the file states them (None where
    # it does not: Qwen-VL towers name their depth "depth"); SGLang 0.4.9.post3 on cuts its memory
    # fraction for a multimodal model by them (server_args adjust_mem_fraction_for_vlm).
    vision_num_hidden_layers: Layers | None = None
    vision_hidden_size: Dim | None = None
    dtype: WeightDtype
    max_context: Tokens
    tie_word_embeddings: Annotated[bool, Strict()] = False
    # Multi-token-prediction layers shipped beside the decoder (num_nextn_predict_layers, mtp_num_hidden_layers):
    # they run only as vLLM's MTP drafter (speculative method "mtp"; kvplan/calc/draft.py), never in the model
    mtp_layers: Annotated[int, Strict(), Field(ge=0, le=64)] = 0
    # An EAGLE-3 head's own output vocabulary (its config's draft_vocab_size: the rows of its lm_head,
    # mapped to the target's by d2t); None: the head's vocab_size (kvplan/calc/draft.py)
    draft_vocab_size: Vocab | None = None
    moe: MoESpec | None = None
    layers: tuple[LayerGroup, ...] = Field(min_length=1)
    notes: str | None = None
    # The checkpoint's weights format when it is quantized (weights follow it when --weights-dtype is
    # auto); None: the weights are stored in `dtype`.
    quantization: Literal["fp8", "int8", "int4", "nf4", "mxfp4", "nvfp4"] | None = None
    # Bits each quantized weight takes with its scales and zero points, where the checkpoint's
    # quantization_config says (group size, zero points); None: the format's usual figure.
    quantization_bits: Annotated[float, Strict(), Field(gt=0, le=64, allow_inf_nan=False)] | None = None
    # The KV cache the checkpoint is calibrated for (modelopt kv_cache_quant_algo, compressed-tensors
    # kv_cache_scheme): TensorRT-LLM's auto KV dtype takes it; None: the model's dtype.
    kv_cache_quant: Literal["fp8"] | None = None
    # Where this spec came from (the database file, a local path, the Hugging Face cache or Hub with
    # the revision sha, or a name it was inferred from): set by kvplan when it resolves a model.
    origin: str | None = None
    # What the engine loads, as the user named it: a Hugging Face repo id (a fine-tune's, an Instruct
    # or quantized repo's own, not its base's) or a local model folder; and the revision asked for.
    # Set by kvplan when it resolves a model; None for a database name, which serves hf_repo.
    served: str | None = None
    revision: str | None = None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> ModelSpec:
        """Validation builds the schema over every layer kind, importing their modules the first time."""
        _with_every_kind()
        return super().model_validate(obj, *args, **kwargs)

    def model_dump(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        _with_every_kind()
        return super().model_dump(*args, **kwargs)

    @model_validator(mode="after")
    def check_layer_count(self) -> ModelSpec:
        """Each decoder layer is counted once: a group flagged `parallel` (Falcon-H1's Mamba-2 mixers,
        which run beside the attention of the same layers) adds no layer, and can be in at most
        num_layers of them."""
        counted = sum(group.count for group in self.layers if not getattr(group, "parallel", False))
        if counted != self.num_layers:
            raise ValueError(f"layers add up to {counted} but num_layers is {self.num_layers}; "
                             "make the layer-group counts sum to num_layers (parallel groups not counted)")
        for i, group in enumerate(self.layers):
            if getattr(group, "parallel", False) and group.count > self.num_layers:
                raise ValueError(f"layers.{i} runs beside {group.count} layers but the model has {self.num_layers}; "
                                 "give a parallel group at most num_layers")
        return self

    @model_validator(mode="after")
    def check_released_source(self) -> ModelSpec:
        if self.released is not None and not self.released_source:
            raise ValueError(f"released {self.released} has no released_source; name the announcement, model card "
                             "or commit the date comes from")
        return self

    @model_validator(mode="after")
    def check_kv_heads(self) -> ModelSpec:
        """Grouped-query attention shares each KV head among an equal number of query heads."""
        for i, group in enumerate(self.layers):
            kv = getattr(group, "num_kv_heads", None)
            if kv is not None and (kv > self.num_attention_heads or self.num_attention_heads % kv):
                raise ValueError(f"layers.{i}.num_kv_heads {kv:,} does not divide num_attention_heads "
                                 f"{self.num_attention_heads:,}; give a divisor of it (GQA groups are equal)")
        return self

    @model_validator(mode="after")
    def check_moe_params(self) -> ModelSpec:
        if self.params_active is not None and self.params_active > self.params_total:
            raise ValueError("params_active exceeds params_total")
        if (self.moe is None) != (self.params_active is None):
            raise ValueError("params_active is given exactly when the model has a moe: block")
        return self

    @property
    def compute_dtype(self) -> str:
        """The dtype activations (and so an 'auto' KV cache) use: fp8 checkpoints compute in bf16."""
        return "bf16" if self.dtype == "fp8" else self.dtype

    @property
    def kernel_block_size(self) -> int | None:
        """The block size the attention kernels of a layer kind require (DeepSeek-V4's sparse MLA: 256
        tokens), the largest where several do; None where any block size serves."""
        sizes = [size for group in self.layers if (size := getattr(group, "KERNEL_BLOCK_SIZE", 0))]
        return max(sizes) if sizes else None

    @property
    def stored_layouts(self) -> tuple[str, ...]:
        """Layouts a layer kind stores whatever the KV dtype asked (DeepSeek-V4's fp8_ds_mla)."""
        return tuple(dict.fromkeys(layout for group in self.layers if (layout := getattr(group, "STORED_LAYOUT", ""))))

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def active_intermediate_size(self) -> int:
        """The MLP width one token passes through in a layer: intermediate_size for a dense model; for
        MoE the top-k routed experts plus the shared ones, each expert_intermediate_size wide
        (intermediate_size where that is not given). The shared experts run for every token, so they
        count. Evidence, parameters counted from this spec's sizes:

        DeepSeek-V3 (58 MoE layers, an expert is 3 x 7,168 x 2,048 = 44,040,192 parameters): with the
        shared expert, 9 experts a layer, 37,552,297,472 active (this spec's params_active; the paper's
        "37B activated"); without it, 8 a layer, 37,552,297,472 - 58 x 44,040,192 = 34,997,966,336.
        Llama-4-Scout (48 MoE layers, top-1 + 1 shared, an expert 3 x 5,120 x 8,192 = 125,829,120):
        with it 17,172,894,720 (Meta's "17B active"), without it 11,133,096,960.

        Qwen MoE's shared expert is one expert of its own width (shared_expert_intermediate_size,
        5,632 for Qwen1.5-MoE-A2.7B), which MoESpec does not record: there this counts it at
        expert_intermediate_size."""
        if self.moe is None:
            return self.intermediate_size
        expert = self.moe.expert_intermediate_size or self.intermediate_size
        return (self.moe.experts_per_token + self.moe.shared_experts) * expert

    @property
    def params_per_token(self) -> int:
        """Parameters that do work for each text token: params_active for MoE (which leaves the towers
        out), else the total less the towers."""
        return self.params_active or self.params_total - (self.tower_params or 0)


def _with_every_kind() -> None:
    """ModelSpec's schema, once, with the union of every layer kind (kvplan.specs.layer_union): a
    packaged spec read from the index is built without it (model_construct), so `kvplan size` imports
    only the kinds its model has."""
    if not ModelSpec.__pydantic_complete__:
        from kvplan.specs.layer_union import LayerGroup
        ModelSpec.model_rebuild(_types_namespace={"LayerGroup": LayerGroup})
