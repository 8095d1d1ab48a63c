"""How vLLM V1 lays a hybrid model's KV cache into groups of layers that share one block table, and
the token capacity it logs for a KV memory (vllm/v1/core/kv_cache_utils.py, 0.9.1 and later).

Layers of one kind (one spec: full attention, a sliding window, ...) are split into groups of
`group_size` layers, group_size being the smallest count of any kind (0.12 and later: the largest,
when it is below 1.25 x the smallest). A kind of n layers takes ceil(n / group_size) groups; the
last is padded with `group_size - n % group_size` layers that cost memory and hold nothing. Every
group has `group_size` tensors of `num_blocks` pages, so

    num_blocks = floor(kv_bytes / (page_bytes_per_layer x group_size))
    tokens     = floor(num_blocks / groups) x block_size                (0.9.1 to 0.20)
    tokens     = int(num_blocks / blocks one request of max_model_len needs x max_model_len)  (0.21 on)

Gemma-3-27B (10 full, 52 sliding): group_size 10, 1 + 6 groups, 8 padding layers: a pool holds
62/70 of the tokens an unpadded count gives. Models whose kinds have pages of different sizes, or a
recurrent state, are not laid out here (None).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.specs.model import ModelSpec
from kvplan.units import KvFormat, ceil_div


@dataclass(frozen=True)
class KvGroups:
    group_size: int  # layers per group: the tensors that share a block table
    groups: int  # KV cache groups over every kind
    padding_layers: int  # layers added to fill the last group of each kind
    page_bytes_per_layer: int  # one block of one layer, on one GPU
    blocks_per_kind: tuple[tuple[int, int], ...]  # (groups, kind index) for the request count


def kv_groups(model: ModelSpec, fmt: KvFormat, tp: int = 1, block_size: int = 16, pp: int = 1,
              newer_rule: bool = True) -> KvGroups | None:
    """vLLM V1's uniform-page grouping of one GPU's layers, or None where it does not apply."""
    kinds = [g for g in model.layers if g.is_attention]
    if len(kinds) != len(model.layers) or not kinds:
        return None  # a recurrent state (Mamba, GDN) or an MLP-only block: another layout
    pages = {g.page_size_bytes(block_size=block_size, kv_format=fmt, tp=tp, state_dtype_bytes=2) for g in kinds}
    if len(pages) != 1:
        return None  # pages of different sizes: unified another way (vLLM unify_hybrid_kv_cache_specs)
    counts = [ceil_div(g.count, pp) for g in kinds]
    size = min(counts)
    if newer_rule and max(counts) < 1.25 * size:
        size = max(counts)
    per_kind = [ceil_div(n, size) for n in counts]
    padding = sum(k * size - n for k, n in zip(per_kind, counts))
    return KvGroups(group_size=size, groups=sum(per_kind), padding_layers=padding, page_bytes_per_layer=pages.pop(),
                    blocks_per_kind=tuple((k, i) for i, k in enumerate(per_kind)))


def tokens_for_kv_bytes(model: ModelSpec, kv_bytes: int, fmt: KvFormat, *, tp: int = 1, block_size: int = 16,
                        pp: int = 1, max_model_len: int | None = None, max_num_batched_tokens: int = 8192,
                        per_concurrency: bool = False, newer_rule: bool = True) -> int | None:
    """The 'GPU KV cache size: N tokens' vLLM logs for `kv_bytes` of KV memory on one GPU (None where
    kv_groups does not lay the model out). per_concurrency: the 0.21-and-later count, max
    concurrency x max_model_len."""
    layout = kv_groups(model, fmt, tp, block_size, pp, newer_rule)
    if layout is None:
        return None
    num_blocks = kv_bytes // (layout.page_bytes_per_layer * layout.group_size)
    if not per_concurrency or max_model_len is None:
        return num_blocks // layout.groups * block_size
    kinds = [g for g in model.layers if g.is_attention]
    needed = sum(groups * kinds[i].max_memory_pages(max_model_len=max_model_len,
                                                    max_num_batched_tokens=max_num_batched_tokens,
                                                    block_size=block_size)
                 for groups, i in layout.blocks_per_kind)
    return int(num_blocks / needed * max_model_len)
