"""MiniMax-M3's block-sparse attention layers (MiniMax Sparse Attention, "MSA") as vLLM 0.34 caches
them (vllm/models/minimax_m3/nvidia/model.py MiniMaxM3SparseAttention; common/indexer.py
MiniMaxM3IndexerCache; common/sparse_attention.py MiniMaxM3SparseBackend); the YAML kind "msa".

Each sparse layer registers two caches with vLLM's KV cache manager:

* its K and V, num_key_value_heads x head_dim each, split across tensor ranks like any GQA layer
  (MiniMaxM3SparseAttention.get_kv_cache_spec: a FullAttentionSpec in the --kv-cache-dtype);
* a lightning indexer's key, one vector of index_head_dim per token (index_k is "a single shared
  head, replicated to every rank": model_executor/layers/linear.py
  MinimaxM3QKVParallelLinearWithIndexer), in its own dtype whatever the KV dtype: bf16, the
  model's default for attention_config.indexer_kv_dtype "auto"
  (MiniMaxM3SparseAttention.__init__: resolve_indexer_kv_dtype("bf16")); MiniMaxM3IndexerCache
  returns an MLAAttentionSpec of 1 head x index_head_dim (key only, no V: head_size_v 0).

Both are FullAttentionSpecs to vLLM's grouping (MLAAttentionSpec registers uniform_type_base_spec
FullAttentionSpec, v1/core/single_type_kv_cache_manager.py register_all_kvcache_specs), so with the
dense layers they are one UniformTypeKVCacheSpecs group whose page is the sum of theirs: here one
layer's page is its K/V page plus its index page, block_size x (K/V bytes + index bytes).

Every query attends to index_topk_blocks blocks of index_block_size tokens, its own (local) block
among them (common/ops/index_topk.py _topk_index_kernel: the local block's score is forced to the
top), in prefill as in decode (MiniMaxM3SparseTritonImpl.forward). The cache keeps every token.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from kvplan.specs.base import Dim, Small, Tokens
from kvplan.specs.layer_base import _AttentionLayers, _EveryToken
from kvplan.specs.layer_text import (attention_elements, describe, elements_formula, fixed_formula, heads, held_formula,
                                     no_state, state_formula)

INDEX_KEY_BYTES_PER_VALUE = 2  # bf16: indexer_kv_dtype "auto" for MiniMax-M3 (config/attention.py)


class BlockSparseAttention(_EveryToken, _AttentionLayers):
    """MiniMax-M3's sparse layers: GQA K/V of every token plus one bf16 index key of index_head_dim
    per token on every rank; queries attend to the top index_topk_blocks blocks of index_block_size."""

    # MiniMaxM3SparseBackend / MiniMaxM3IndexerBackend.get_supported_kernel_block_sizes: [128] ("page
    # size == sparse block size"), so vLLM's _preferred_block_size_for_backends picks 128 for the model
    KERNEL_BLOCK_SIZE: ClassVar[int] = 128

    kind: Literal["msa"] = "msa"
    index_head_dim: Dim
    index_block_size: Tokens
    index_topk_blocks: Small

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        """The index key: index_head_dim bf16 values, whole on every rank (128 x 2 = 256 B)."""
        return self.index_head_dim * INDEX_KEY_BYTES_PER_VALUE

    def kv_page_layout(self, tp: int = 1) -> tuple[int, int] | None:
        """The page holds the index keys beside K and V: raw bytes here, not FlashInfer's layout."""
        return None

    def attended_pairs(self, ctx: int) -> int:
        """Sum over query positions t = 1..ctx of the keys it attends: all t while its blocks number at
        most index_topk_blocks (t <= topk x block), else topk - 1 whole blocks and its own, partly
        filled one ((t - 1) % block + 1 tokens)."""
        block, topk = self.index_block_size, self.index_topk_blocks
        first = topk * block  # positions up to here attend every earlier token
        dense = min(ctx, first)
        pairs = dense * (dense + 1) // 2
        beyond = max(0, ctx - first)
        whole, rest = divmod(beyond, block)  # the own block's fill runs 1..block, period block
        return pairs + beyond * (topk - 1) * block + whole * block * (block + 1) // 2 + rest * (rest + 1) // 2


# --- words (kvplan.specs.layer_text) --------------------------------------------------------------------

@describe.register(BlockSparseAttention)
def _(group: BlockSparseAttention) -> str:
    return (f"{heads(group)} + index key {group.index_head_dim}, top {group.index_topk_blocks} blocks of "
            f"{group.index_block_size:,}")


@fixed_formula.register(BlockSparseAttention)
def _(group: BlockSparseAttention, tp: int = 1) -> str:
    return f"index key {group.index_head_dim} x 2 B (bf16 whatever the KV dtype, on every rank)"


@held_formula.register(BlockSparseAttention)
def _(group: BlockSparseAttention, ctx: int) -> str:
    return f"ctx {ctx:,} (each query reads {group.index_topk_blocks} blocks of {group.index_block_size:,})"


elements_formula.register(BlockSparseAttention, attention_elements)
state_formula.register(BlockSparseAttention, no_state)
