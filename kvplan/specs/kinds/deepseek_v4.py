"""DeepSeek-V4's attention layers as vLLM 0.34 caches them (vllm/models/deepseek_v4/attention.py,
compressor.py; vllm/v1/attention/backends/mla/sparse_swa.py; vllm/v1/kv_cache_interface.py).

Every layer keeps one latent of head_dim (512) values per token, K and V at once (MQA, one KV head),
and attends over two sets of them:

* a sliding window of the last `window` (128) uncompressed tokens (DeepseekV4SWACache, a
  SlidingWindowMLASpec of its own 64-token blocks), in every layer;
* in a layer with compress_ratio r > 1, one compressed entry per r tokens (the attention's own
  MLAAttentionSpec with tokens_per_state=r: a block of block_size tokens holds block_size // r
  entries), fed by a compressor that keeps the tokens not yet compressed in an fp32 ring
  (CompressorStateCache: 2 x coff x head_dim values a token, coff = 2 where r = 4 overlaps windows,
  else 1; a SlidingWindowMLASpec of coff x r tokens in blocks of 4 (r = 4) or 8 (r = 128));
* where r = 4 (C4A, sparse attention), a lightning indexer's key of index_head_dim per compressed
  entry in fp8 with one fp32 scale per 128 values (DeepseekV4IndexerCache: 128 + 4 = 132 B), fed by
  a compressor of its own (2 x 2 x index_head_dim fp32 values a token, blocks of 4).

The latent is stored in DeepSeek's fp8_ds_mla layout on vLLM's default backends (FlashMLA sparse on
SM 9.x/10.x; _resolve_dsv4_kv_cache_dtype turns kv-cache-dtype auto into fp8 and refuses bf16):
the 448 NoPE values in fp8, the 64 RoPE values in bf16, and 448 / 64 = 7 UE8M0 scale bytes plus
one pad, 448 + 128 + 8 = 584 B (get_kv_cache_spec: state_content_bytes=584). Every page is padded
to a multiple of 576 B (alignment=576). The plain rows of FLASHINFER_MLA_SPARSE_DSV4 (512 x 2 B in
bf16, 512 B in per-tensor fp8), a backend one must ask for, are not modelled.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator

from kvplan.specs.base import Dim, Layers, Tokens
from kvplan.specs.layer_base import _Kind
from kvplan.specs.layer_kind import AttentionShape, BlockCache
from kvplan.units import KvFormat, ceil_div
from kvplan.specs.layer_text import bytes_formula, describe, elements_formula, held_formula, no_state, state_formula

PAGE_ALIGNMENT_BYTES = 576  # fp8_ds_mla pages: MLAAttentionSpec / SlidingWindowMLASpec alignment=576
SWA_BLOCK_TOKENS = 64  # DeepseekV4SWACache(block_size=64): the window's own blocks
FP32_BYTES = 4  # the compressor rings are fp32 (CompressorStateCache asserts dtype == float32)
INDEXER_QUANT_BLOCK = 128  # DeepseekV4Indexer.quant_block_size: one fp32 scale per 128 fp8 values
RING_BLOCK_TOKENS = {4: 4, 128: 8}  # CompressorStateCache.block_size by compress_ratio


def _aligned(page_bytes: int) -> int:
    """A page padded up to the fp8_ds_mla alignment (kv_cache_interface._apply_alignment_padding)."""
    return ceil_div(page_bytes, PAGE_ALIGNMENT_BYTES) * PAGE_ALIGNMENT_BYTES


def _window_pages(window: int, max_model_len: int, max_num_batched_tokens: int, block: int) -> int:
    """SlidingWindowSpec.max_admission_blocks_per_request: window - 1 + the tokens in flight, at most
    max_model_len, + 1 page because the window need not start on a page boundary."""
    return ceil_div(min(window - 1 + max_num_batched_tokens, max_model_len), block) + 1


def _window_pairs(ctx: int, window: int) -> int:
    w = min(ctx, window)
    return w * (w + 1) // 2 + (ctx - w) * window


def _compressed_pairs(ctx: int, ratio: int) -> int:
    """Sum over t = 1..ctx of t // ratio: the compressed entries each query position sees."""
    q, s = divmod(ctx, ratio)
    return ratio * q * (q - 1) // 2 + q * (s + 1)


