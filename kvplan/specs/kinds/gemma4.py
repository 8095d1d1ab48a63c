"""Gemma-4's KV-shared layers (model_type gemma4 / gemma4_text): the last ``num_kv_shared_layers``
layers attend with queries of their own over the cache of an earlier layer, and cache nothing.

vLLM (model_executor/models/gemma4.py, Gemma4Attention.__init__, 0.19 and 0.34) gives each such layer
``kv_sharing_target_layer_name``: the last layer before the shared ones of the same type (sliding or
full). The model runner then makes no KV cache spec for it (v1/worker/gpu_model_runner.py
get_kv_cache_spec: "We skip creating a KVCacheSpec for it, so that KV cache management logic will act
as this layer does not exist"), so it takes no page, no start-up bytes and no place in a KV cache
group. It still runs attention: over its target's window (sliding) or every token (full).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kvplan.specs.base import Tokens
from kvplan.specs.layer_base import _AttentionLayers
from kvplan.specs.layer_kind import AttentionShape
from kvplan.units import KvFormat
from kvplan.specs.layer_text import describe, elements_formula, heads, held_formula, holds_nothing, no_state, state_formula


class SharedKvAttention(_AttentionLayers):
    """Layers that read another layer's K and V (Gemma-4's KV sharing): queries only, no cache.

    num_kv_heads and head_dim are the target layer's, whose cache these layers read; window is the
    target's sliding window (None: a full-attention target). target_layer is the index of that layer.
    """

    kind: Literal["shared_kv"] = "shared_kv"
    window: Tokens | None = None
    target_layer: int = Field(ge=0, le=10_000, strict=True)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 0  # the target's cache holds them

    def kv_bytes_per_token(self, kv_format: KvFormat, tp: int = 1) -> int:
        return 0

    def kv_page_layout(self, tp: int = 1) -> tuple[int, int] | None:
        return None  # no page of its own

    def attended_pairs(self, ctx: int) -> int:
        """The pairs its attention computes, as over the target's tokens: causal, within the window."""
        if self.window is None:
            return ctx * (ctx + 1) // 2
        w = min(ctx, self.window)
        return w * (w + 1) // 2 + (ctx - w) * self.window

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        return AttentionShape(num_attention_heads, self.num_kv_heads, self.head_dim, self.head_dim)


# --- words (kvplan.specs.layer_text) --------------------------------------------------------------------

@describe.register(SharedKvAttention)
def _(group: SharedKvAttention) -> str:
    window = f", window {group.window:,}" if group.window else ""
    return f"reads layer {group.target_layer}'s KV ({heads(group)}{window})"


@elements_formula.register(SharedKvAttention)
def _(group: SharedKvAttention, tp: int = 1) -> str:
    return f"none of its own: layer {group.target_layer}'s cache, counted there"


held_formula.register(SharedKvAttention, holds_nothing)
state_formula.register(SharedKvAttention, no_state)
