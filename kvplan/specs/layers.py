"""What a model's layers cache: one small frozen class per attention kind (full, sliding window,
chunked local, MLA latent, Mamba state, Gated DeltaNet state, MLP-only), each answering the
questions of :class:`~kvplan.specs.layer_kind.LayerKind` under the same names, so calculators never
branch on `kind`. The kinds of one family live in :mod:`kvplan.specs.kinds` (Gemma-4's KV-shared
layers, Llama-3.2 Vision's cross-attention, MiniMax's lightning state and block-sparse attention,
DeepSeek-V4's windows and compressed latents) and are imported only where a model has one: their
tags and modules are in :data:`FAMILY_KINDS`; :mod:`kvplan.specs.layer_union` holds the union of
every kind a YAML file may name. :func:`layer_class` looks one up and refuses an unknown name. What
each kind prints is in :mod:`kvplan.specs.layer_text`, not here.

Sizes are integers; dtypes are named (``bf16``) and their widths live in :mod:`kvplan.units`.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from kvplan.errors import SpecError
from kvplan.specs.base import Dim, Heads, Layers, Tokens
from kvplan.specs.layer_base import (SsmDtype, _AttentionLayers, _check_tp_split, _ConstantState, _EveryToken,
                                     _Kind, _split_evenly)
from kvplan.specs.layer_kind import AttentionShape, LayerKind
from kvplan.units import KvFormat, ceil_div

__all__ = ["FAMILY_KINDS", "KIND_TAGS", "SHARED_KINDS", "AttentionShape", "ChunkedLocalAttention",
           "DecompressedAttention", "FullAttention", "GatedDeltaNetState", "LayerKind", "MLALatent", "MambaState",
           "MlpOnly", "SlidingWindowAttention", "layer_class"]


class FullAttention(_EveryToken, _AttentionLayers):
    """Full causal attention (MHA, GQA or MQA by num_kv_heads): caches every token."""

    kind: Literal["full"] = "full"


class SlidingWindowAttention(_AttentionLayers):
    """Sliding-window attention: a layer never holds more than its window. Attention sinks (gpt-oss:
    a learned logit per head that takes softmax mass) are weights, not cache: they add no byte."""

    kind: Literal["sliding"] = "sliding"
    window: Tokens
    sinks: Annotated[bool, Strict()] = False

    def cached_tokens(self, ctx: int) -> int:
        return min(ctx, self.window)

    def attended_pairs(self, ctx: int) -> int:
        w = min(ctx, self.window)
        return w * (w + 1) // 2 + (ctx - w) * self.window

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """SlidingWindowSpec: during a chunked prefill the last window - 1 computed tokens plus the
        newly scheduled ones, at most max_model_len; + 1 page because the window need not start on
        a page boundary."""
        num_tokens = min(self.window - 1 + max_num_batched_tokens, max_model_len)
        return ceil_div(num_tokens, block_size) + 1


class ChunkedLocalAttention(_AttentionLayers):
    """Chunked local attention (Llama-4): tokens attend within their chunk; at most one chunk held."""

    kind: Literal["chunked"] = "chunked"
    chunk: Tokens

    def cached_tokens(self, ctx: int) -> int:
        return min(ctx, self.chunk)

    def attended_pairs(self, ctx: int) -> int:
        full, rest = divmod(ctx, self.chunk)  # tokens attend within their own chunk
        return full * self.chunk * (self.chunk + 1) // 2 + rest * (rest + 1) // 2

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """ChunkedLocalAttentionSpec: at most a chunk of computed tokens plus the newly scheduled
        ones, at most max_model_len; no extra page."""
        return ceil_div(min(self.chunk + max_num_batched_tokens, max_model_len), block_size)


class MLALatent(_EveryToken):
    """Multi-head latent attention (DeepSeek): one compressed latent plus a shared RoPE key per token.

    The latent is not split by heads, so every tensor-parallel rank keeps all of it.
    """

    kind: Literal["mla"] = "mla"
    count: Layers
    kv_lora_rank: Dim
    qk_rope_head_dim: Dim
    num_heads: Heads
    qk_nope_head_dim: Dim
    v_head_dim: Dim
    # The query's low rank (config q_lora_rank; None: a full-rank q_proj, DeepSeek-V2-Lite): with the
    # latent's down-projection it is a weight no TP rank splits (vllm_alloc.py).
    q_lora_rank: Dim | None = None

    # DeepSeek sparse attention (V3.2): a lightning indexer caches one key of index_head_dim per
    # token and layer, in vLLM's fp8 format whatever the KV dtype: 1 B per value and one fp32 scale
    # per 128 values (DeepseekV32IndexerCache: 128 + 4 = 132 B), whole on every rank.
    index_head_dim: Dim | None = None
    index_n_heads: Heads | None = None  # the indexer's query heads (config index_n_heads): its weights' width
    # A sparse-attention layer without an indexer of its own (GLM-5.2's indexer_types "shared"): it
    # reads the top-k of the closest preceding layer that has one, so it caches no indexer key, but
    # its latent keeps the sparse layout (vLLM 0.34 models/deepseek_v32/attention.py builds it with
    # use_sparse=True and indexer=None; see kvplan.specs.archs.glm_dsa).
    shared_indexer: Annotated[bool, Strict()] = False

    @model_validator(mode="after")
    def check_indexer(self) -> MLALatent:
        if self.shared_indexer and self.index_head_dim:
            raise ValueError("an mla group has either its own indexer (index_head_dim) or shares one "
                             "(shared_indexer: true), not both; remove one")
        return self

    @property
    def is_sparse(self) -> bool:
        """DeepSeek sparse attention: an indexer of its own or a neighbour's."""
        return bool(self.index_head_dim) or self.shared_indexer

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim  # replicated on every rank

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        if not self.index_head_dim:
            return 0
        return self.index_head_dim + ceil_div(self.index_head_dim, 128) * 4

    def kv_bytes_per_token(self, kv_format: KvFormat, tp: int = 1) -> int:
        """In fp8 a sparse-attention (DSA) model stores the latent with one fp32 scale per 128 values
        and the RoPE key in bf16 (vLLM's fp8_ds_mla, SGLang's DSATokenToKVPool): 512 + 4 x 4 + 64 x 2 =
        656 B for DeepSeek-V3.2, where a dense MLA model's fp8 latent is 576 B. A layer that shares its
        indexer keeps this layout: every sparse layer's latent is fp8_ds_mla in fp8
        (mla_attention.py _canonicalize_sparse_mla_kv_cache_dtype, 0.34)."""
        if self.is_sparse and kv_format.name == "fp8":
            latent = self.kv_lora_rank + ceil_div(self.kv_lora_rank, 128) * 4 + self.qk_rope_head_dim * 2
            return latent + self.fixed_bytes_per_token(tp)
        return super().kv_bytes_per_token(kv_format, tp)

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        """Prefill runs MLA decompressed: QK over nope + rope dims (192) and PV over v (128)."""
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        return AttentionShape(self.num_heads, self.num_heads, qk, self.v_head_dim)

    def mha_equivalent(self, num_attention_heads: int) -> LayerKind:
        return DecompressedAttention(count=self.count, num_heads=self.num_heads,
                                     k_head_dim=self.qk_nope_head_dim + self.qk_rope_head_dim,
                                     v_head_dim=self.v_head_dim)


