"""What each layer kind prints: a one-line description and the formulas `--explain` shows.

Numbers live on the spec classes (:mod:`kvplan.specs.layers`); the words live here, one function
per text, dispatched by class (functools.singledispatch), never by comparing kind names. Every kind
has every text (a kind without state says so), and a class with none registered fails loudly.
"""

from __future__ import annotations

from functools import singledispatch

from kvplan.specs.layers import (BlockSparseAttention, ChunkedLocalAttention, CrossAttention, DecompressedAttention,
                                 DeepseekV4Compressed, DeepseekV4Window, FullAttention, GatedDeltaNetState, LayerKind,
                                 LightningState, MambaState, MLALatent, MlpOnly, SharedKvAttention,
                                 SlidingWindowAttention)


def _no_text(what: str, group: object) -> str:
    raise TypeError(f"no {what} text for layer class {type(group).__name__}; register one in kvplan.specs.layer_text")


# --- describe: the layer's shape in a few words (the size table's second line) ----------------------

@singledispatch
def describe(group: LayerKind) -> str:
    return _no_text("describe", group)


def _heads(group: FullAttention | SlidingWindowAttention | ChunkedLocalAttention | SharedKvAttention
           | CrossAttention | BlockSparseAttention) -> str:
    if group.value_dim != group.head_dim:
        return f"{group.num_kv_heads} KV x (K {group.head_dim} + V {group.value_dim})"
    return f"{group.num_kv_heads} KV x {group.head_dim}"


@describe.register(FullAttention)
def _(group: FullAttention) -> str:
    return _heads(group)


@describe.register(SlidingWindowAttention)
def _(group: SlidingWindowAttention) -> str:
    return f"{_heads(group)}, window {group.window:,}" + (" + sinks" if group.sinks else "")


@describe.register(ChunkedLocalAttention)
def _(group: ChunkedLocalAttention) -> str:
    return f"{_heads(group)}, chunk {group.chunk:,}"


@describe.register(CrossAttention)
def _(group: CrossAttention) -> str:
    return f"{_heads(group)}, cross-attention to {group.vision_tokens:,} vision tokens"


@describe.register(BlockSparseAttention)
def _(group: BlockSparseAttention) -> str:
    return (f"{_heads(group)} + index key {group.index_head_dim}, top {group.index_topk_blocks} blocks of "
            f"{group.index_block_size:,}")


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


@describe.register(LightningState)
def _(group: LightningState) -> str:
    return f"{group.num_heads} heads x {group.head_dim} x {group.head_dim}"


@describe.register(MlpOnly)
def _(group: MlpOnly) -> str:
    return "no cache"


@describe.register(SharedKvAttention)
def _(group: SharedKvAttention) -> str:
    window = f", window {group.window:,}" if group.window else ""
    return f"reads layer {group.target_layer}'s KV ({_heads(group)}{window})"


@describe.register(DeepseekV4Window)
def _(group: DeepseekV4Window) -> str:
    return f"latent {group.head_dim}, window {group.window:,}"


@describe.register(DeepseekV4Compressed)
def _(group: DeepseekV4Compressed) -> str:
    indexer = f", indexer {group.index_head_dim}" if group.index_head_dim else ""
    return f"latent {group.head_dim}, 1 per {group.compress_ratio} tokens + window {group.window:,}{indexer}"


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


@bytes_formula.register(DeepseekV4Window)
@bytes_formula.register(DeepseekV4Compressed)
def _(group: DeepseekV4Window | DeepseekV4Compressed, fmt_name: str) -> str | None:
    nope = group.head_dim - group.rope_head_dim
    text = (f"NoPE {nope} x 1 B (fp8) + RoPE {group.rope_head_dim} x 2 B (bf16) + {nope // 64 + 1} B scales, "
            "vLLM's fp8_ds_mla whatever the KV dtype")
    if isinstance(group, DeepseekV4Compressed):
        ring = f"; + {group.ring_bytes_per_token():,} B fp32 ring a token for {group.ring_tokens()} tokens"
        key = f"; + {group.indexer_key_bytes()} B indexer key a compressed entry" if group.index_head_dim else ""
        text += key + ring
    return text


# --- fixed_formula: the bytes a token kept in a format of their own (fixed_bytes_per_token) ----------

@singledispatch
def fixed_formula(group: LayerKind, tp: int = 1) -> str:
    """DeepSeek's sparse-attention indexer key (MLALatent.index_head_dim): fp8 with its scales."""
    return f"indexer {group.fixed_bytes_per_token(tp):,} B (fp8 + scales)"


@fixed_formula.register(BlockSparseAttention)
def _(group: BlockSparseAttention, tp: int = 1) -> str:
    return f"index key {group.index_head_dim} x 2 B (bf16 whatever the KV dtype, on every rank)"


