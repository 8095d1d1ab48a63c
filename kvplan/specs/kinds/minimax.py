"""MiniMax's lightning attention (MiniMax-Text-01, MiniMax-M1): a linear attention whose per-request
cache is one constant state, beside a few full-attention layers."""

from __future__ import annotations

from typing import Literal

from kvplan.specs.base import Dim, Heads, Layers
from kvplan.specs.layer_base import _ConstantState, _split_evenly
from kvplan.specs.layer_text import constant_state, describe, elements_formula, held_formula, no_token_cache, state_formula


class LightningState(_ConstantState):
    """Lightning (linear) attention layers: one key-value state per request and layer, whatever the
    context, as vLLM 0.19 allocates it (the family was removed in 0.23):

    state: num_heads / TP x head_dim x head_dim
           (model_executor/layers/mamba/mamba_utils.py MambaStateShapeCalculator.linear_attention_state_shape,
           called by MiniMaxText01LinearAttention.get_state_shape and
           MiniMaxText01ForCausalLM.get_mamba_state_shape_from_config with the config's
           num_attention_heads and head_dim);
    dtype: the model's (MambaStateDtypeCalculator.linear_attention_state_dtype: mamba_cache_dtype
           "auto" is the model dtype; "float32" is refused there), so there is no ssm_dtype field.

    No convolution state: the whole state is the recurrent one. The heads split evenly across ranks
    (MiniMaxText01LinearAttention asserts num_heads % tp == 0)."""

    kind: Literal["lightning"] = "lightning"
    count: Layers
    num_heads: Heads
    head_dim: Dim

    def recurrent_elements(self, tp: int = 1) -> int:
        return self.state_elements(tp)

    def state_elements(self, tp: int = 1) -> int:
        heads = _split_evenly("lightning-attention heads", self.num_heads, tp)
        return heads * self.head_dim * self.head_dim


# --- words (kvplan.specs.layer_text) --------------------------------------------------------------------

@describe.register(LightningState)
def _(group: LightningState) -> str:
    return f"{group.num_heads} heads x {group.head_dim} x {group.head_dim}"


@state_formula.register(LightningState)
def _(group: LightningState, tp: int = 1) -> str:
    split = f" / TP {tp}" if tp > 1 else ""
    return (f"{group.num_heads}{split} heads x {group.head_dim} x {group.head_dim} = "
            f"{group.state_elements(tp):,} elements")


elements_formula.register(LightningState, no_token_cache)
held_formula.register(LightningState, constant_state)
