"""What each layer kind prints: a one-line description and the formulas `--explain` shows.

Numbers live on the spec classes (:mod:`kvplan.specs.layers`); the words live here, one function
per text, dispatched by class (functools.singledispatch), never by comparing kind names. Every kind
has every text (a kind without state says so), and a class with none registered fails loudly. The
kinds of one family (:mod:`kvplan.specs.kinds`) register their words at the end of their module,
with the helpers here, so that a model of the shared kinds imports none of them.
"""

from __future__ import annotations

from functools import singledispatch

from kvplan.specs.layer_base import _AttentionLayers
from kvplan.specs.layers import (ChunkedLocalAttention, DecompressedAttention, FullAttention, GatedDeltaNetState,
                                 LayerKind, MambaState, MLALatent, MlpOnly, SlidingWindowAttention)


def _no_text(what: str, group: object) -> str:
    raise TypeError(f"no {what} text for layer class {type(group).__name__}; register one in kvplan.specs.layer_text")


# --- describe: the layer's shape in a few words (the size table's second line) ----------------------

@singledispatch
def describe(group: LayerKind) -> str:
    return _no_text("describe", group)


def heads(group: _AttentionLayers) -> str:
    """KV heads and head sizes of an attention layer (a family's attention kind words itself with it too)."""
    if group.value_dim != group.head_dim:
        return f"{group.num_kv_heads} KV x (K {group.head_dim} + V {group.value_dim})"
    return f"{group.num_kv_heads} KV x {group.head_dim}"


@describe.register(FullAttention)
def _(group: FullAttention) -> str:
    return heads(group)


@describe.register(SlidingWindowAttention)
def _(group: SlidingWindowAttention) -> str:
    return f"{heads(group)}, window {group.window:,}" + (" + sinks" if group.sinks else "")


@describe.register(ChunkedLocalAttention)
def _(group: ChunkedLocalAttention) -> str:
    return f"{heads(group)}, chunk {group.chunk:,}"


@describe.register(MLALatent)
def _(group: MLALatent) -> str:
    indexer = f", indexer {group.index_head_dim}" if group.index_head_dim else ""
    indexer = ", indexer shared" if group.shared_indexer else indexer
    return f"latent {group.kv_lora_rank} + rope {group.qk_rope_head_dim}{indexer}"


@describe.register(DecompressedAttention)
def _(group: DecompressedAttention) -> str:
    return f"{group.num_heads} heads x (K {group.k_head_dim} + V {group.v_head_dim})"


@describe.register(MambaState)
def _(group: MambaState) -> str:
    return f"d_inner {group.d_inner}, state {group.d_state}, conv {group.d_conv}" + (
        f", {group.n_groups} groups" if group.n_groups else "") + (", beside attention" if group.parallel else "")


@describe.register(GatedDeltaNetState)
def _(group: GatedDeltaNetState) -> str:
    return f"{group.num_k_heads} K / {group.num_v_heads} V heads x {group.head_k_dim}/{group.head_v_dim}"


@describe.register(MlpOnly)
def _(group: MlpOnly) -> str:
    return "no cache"


# --- bytes_formula: where a kind's bytes a token are not its elements x the KV dtype's width ---------

@singledispatch
def bytes_formula(group: LayerKind, fmt_name: str) -> str | None:
    """How the bytes a token come about where a layout departs from elements x width (None: it does not)."""
    return None