# --- elements_formula: how kv_elements_per_token comes about ------------------------------------------

@singledispatch
def elements_formula(group: LayerKind, tp: int = 1) -> str:
    return _no_text("elements_formula", group)


@elements_formula.register(FullAttention)
@elements_formula.register(SlidingWindowAttention)
@elements_formula.register(ChunkedLocalAttention)
@elements_formula.register(CrossAttention)
@elements_formula.register(BlockSparseAttention)
def _(group: FullAttention | SlidingWindowAttention | ChunkedLocalAttention | CrossAttention | BlockSparseAttention,
      tp: int = 1) -> str:
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


@elements_formula.register(DeepseekV4Window)
@elements_formula.register(DeepseekV4Compressed)
def _(group: DeepseekV4Window | DeepseekV4Compressed, tp: int = 1) -> str:
    return f"latent {group.head_dim} (K and V at once), on every rank"


@elements_formula.register(MambaState)
@elements_formula.register(GatedDeltaNetState)
@elements_formula.register(LightningState)
@elements_formula.register(MlpOnly)
def _(group: MambaState | GatedDeltaNetState | LightningState | MlpOnly, tp: int = 1) -> str:
    return "no per-token cache"


@elements_formula.register(SharedKvAttention)
def _(group: SharedKvAttention, tp: int = 1) -> str:
    return f"none of its own: layer {group.target_layer}'s cache, counted there"


# --- held_formula: how cached_tokens comes about -------------------------------------------------------

@singledispatch
def held_formula(group: LayerKind, ctx: int) -> str:
    return _no_text("held_formula", group)


@held_formula.register(FullAttention)
@held_formula.register(MLALatent)
@held_formula.register(DecompressedAttention)
def _(group: FullAttention | MLALatent | DecompressedAttention, ctx: int) -> str:
    return f"ctx {ctx:,}"


@held_formula.register(BlockSparseAttention)
def _(group: BlockSparseAttention, ctx: int) -> str:
    return f"ctx {ctx:,} (each query reads {group.index_topk_blocks} blocks of {group.index_block_size:,})"


@held_formula.register(SlidingWindowAttention)
def _(group: SlidingWindowAttention, ctx: int) -> str:
    return f"min(ctx {ctx:,}, window {group.window:,})"


@held_formula.register(ChunkedLocalAttention)
def _(group: ChunkedLocalAttention, ctx: int) -> str:
    return f"min(ctx {ctx:,}, chunk {group.chunk:,})"


@held_formula.register(CrossAttention)
def _(group: CrossAttention, ctx: int) -> str:
    return f"{group.vision_tokens:,} vision tokens of one image (none for a text-only request), whatever the context"


@held_formula.register(DeepseekV4Window)
def _(group: DeepseekV4Window, ctx: int) -> str:
    return f"min(ctx {ctx:,}, window {group.window:,})"


@held_formula.register(DeepseekV4Compressed)
def _(group: DeepseekV4Compressed, ctx: int) -> str:
    return f"min(ctx {ctx:,}, window {group.window:,}) + ctx // {group.compress_ratio} compressed"


@held_formula.register(MambaState)
@held_formula.register(GatedDeltaNetState)
@held_formula.register(LightningState)
def _(group: MambaState | GatedDeltaNetState | LightningState, ctx: int) -> str:
    return "a constant state, whatever the context"


@held_formula.register(MlpOnly)
@held_formula.register(SharedKvAttention)
def _(group: MlpOnly | SharedKvAttention, ctx: int) -> str:
    return "nothing"


# --- state_formula: how state_elements comes about -----------------------------------------------------

@singledispatch
def state_formula(group: LayerKind, tp: int = 1) -> str:
    return _no_text("state_formula", group)


@state_formula.register(FullAttention)
@state_formula.register(SlidingWindowAttention)
@state_formula.register(ChunkedLocalAttention)
@state_formula.register(CrossAttention)
@state_formula.register(MLALatent)
@state_formula.register(DecompressedAttention)
@state_formula.register(DeepseekV4Window)
@state_formula.register(DeepseekV4Compressed)
@state_formula.register(BlockSparseAttention)
@state_formula.register(MlpOnly)
@state_formula.register(SharedKvAttention)
def _(group: LayerKind, tp: int = 1) -> str:
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


@state_formula.register(LightningState)
def _(group: LightningState, tp: int = 1) -> str:
    split = f" / TP {tp}" if tp > 1 else ""
    return (f"{group.num_heads}{split} heads x {group.head_dim} x {group.head_dim} = "
            f"{group.state_elements(tp):,} elements")


TEXTS = (describe, elements_formula, held_formula, state_formula)