class DecompressedAttention(_EveryToken):
    """MLA decompressed: plain multi-head attention with distinct K and V head sizes, what an MLA
    layer would cache without its latent.

    Not a YAML kind (not in KINDS); only built by :meth:`MLALatent.mha_equivalent` for the
    "without GQA" comparison.
    """

    kind: Literal["mha"] = "mha"
    count: Layers
    num_heads: Heads
    k_head_dim: Dim
    v_head_dim: Dim

    def heads_per_rank(self, tp: int = 1) -> int:
        return max(1, self.num_heads // tp)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        _check_tp_split("attention heads", self.num_heads, tp)
        return self.heads_per_rank(tp) * (self.k_head_dim + self.v_head_dim)

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return self.heads_per_rank(tp)

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        return AttentionShape(self.num_heads, self.num_heads, self.k_head_dim, self.v_head_dim)


class MambaState(_ConstantState):
    """Mamba / SSM layers: a constant per-request state, whatever the context, as vLLM allocates it.

    conv state: conv_channels / TP x (d_conv - 1), conv_channels = d_inner + 2 x n_groups x d_state
                (n_groups = 0 for Mamba-1, whose convolution runs over d_inner only);
    ssm state:  d_inner / TP x d_state (Mamba-2: heads / TP x head_dim x d_state, the same number).
    Under TP, Mamba-2 groups that do not split evenly are replicated up to the TP size (vLLM's
    extra_groups_for_head_shards).

    parallel: the mixers run beside the attention of the same decoder layers, not as layers of their
    own (Falcon-H1's FalconH1ParallelHybrid: every layer has an attention and a Mamba-2 branch, and
    each registers its own cache with vLLM's KV cache manager). Such a group counts no layer of
    num_layers: its count is how many of those layers carry a mixer.
    """

    kind: Literal["mamba"] = "mamba"
    count: Layers
    d_inner: Dim
    d_state: Dim
    d_conv: Dim
    n_groups: Annotated[int, Strict(), Field(ge=0, le=65_536)] = 0
    num_heads: Heads | None = None  # Mamba-2: d_inner = num_heads x head_dim
    ssm_dtype: SsmDtype | None = None  # the ssm state's dtype when it is not the model's
    parallel: Annotated[bool, Strict()] = False  # beside the attention of the same layers (Falcon-H1)

    def recurrent_elements(self, tp: int = 1) -> int:
        return _split_evenly("Mamba inner size", self.d_inner, tp) * self.d_state

    def groups_after_tp_replication(self, tp: int) -> int:
        """Groups after vLLM's replication for TP, all ranks together (unchanged when TP divides them)."""
        if not self.n_groups or self.n_groups % tp == 0:
            return self.n_groups
        return self.n_groups + (tp - self.n_groups)

    def conv_channels(self, tp: int = 1) -> int:
        return self.d_inner + 2 * self.groups_after_tp_replication(tp) * self.d_state

    def conv_row_elements(self, tp: int = 1) -> int:
        return _split_evenly("Mamba conv channels", self.conv_channels(tp), tp)

    def state_elements(self, tp: int = 1) -> int:
        if self.num_heads:
            _split_evenly("Mamba heads", self.num_heads, tp)
        conv = _split_evenly("Mamba conv channels", self.conv_channels(tp), tp) * (self.d_conv - 1)
        return conv + _split_evenly("Mamba inner size", self.d_inner, tp) * self.d_state


class GatedDeltaNetState(_ConstantState):
    """Gated DeltaNet linear attention (Qwen3-Next): a constant state per request and layer, as vLLM
    allocates it (MambaStateShapeCalculator.gated_delta_net_state_shape):

    conv state:      conv_dim / TP x (conv_kernel - 1), conv_dim = 2 x k_heads x k_dim + v_heads x v_dim;
    recurrent state: v_heads / TP x v_dim x k_dim.
    """

    kind: Literal["gdn"] = "gdn"
    count: Layers
    num_k_heads: Heads
    num_v_heads: Heads
    head_k_dim: Dim
    head_v_dim: Dim
    conv_kernel: Dim
    ssm_dtype: SsmDtype | None = None  # the recurrent state's dtype when it is not the model's

    def recurrent_elements(self, tp: int = 1) -> int:
        return _split_evenly("linear-attention value heads", self.num_v_heads, tp) * self.head_v_dim * self.head_k_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.num_k_heads * self.head_k_dim + self.num_v_heads * self.head_v_dim

    def conv_row_elements(self, tp: int = 1) -> int:
        return _split_evenly("linear-attention conv channels", self.conv_dim, tp)

    def state_elements(self, tp: int = 1) -> int:
        _split_evenly("linear-attention key heads", self.num_k_heads, tp)
        conv = _split_evenly("linear-attention conv channels", self.conv_dim, tp) * (self.conv_kernel - 1)
        return conv + self.recurrent_elements(tp)


class MlpOnly(_Kind):
    """A block with no attention or SSM (Nemotron-H's MLP layers): nothing cached."""

    kind: Literal["mlp"] = "mlp"
    count: Layers


# The shared kinds, and the kinds of one family by tag: (module, class), imported where a spec names
# one (layer_class) or where every kind is needed (kvplan.specs.layer_union, for validation).
SHARED_KINDS: dict[str, type[_Kind]] = {cls.model_fields["kind"].default: cls for cls in (
    FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState, GatedDeltaNetState, MlpOnly)}
FAMILY_KINDS: dict[str, tuple[str, str]] = {
    "shared_kv": ("kvplan.specs.kinds.gemma4", "SharedKvAttention"),
    "cross": ("kvplan.specs.kinds.mllama", "CrossAttention"),
    "lightning": ("kvplan.specs.kinds.minimax", "LightningState"),
    "dsv4_swa": ("kvplan.specs.kinds.deepseek_v4", "DeepseekV4Window"),
    "dsv4_compressed": ("kvplan.specs.kinds.deepseek_v4", "DeepseekV4Compressed"),
    "msa": ("kvplan.specs.kinds.minimax_m3", "BlockSparseAttention"),
}
KIND_TAGS: tuple[str, ...] = (*SHARED_KINDS, *FAMILY_KINDS)


def layer_class(kind: str) -> type[_Kind]:
    """The class of a YAML layer kind (a family's module imported on first use); an unknown one is one
    line naming the known kinds."""
    if kind in SHARED_KINDS:
        return SHARED_KINDS[kind]
    if kind in FAMILY_KINDS:
        module, name = FAMILY_KINDS[kind]
        return getattr(importlib.import_module(module), name)
    raise SpecError(f"unknown layer kind {kind!r}; known kinds: {', '.join(KIND_TAGS)}")