class _DeepseekV4Layer(_Kind):
    """What every DeepSeek-V4 layer shares: its window of uncompressed latents."""

    KERNEL_BLOCK_SIZE: ClassVar[int] = 256  # DeepseekV4SparseMLABackend.get_supported_kernel_block_sizes
    STORED_LAYOUT: ClassVar[str] = "fp8_ds_mla (584 B a latent), whatever the KV dtype asked"

    count: Layers
    head_dim: Dim  # the latent: K and V at once
    rope_head_dim: Dim
    window: Tokens

    @property
    def is_attention(self) -> bool:
        return True

    def entry_bytes(self) -> int:
        """One latent as fp8_ds_mla stores it: NoPE in fp8, RoPE in bf16, a UE8M0 scale per 64 NoPE
        values plus one pad byte (compressor.py: _token_stride = nope + rope x 2, _scale_dim = nope // 64 + 1)."""
        nope = self.head_dim - self.rope_head_dim
        return nope + self.rope_head_dim * 2 + nope // 64 + 1

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return self.head_dim  # one latent, whole on every rank (max_tp_shards=1)

    def kv_bytes_per_token(self, kv_format: KvFormat, tp: int = 1) -> int:
        """fp8_ds_mla whatever the KV dtype asked: vLLM's default backends store no other layout."""
        return self.entry_bytes()

    def window_page_bytes(self, block_size: int = SWA_BLOCK_TOKENS) -> int:
        return _aligned(block_size * self.entry_bytes())

    def window_max_bytes(self, max_model_len: int, max_num_batched_tokens: int) -> int:
        """The window cache at start-up, in its own 64-token blocks (SlidingWindowSpec)."""
        return _window_pages(self.window, max_model_len, max_num_batched_tokens,
                             SWA_BLOCK_TOKENS) * self.window_page_bytes()

    def window_cache(self) -> BlockCache:
        """DeepseekV4SWACache: a SlidingWindowMLASpec of 64-token blocks."""
        return BlockCache("window", SWA_BLOCK_TOKENS, self.window, self.window_page_bytes())

    def block_caches(self, block_size: int) -> tuple[BlockCache, ...]:
        return (self.window_cache(),)

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return 1

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        """Multi-query attention over the latent: one KV head of head_dim, read as K and as V."""
        return AttentionShape(num_attention_heads, 1, self.head_dim, self.head_dim)


