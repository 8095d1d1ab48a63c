"""A model spec: its identity, its sizes, and its layers grouped by attention kind."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from kvplan.specs.base import NAME_PATTERN, Bytes, Dim, Frozen, Heads, Layers, Params, Small, Tokens, Vocab
from kvplan.specs.layers import LayerGroup

WeightDtype = Literal["bf16", "fp16", "fp32", "fp8"]


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
    dtype: WeightDtype
    max_context: Tokens
    tie_word_embeddings: Annotated[bool, Strict()] = False
    moe: MoESpec | None = None
    layers: tuple[LayerGroup, ...] = Field(min_length=1)
    notes: str | None = None
    # The checkpoint's weights format when it is quantized (weights follow it when --weights-dtype is
    # auto); None: the weights are stored in `dtype`.
    quantization: Literal["fp8", "int8", "int4", "nf4", "mxfp4", "nvfp4"] | None = None
    # Bits each quantized weight takes with its scales and zero points, where the checkpoint's
    # quantization_config says (group size, zero points); None: the format's usual figure.
    quantization_bits: Annotated[float, Strict(), Field(gt=0, le=64, allow_inf_nan=False)] | None = None
    # Where this spec came from (the database file, a local path, the Hugging Face cache or Hub with
    # the revision sha, or a name it was inferred from): set by kvplan when it resolves a model.
    origin: str | None = None

    @model_validator(mode="after")
    def check_layer_count(self) -> ModelSpec:
        counted = sum(group.count for group in self.layers)
        if counted != self.num_layers:
            raise ValueError(f"layers add up to {counted} but num_layers is {self.num_layers}; "
                             "make the layer-group counts sum to num_layers")
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
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def params_per_token(self) -> int:
        """Parameters that do work for each text token: params_active for MoE (which leaves the towers
        out), else the total less the towers."""
        return self.params_active or self.params_total - (self.tower_params or 0)
