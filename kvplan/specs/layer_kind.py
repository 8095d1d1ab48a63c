"""The questions every layer kind answers, under one set of names: :class:`LayerKind`.

The model is vLLM's ``KVCacheSpec`` (vllm/v1/kv_cache_interface.py): one small frozen class per
kind, each answering ``page_size_bytes`` and ``max_memory_usage_bytes``, so the planning code above
it never asks which kind it holds. Units are in the names (``*_bytes``, ``*_tokens``, ``*_pages``,
``*_elements``); "per layer" everywhere: a group of ``count`` layers multiplies by ``count``.
Display strings are not part of it: they live in :mod:`kvplan.specs.layer_text`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from kvplan.units import KvFormat


class AttentionShape(NamedTuple):
    """The attention a prefill computes, decompressed (MLA runs its prefill as plain MHA)."""

    q_heads: int
    kv_heads: int
    qk_head_dim: int  # of queries and keys
    v_head_dim: int


class BlockCache(NamedTuple):
    """One of the caches a layer gives vLLM a KVCacheSpec each for, where they pack side by side in a
    block (DeepSeek-V4's window, compressed latents, indexer keys and compressor rings: 0.34
    kv_cache_planning._get_packed_kv_cache_groups). vLLM buckets caches of one block size and window
    together (UniformTypeKVCacheSpecs.is_uniform_type: MLAAttentionSpec, SlidingWindowMLASpec)."""

    name: str  # what it holds, for texts: "window", "latents", "indexer keys", "ring", "indexer ring"
    block_tokens: int  # the tokens a block of it covers (its spec's block_size)
    window: int | None  # SlidingWindowSpec.sliding_window; None: a FullAttentionSpec, every token kept
    page_bytes: int  # one block of one layer, padded (page_size_bytes)

    def max_pages(self, max_model_len: int, in_flight_tokens: int) -> int:
        """Blocks one request of max_model_len takes (max_memory_usage_bytes / page_size_bytes): every
        token's for a full cache; for a window, window - 1 + the tokens in flight, at most
        max_model_len, + 1 (SlidingWindowSpec.max_admission_blocks_per_request)."""
        if self.window is None:
            return -(-max_model_len // self.block_tokens)
        return -(-min(self.window - 1 + in_flight_tokens, max_model_len) // self.block_tokens) + 1

    def held_pages(self, ctx: int) -> int:
        """Blocks a request of ctx tokens holds once out-of-window blocks are freed: a window's last
        min(ctx, window) tokens can straddle one block more than they fill."""
        if self.window is None:
            return -(-ctx // self.block_tokens)
        return (ctx - 1) // self.block_tokens - max(ctx - self.window, 0) // self.block_tokens + 1


@runtime_checkable
class LayerKind(Protocol):
    """One group of `count` identical layers, as the calculators see it (all numbers per layer)."""

    @property
    def kind(self) -> str:
        """The YAML discriminator ("full", "sliding", "chunked", "mla", "mamba", "gdn", "mlp")."""
        ...

    @property
    def count(self) -> int: ...

    @property
    def is_attention(self) -> bool:
        """Whether the layer attends over cached tokens (full, sliding, chunked, MLA)."""
        ...

    @property
    def block_multiple(self) -> int:
        """The tokens a page's size must be a multiple of: DeepSeek-V4's compress_ratio (a page holds
        block_size // ratio compressed latents), 1 elsewhere."""
        ...

    def kv_elements_per_token(self, tp: int = 1) -> int:
        """Cached elements (K and V together, or an MLA latent) per token on one tensor rank."""
        ...

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        """Bytes per token in a format of their own, whatever the KV dtype (the DSA indexer key)."""
        ...

    def kv_bytes_per_token(self, kv_format: KvFormat, tp: int = 1) -> int:
        """Bytes per token on one rank: the elements in `kv_format` plus the fixed bytes."""
        ...

    def cached_tokens(self, ctx: int) -> int:
        """Tokens the layer holds for a request at context `ctx`."""
        ...

    def held_bytes(self, ctx: int, kv_format: KvFormat, tp: int = 1) -> int:
        """Bytes those tokens take on one rank: cached_tokens x kv_bytes_per_token, except where a
        layer keeps caches whose entries differ in size (DeepSeek-V4: latents, indexer keys, rings)."""
        ...

    def held_pages(self, ctx: int, block_size: int) -> int:
        """Pages of block_size tokens those tokens take (a compressed cache's pages count the tokens
        it compresses, not its entries)."""
        ...

    def state_elements(self, tp: int = 1) -> int:
        """Constant per-request state on one rank, whatever the context (Mamba, Gated DeltaNet)."""
        ...

    def state_bytes(self, tp: int, dtype_bytes: int, num_spec: int = 0) -> int:
        """The per-request state's bytes on one rank (dtype_bytes: the model's compute dtype); with
        num_spec speculative tokens the convolution state holds num_spec rows more."""
        ...

    def conv_row_elements(self, tp: int = 1) -> int:
        """One row of the convolution state on one rank (0 for a kind with none): vLLM's conv state
        is conv_kernel - 1 + num_spec rows (mamba_utils.py MambaStateShapeCalculator, num_spec)."""
        ...

    def page_size_bytes(self, *, block_size: int, kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        """One page: `block_size` tokens of KV, or a whole state (0 for a kind that caches nothing)."""
        ...

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """Pages one request of max_model_len takes at engine start-up (see max_memory_bytes)."""
        ...

    def max_memory_bytes(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int,
                         kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        """vLLM V1's max_memory_usage_bytes (vllm/v1/kv_cache_interface.py), per layer on one rank."""
        ...

    def block_caches(self, block_size: int) -> tuple[BlockCache, ...]:
        """The caches vLLM packs side by side in a block for this layer (DeepSeek-V4); () for a kind
        whose one page per layer is all it has."""
        ...

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        """KV heads a rank keeps (1 for a latent or a state): what each query head's reads share."""
        ...

    def kv_page_layout(self, tp: int = 1) -> tuple[int, int] | None:
        """(kv heads, head_dim) of FlashInfer's [pages, 2, page_size, kv_heads, head_dim] page; None
        where a page is raw bytes (an MLA latent, a decompressed comparison, a state)."""
        ...

    def attended_pairs(self, ctx: int) -> int:
        """Query-key pairs a causal prefill of `ctx` tokens computes."""
        ...

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        """The attention a prefill runs (MLA decompressed); None for a layer without attention."""
        ...

    def prefill_flops_per_pair(self, num_attention_heads: int = 0) -> int:
        """QK and PV FLOPs per query-key pair, over every query head."""
        ...

    def mha_equivalent(self, num_attention_heads: int) -> LayerKind:
        """The same layer without grouped or latent KV sharing (itself for a state or an MLP)."""
        ...