@bytes_formula.register(MLALatent)
def _(group: MLALatent, fmt_name: str) -> str | None:
    if not (group.is_sparse and fmt_name == "fp8"):
        return None
    scales = -(-group.kv_lora_rank // 128)
    return (f"latent {group.kv_lora_rank} x 1 B (fp8) + {scales} scales x 4 B + rope {group.qk_rope_head_dim} "
            f"x 2 B (bf16), the sparse-attention layout")


# --- fixed_formula: the bytes a token kept in a format of their own (fixed_bytes_per_token) ----------

@singledispatch
def fixed_formula(group: LayerKind, tp: int = 1) -> str:
    """DeepSeek's sparse-attention indexer key (MLALatent.index_head_dim): fp8 with its scales."""
    return f"indexer {group.fixed_bytes_per_token(tp):,} B (fp8 + scales)"


# --- elements_formula: how kv_elements_per_token comes about ------------------------------------------

@singledispatch
def elements_formula(group: LayerKind, tp: int = 1) -> str:
    return _no_text("elements_formula", group)


@elements_formula.register(FullAttention)
@elements_formula.register(SlidingWindowAttention)
@elements_formula.register(ChunkedLocalAttention)
def attention_elements(group: _AttentionLayers, tp: int = 1) -> str:
    """K and V of an attention layer's heads on one rank (a family's attention kind registers it too)."""
    shared = f" ({group.num_kv_heads} KV heads / TP {tp})" if tp > 1 else ""
    if group.value_dim != group.head_dim:
        return f"{group.kv_heads_per_rank(tp)} heads{shared} x (K {group.head_dim} + V {group.value_dim})"
    return f"2 (K,V) x {group.kv_heads_per_rank(tp)} heads{shared} x head_dim {group.head_dim}"


@elements_formula.register(MLALatent)
def _(group: MLALatent, tp: int = 1) -> str:
    return f"(kv_lora_rank {group.kv_lora_rank} + rope {group.qk_rope_head_dim}), on every rank"


@elements_formula.register(DecompressedAttention)
def _(group: DecompressedAttention, tp: int = 1) -> str:
    return f"{group.heads_per_rank(tp)} heads x (K {group.k_head_dim} + V {group.v_head_dim})"


@elements_formula.register(MambaState)
@elements_formula.register(GatedDeltaNetState)
@elements_formula.register(MlpOnly)
def no_token_cache(group: MambaState | GatedDeltaNetState | MlpOnly, tp: int = 1) -> str:
    return "no per-token cache"


# --- held_formula: how cached_tokens comes about -------------------------------------------------------

@singledispatch
def held_formula(group: LayerKind, ctx: int) -> str:
    return _no_text("held_formula", group)


@held_formula.register(FullAttention)
@held_formula.register(MLALatent)
@held_formula.register(DecompressedAttention)
def _(group: FullAttention | MLALatent | DecompressedAttention, ctx: int) -> str:
    return f"ctx {ctx:,}"


@held_formula.register(SlidingWindowAttention)
def _(group: SlidingWindowAttention, ctx: int) -> str:
    return f"min(ctx {ctx:,}, window {group.window:,})"


@held_formula.register(ChunkedLocalAttention)
def _(group: ChunkedLocalAttention, ctx: int) -> str:
    return f"min(ctx {ctx:,}, chunk {group.chunk:,})"


@held_formula.register(MambaState)
@held_formula.register(GatedDeltaNetState)
def constant_state(group: MambaState | GatedDeltaNetState, ctx: int) -> str:
    return "a constant state, whatever the context"


@held_formula.register(MlpOnly)
def holds_nothing(group: MlpOnly, ctx: int) -> str:
    return "nothing"


# --- state_formula: how state_elements comes about -----------------------------------------------------

@singledispatch
def state_formula(group: LayerKind, tp: int = 1) -> str:
    return _no_text("state_formula", group)


@state_formula.register(FullAttention)
@state_formula.register(SlidingWindowAttention)
@state_formula.register(ChunkedLocalAttention)
@state_formula.register(MLALatent)
@state_formula.register(DecompressedAttention)
@state_formula.register(MlpOnly)
def no_state(group: LayerKind, tp: int = 1) -> str:
    return "no per-request state"


@state_formula.register(MambaState)
def _(group: MambaState, tp: int = 1) -> str:
    split = f" / TP {tp}" if tp > 1 else ""
    return (f"conv {group.conv_channels(tp):,}{split} x ({group.d_conv} - 1) + ssm {group.d_inner:,}{split} x "
            f"{group.d_state} = {group.state_elements(tp):,} elements")


@state_formula.register(GatedDeltaNetState)
def _(group: GatedDeltaNetState, tp: int = 1) -> str:
    split = f" / TP {tp}" if tp > 1 else ""
    return (f"conv {group.conv_dim:,}{split} x ({group.conv_kernel} - 1) + recurrent {group.num_v_heads}{split} x "
            f"{group.head_v_dim} x {group.head_k_dim} = {group.state_elements(tp):,} elements")


TEXTS = (describe, elements_formula, held_formula, state_formula)