class DeepseekV4Window(_DeepseekV4Layer):
    """A DeepSeek-V4 layer with compress_ratio 0: its sliding window of latents and nothing else."""

    kind: Literal["dsv4_swa"] = "dsv4_swa"

    def cached_tokens(self, ctx: int) -> int:
        return min(ctx, self.window)

    def attended_pairs(self, ctx: int) -> int:
        return _window_pairs(ctx, self.window)

    def page_size_bytes(self, *, block_size: int, kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        return self.window_page_bytes(block_size)

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        return _window_pages(self.window, max_model_len, max_num_batched_tokens, block_size)

    def max_memory_bytes(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int,
                         kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        return self.window_max_bytes(max_model_len, max_num_batched_tokens)


class DeepseekV4Compressed(_DeepseekV4Layer):
    """A DeepSeek-V4 layer with compress_ratio 4 (sparse, with an indexer) or 128: its window, one
    compressed latent per `compress_ratio` tokens, the compressor's fp32 ring, and for ratio 4 the
    indexer's fp8 key per compressed entry with its own ring."""

    kind: Literal["dsv4_compressed"] = "dsv4_compressed"
    compress_ratio: int
    index_head_dim: Dim | None = None  # the indexer's key (ratio 4 only)
    index_topk: Tokens | None = None  # compressed entries a query attends to (ratio 4 only)

    @field_validator("compress_ratio")
    @classmethod
    def check_ratio(cls, ratio: int) -> int:
        if ratio not in RING_BLOCK_TOKENS:  # CompressorStateCache: assert compress_ratio in [4, 128]
            raise ValueError(f"compress_ratio {ratio} is not one vLLM compresses by; give 4 or 128")
        return ratio

    @property
    def overlap(self) -> int:
        """coff: ratio-4 compressors overlap two windows, so their ring is twice as wide and long."""
        return 2 if self.compress_ratio == 4 else 1

    def ring_tokens(self) -> int:
        return self.overlap * self.compress_ratio  # CompressorStateCache.sliding_window

    def ring_bytes_per_token(self) -> int:
        """kv and score states, 2 x coff x head_dim fp32 values (plus the indexer's, 2 x 2 x 128)."""
        indexer = 2 * 2 * self.index_head_dim * FP32_BYTES if self.index_head_dim else 0
        return 2 * self.overlap * self.head_dim * FP32_BYTES + indexer

    def indexer_key_bytes(self) -> int:
        if not self.index_head_dim:
            return 0
        return self.index_head_dim + self.index_head_dim // INDEXER_QUANT_BLOCK * FP32_BYTES

    @property
    def block_multiple(self) -> int:
        return self.compress_ratio

    def compressed_entries(self, ctx: int) -> int:
        return ctx // self.compress_ratio

    def cached_tokens(self, ctx: int) -> int:
        """Latents held: the window's uncompressed tokens and one compressed entry per ratio tokens."""
        return min(ctx, self.window) + self.compressed_entries(ctx)

    def held_bytes(self, ctx: int, kv_format: KvFormat, tp: int = 1) -> int:
        """The latents, an indexer key per compressed entry, and the rings' tokens not yet compressed."""
        latents = self.cached_tokens(ctx) * self.entry_bytes()
        ring = min(ctx, self.ring_tokens()) * self.ring_bytes_per_token()
        return latents + self.compressed_entries(ctx) * self.indexer_key_bytes() + ring

    def held_pages(self, ctx: int, block_size: int) -> int:
        """The compressed caches' blocks count uncompressed tokens (MLAAttentionSpec, tokens_per_state)."""
        return ceil_div(ctx, block_size)

    def attended_pairs(self, ctx: int) -> int:
        """The window, and the compressed entries: every one at ratio 128, the index_topk the indexer
        picks at ratio 4 (DeepseekV4Indexer.topk_tokens)."""
        compressed = _compressed_pairs(ctx, self.compress_ratio)
        if self.index_topk:
            first = self.index_topk * self.compress_ratio  # the first position that sees index_topk entries
            compressed = _compressed_pairs(min(ctx, first - 1), self.compress_ratio) + \
                self.index_topk * max(0, ctx - first + 1)
        return _window_pairs(ctx, self.window) + compressed

    def page_size_bytes(self, *, block_size: int, kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        """block_size // ratio compressed latents (get_num_kernel_states), and as many indexer keys,
        each page padded to 576 B."""
        entries = block_size // self.compress_ratio
        indexer = _aligned(entries * self.indexer_key_bytes()) if self.index_head_dim else 0
        return _aligned(entries * self.entry_bytes()) + indexer

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        return ceil_div(max_model_len, block_size)  # FullAttentionSpec: the compressed caches

    def ring_pages_bytes(self) -> tuple[int, int]:
        """(the compressor ring's page, the indexer compressor ring's or 0): 4 or 8 tokens (block_size)
        of 2 x coff x head_dim fp32 values, padded to 576 B (CompressorStateCache.get_kv_cache_spec)."""
        block = RING_BLOCK_TOKENS[self.compress_ratio]
        ring = _aligned(block * 2 * self.overlap * self.head_dim * FP32_BYTES)
        indexer = _aligned(block * 2 * 2 * self.index_head_dim * FP32_BYTES) if self.index_head_dim else 0
        return ring, indexer

    def ring_max_bytes(self, max_model_len: int, max_num_batched_tokens: int) -> int:
        """The rings at start-up: SlidingWindowSpec pages of 4 or 8 tokens, each padded to 576 B; the
        indexer's compressor (ratio 4, overlapping) has the same window and blocks of 4."""
        block = RING_BLOCK_TOKENS[self.compress_ratio]
        pages = _window_pages(self.ring_tokens(), max_model_len, max_num_batched_tokens, block)
        return pages * sum(self.ring_pages_bytes())

    def block_caches(self, block_size: int) -> tuple[BlockCache, ...]:
        """The window; the compressed latents and indexer keys (MLAAttentionSpec of block_size tokens,
        block_size // ratio entries); the rings (SlidingWindowMLASpec, window coff x ratio)."""
        entries = block_size // self.compress_ratio
        ring, indexer_ring = self.ring_pages_bytes()
        block, window = RING_BLOCK_TOKENS[self.compress_ratio], self.ring_tokens()
        caches = [self.window_cache(), BlockCache("latents", block_size, None, _aligned(entries * self.entry_bytes())),
                  BlockCache("ring", block, window, ring)]
        if self.index_head_dim:
            caches += [BlockCache("indexer keys", block_size, None, _aligned(entries * self.indexer_key_bytes())),
                       BlockCache("indexer ring", block, window, indexer_ring)]
        return tuple(caches)

    def max_memory_bytes(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int,
                         kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        """check_enough_kv_cache_memory's sum over this layer's caches: the compressed latents and
        indexer keys (cdiv(max_model_len, block_size) pages), its window, and its rings."""
        compressed = self.max_memory_pages(max_model_len=max_model_len, max_num_batched_tokens=max_num_batched_tokens,
                                           block_size=block_size) * self.page_size_bytes(
            block_size=block_size, kv_format=kv_format, state_dtype_bytes=state_dtype_bytes)
        return compressed + self.window_max_bytes(max_model_len, max_num_batched_tokens) + \
            self.ring_max_bytes(max_model_len, max_num_batched_tokens)


# --- words (kvplan.specs.layer_text) --------------------------------------------------------------------

@describe.register(DeepseekV4Window)
def _(group: DeepseekV4Window) -> str:
    return f"latent {group.head_dim}, window {group.window:,}"


@describe.register(DeepseekV4Compressed)
def _(group: DeepseekV4Compressed) -> str:
    indexer = f", indexer {group.index_head_dim}" if group.index_head_dim else ""
    return f"latent {group.head_dim}, 1 per {group.compress_ratio} tokens + window {group.window:,}{indexer}"


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


@elements_formula.register(DeepseekV4Window)
@elements_formula.register(DeepseekV4Compressed)
def _(group: DeepseekV4Window | DeepseekV4Compressed, tp: int = 1) -> str:
    return f"latent {group.head_dim} (K and V at once), on every rank"


@held_formula.register(DeepseekV4Window)
def _(group: DeepseekV4Window, ctx: int) -> str:
    return f"min(ctx {ctx:,}, window {group.window:,})"


@held_formula.register(DeepseekV4Compressed)
def _(group: DeepseekV4Compressed, ctx: int) -> str:
    return f"min(ctx {ctx:,}, window {group.window:,}) + ctx // {group.compress_ratio} compressed"


state_formula.register(DeepseekV4Window, no_state)
state_formula.register(DeepseekV4Compressed, no_state)
