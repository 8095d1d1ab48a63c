"""vLLM's KV cache groups where a model's caches pack side by side in each block: DeepSeek-V4, whose
indexer backend takes only block-outermost layouts (DeepseekV4IndexerBackend.supported_kv_cache_layouts:
BLHNC), so vLLM 0.34 groups its layers with _get_packed_kv_cache_groups
(vllm/v1/core/kv_cache_planning.py) instead of unifying their pages:

1. caches of one block size and window share a bucket (UniformTypeKVCacheSpecs.is_uniform_type);
   a bucket with as many layers of each of its page sizes is "balanced";
2. the balanced buckets of more than one page size set a floor on the layers of each page size a
   group holds; _approximate_gcd picks, from that floor up, the count that pads the balanced
   buckets least; a balanced bucket splits into cdiv(its layers per page size, that count) groups,
   every other bucket stays whole (windows with no such floor are "state" buckets, split to fit
   the widest other group);
3. a block costs the widest group's pages (_get_kv_cache_bytes_per_block: the largest group's sum
   of page_size_bytes; every group's blocks alias one backing), num_blocks = pool // that;
4. one request of max_model_len takes, from that one pool, the blocks of every group, each group's
   at its own block size and window (get_max_concurrency_for_kv_cache_config), and 'GPU KV cache
   size' = int(num_blocks / those blocks x max_model_len) (get_kv_cache_capacity).

DeepSeek-V4-Flash at 256-token blocks: 5 groups. Every compressed latent and indexer key (21 x
(37,440 + 8,640) + 20 x 1,728 = 1,002,240 B), the 43 windows split 22 + 21 (22 x 37,440 = 823,680 B),
the ratio-4 rings (21 x (32,832 + 8,640) = 870,912 B), the ratio-128 rings (20 x 32,832 = 656,640 B):
a block costs 1,002,240 B, where one page over every layer is 1,301,760 B.

Under pipeline parallelism vLLM groups the whole model and gives each stage its layers of every
group; here the fullest stage's layers (ceil(count / pp) of each kind) are grouped as a model of their
own, which can differ from vLLM's projection by a layer a group.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from kvplan.results.capacity import MemoryBudget
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.layer_kind import BlockCache
from kvplan.specs.model import ModelSpec
from kvplan.units import ceil_div


@dataclass(frozen=True)
class PackedGroup:
    """One KV cache group: layers of each page size, all caches of one block size and window."""

    cache: BlockCache  # a representative (the scheduler's spec: the group's first layer)
    layers: tuple[tuple[int, int], ...]  # (page bytes, layers of that page size)

    @property
    def bytes_per_block(self) -> int:
        return sum(page * n for page, n in self.layers)


@dataclass(frozen=True)
class PackedLayout:
    groups: tuple[PackedGroup, ...]

    @property
    def bytes_per_block(self) -> int:
        """The widest group's pages: what one block id costs in the pool (_get_kv_cache_bytes_per_block;
        DeepSeek-V4's block_stride_alignment is 1 at 256-token blocks, so no rounding)."""
        return max(g.bytes_per_block for g in self.groups)

    def blocks_per_request(self, max_model_len: int, in_flight_tokens: int) -> int:
        """Blocks one request of max_model_len takes, summed over groups (each group's own)."""
        return sum(g.cache.max_pages(max_model_len, in_flight_tokens) for g in self.groups)

    def blocks_held(self, ctx: int) -> int:
        """Blocks a request of ctx tokens holds, summed over groups, out-of-window blocks freed."""
        return sum(g.cache.held_pages(ctx) for g in self.groups)

    def tokens(self, num_blocks: int, max_model_len: int, in_flight_tokens: int) -> int:
        """'GPU KV cache size': max concurrency x max_model_len (get_kv_cache_capacity)."""
        return int(num_blocks / self.blocks_per_request(max_model_len, in_flight_tokens) * max_model_len)


def in_flight_tokens(async_scheduling: bool, pp: int, max_num_batched_tokens: int) -> int:
    """VllmConfig.max_in_flight_tokens: max_concurrent_batches (pp + 1 with async scheduling, vLLM
    0.34's default) x max_num_batched_tokens; one step's tokens where the engine has no such count."""
    return (pp + 1 if async_scheduling else 1) * max_num_batched_tokens


def approximate_gcd(values: list[int], lower_bound: int) -> int:
    """vLLM's _approximate_gcd: the d in [lower_bound, max(values)] that pads the values least when
    each is rounded up to a multiple of d; ties take the larger d."""
    best, best_pad = lower_bound, None
    for d in range(max(1, lower_bound), max(values) + 1):
        pad = sum(-x % d for x in values)
        if best_pad is None or pad <= best_pad:
            best, best_pad = d, pad
    return best


@dataclass
class _Bucket:
    first: BlockCache
    pages: Counter  # page bytes -> layers

    @property
    def balanced(self) -> bool:
        return len(set(self.pages.values())) == 1

    @property
    def repeats(self) -> int:
        return max(self.pages.values())  # get_max_layers_per_page_size

    def widest(self, n: int) -> int:
        """Page bytes of the largest of the n groups it splits into."""
        return sum(ceil_div(count, n) * page for page, count in self.pages.items())


def _buckets(model: ModelSpec, block_size: int, pp: int) -> list[_Bucket]:
    buckets: dict[tuple[int, int | None], _Bucket] = {}
    for group in model.layers:
        for cache in group.block_caches(block_size):
            bucket = buckets.setdefault((cache.block_tokens, cache.window), _Bucket(cache, Counter()))
            bucket.pages[cache.page_bytes] += ceil_div(group.count, pp)
    return list(buckets.values())


def packed_layout(model: ModelSpec, block_size: int, pp: int = 1) -> PackedLayout | None:
    """vLLM 0.34's packed groups of one GPU's layers, or None for a model whose kinds have no caches
    that pack by block, or whose caches all have one page size (_get_packed_kv_cache_groups)."""
    buckets = _buckets(model, block_size, pp)
    if len({page for b in buckets for page in b.pages}) <= 1:
        return None
    floor = max((b.repeats for b in buckets if b.balanced and len(b.pages) > 1), default=0)
    repeats = approximate_gcd([b.repeats for b in buckets if b.balanced], floor) if floor else None

    def splits(b: _Bucket) -> int:
        return ceil_div(b.repeats, repeats) if b.balanced and repeats else 1

    def is_state(b: _Bucket) -> bool:
        return repeats is None and b.first.window is not None

    anchor = max(b.widest(sum(b.pages.values()) if is_state(b) else splits(b)) for b in buckets)
    groups: list[PackedGroup] = []
    for b in buckets:
        n = splits(b)
        if is_state(b):  # capped at the states a block already fits
            n = max(n, ceil_div(sum(b.pages.values()), max(anchor // b.first.page_bytes, 1)))
        for i in range(n):  # pattern repeat r goes to group r % n
            layers = tuple((page, len(range(i, count, n))) for page, count in b.pages.items())
            groups.append(PackedGroup(b.first, layers))
    return PackedLayout(tuple(groups))


def budget_packing(model: ModelSpec, budget: MemoryBudget) -> tuple[PackedLayout, int] | None:
    """(the packed layout, the tokens a window holds in flight) under a budget's engine, or None where
    the engine does not pack (or the model has nothing to pack)."""
    engine = engine_entry(budget.engine)
    layout = packed_layout(model, budget.block_size, budget.pp) if engine.packed_kv_groups else None
    if layout is None:
        return None
    return layout, in_flight_tokens(engine.async_scheduling, budget.pp, budget.max_num_batched_tokens)
