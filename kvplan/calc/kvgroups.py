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
62/70 of the tokens an unpadded count gives. Kinds whose pages differ in size are first unified as
vLLM does (unify_kv_cache_spec_page_size): the smaller page's block grows until the pages match.
Gemma-4-26B-A4B: a sliding page of 16 x 2 x 8 x 256 x 2 B = 131,072 B, a full one of 16 x 2 x 2 x
512 x 2 B = 65,536 B -> full blocks of 32 tokens; groups of 5: 1 full + 5 sliding. Layers that read
another layer's cache (KV sharing) have no spec and are left out.

A recurrent state (Mamba, Gated DeltaNet) is one more kind where the engine unifies its page with
attention's (HybridAttentionMambaModelConfig, 0.10.2 on): its page is padded to the attention page
(MambaSpec page_size_padded) and its layers are grouped like any other's. Falcon-H1-0.5B (36
attention layers and 36 Mamba-2 mixers beside them): group_size 36, 2 groups, no padding.

Full-attention layers of different KV heads (Nemotron-NAS) are one type: 0.19 and 0.34 put them all
in one group before any unifying (get_kv_cache_groups: UniformTypeKVCacheSpecs, whose page is the
sum of its layers' pages); here that is group_size 1 of one "layer" of that summed page. (0.10.2
asserts one page size, get_uniform_page_size, and does not start such a model.) MiniMax-M3's sparse
layers join them: their K/V (FullAttentionSpec) and index keys (MLAAttentionSpec, whose
uniform_type_base_spec is FullAttentionSpec in 0.34's register_all_kvcache_specs) are of that type too.

DeepSeek-V4's caches, whose pages differ and pack side by side in a block, are grouped otherwise
(vLLM 0.34 _get_packed_kv_cache_groups): see kvplan.calc.kvpacked.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.calc.kvpacked import packed_layout
from kvplan.specs.layer_kind import LayerKind
from kvplan.specs.model import ModelSpec
from kvplan.units import DTYPE_BYTES, KvFormat, ceil_div


# Kinds vLLM caches as FullAttentionSpec (or a spec it groups as one): all of one group, whatever their pages
FULL_ATTENTION_TYPE = ("full", "msa")


@dataclass(frozen=True)
class KvGroups:
    group_size: int  # layers per group: the tensors that share a block table
    groups: int  # KV cache groups over every kind
    padding_layers: int  # layers added to fill the last group of each kind
    page_bytes_per_layer: int  # one block of one layer, on one GPU (the largest kind's, once unified)
    blocks_per_kind: tuple[tuple[int, int], ...]  # (groups, index into cached_kinds) for the request count
    block_sizes: tuple[int, ...] = ()  # tokens a block of each cached kind holds, once pages are unified
    state_layers: int = 0  # layers of a recurrent state, each a page padded to page_bytes_per_layer

    @property
    def pool_bytes_per_block(self) -> int:
        """One block of every group: group_size tensors x groups x the page (padding layers included)."""
        return self.group_size * self.groups * self.page_bytes_per_layer


def cached_kinds(model: ModelSpec) -> list[LayerKind]:
    """The layer groups vLLM gives a KV cache spec: those that cache tokens or a state. A layer that
    reads another's cache (Gemma-4's KV sharing) or has no attention gets none (gpu_model_runner.py
    get_kv_cache_spec skips it), so it takes no page and no place in a group."""
    return [g for g in model.layers if g.kv_elements_per_token(1) or g.fixed_bytes_per_token(1) or g.state_elements(1)]


def unified_block_sizes(kinds: list[LayerKind], fmt: KvFormat, tp: int, block_size: int) -> tuple[int, ...] | None:
    """vLLM's unify_kv_cache_spec_page_size (v1/core/kv_cache_utils.py, 0.19): a kind whose page is
    smaller than the largest gets a block size grown by their ratio, so every page is one size;
    None where a page does not divide the largest (0.19 raises NotImplementedError there)."""
    pages = [g.page_size_bytes(block_size=block_size, kv_format=fmt, tp=tp, state_dtype_bytes=2) for g in kinds]
    largest = max(pages)
    if any(largest % page for page in pages):
        return None
    return tuple(block_size * (largest // page) for page in pages)


def padded_state_page(model: ModelSpec, fmt: KvFormat, tp: int, block_size: int, dtype_bytes: int,
                      num_spec: int = 0) -> int:
    """A state's page as a hybrid lays it out: padded to the largest attention page at this block size
    (vLLM's mamba_page_size_padded), or its own size where no attention page is larger; num_spec
    speculative tokens add conv rows to the state."""
    states = [g.state_bytes(tp, dtype_bytes, num_spec) for g in model.layers if not g.is_attention]
    attention = [g.page_size_bytes(block_size=block_size, kv_format=fmt, tp=tp, state_dtype_bytes=dtype_bytes)
                 for g in model.layers if g.is_attention]
    return max([*states, *attention], default=0)


def kv_groups(model: ModelSpec, fmt: KvFormat, tp: int = 1, block_size: int = 16, pp: int = 1,
              newer_rule: bool = True, states: bool = True, num_spec: int = 0) -> KvGroups | None:
    """vLLM V1's grouping of one GPU's layers, or None where it does not apply. states: whether the
    engine unifies a recurrent state's page with attention's (else a model with one is not laid out)."""
    kinds = cached_kinds(model)
    attention = [g for g in kinds if g.is_attention]
    if not attention or (len(attention) != len(kinds) and not states):
        return None
    if len(kinds) > 1 and all(g.kind in FULL_ATTENTION_TYPE for g in kinds):
        return _one_group_of_full_layers(kinds, fmt, tp, block_size, pp)
    unified = unified_block_sizes(attention, fmt, tp, block_size)
    if unified is None:
        return None
    page = attention[0].page_size_bytes(block_size=unified[0], kv_format=fmt, tp=tp, state_dtype_bytes=2)
    if padded_state_page(model, fmt, tp, block_size, DTYPE_BYTES.get(model.compute_dtype, 2), num_spec) > page:
        return None  # a state larger than the attention page at this block size: not unified here
    blocks = dict(zip(map(id, attention), unified))
    counts = [ceil_div(g.count, pp) for g in kinds]
    size = min(counts)
    if newer_rule and max(counts) < 1.25 * size:
        size = max(counts)
    per_kind = [ceil_div(n, size) for n in counts]
    padding = sum(k * size - n for k, n in zip(per_kind, counts))
    return KvGroups(group_size=size, groups=sum(per_kind), padding_layers=padding, page_bytes_per_layer=page,
                    blocks_per_kind=tuple((k, i) for i, k in enumerate(per_kind)),
                    block_sizes=tuple(blocks.get(id(g), block_size) for g in kinds),
                    state_layers=sum(n for g, n in zip(kinds, counts) if not g.is_attention))


def _one_group_of_full_layers(kinds: list[LayerKind], fmt: KvFormat, tp: int, block_size: int,
                              pp: int) -> KvGroups:
    """Full-attention layers of more than one shape (KV heads per layer, or MiniMax-M3's dense and
    sparse layers): one group of every layer at
    the base block size, its page their pages' sum (UniformTypeKVCacheSpecs.page_size_bytes)."""
    page = sum(ceil_div(g.count, pp) * g.page_size_bytes(block_size=block_size, kv_format=fmt, tp=tp,
                                                         state_dtype_bytes=2) for g in kinds)
    return KvGroups(group_size=1, groups=1, padding_layers=0, page_bytes_per_layer=page, blocks_per_kind=((1, 0),),
                    block_sizes=(block_size,) * len(kinds))


def tokens_for_kv_bytes(model: ModelSpec, kv_bytes: int, fmt: KvFormat, *, tp: int = 1, block_size: int = 16,
                        pp: int = 1, max_model_len: int | None = None, max_num_batched_tokens: int = 8192,
                        per_concurrency: bool = False, newer_rule: bool = True, states: bool = True,
                        packed: bool = False, in_flight_batches: int = 1, num_spec: int = 0,
                        state_pages: int = 1) -> int | None:
    """The 'GPU KV cache size: N tokens' vLLM logs for `kv_bytes` of KV memory on one GPU (None where
    kv_groups does not lay the model out). per_concurrency: the 0.20.1-and-later count, max
    concurrency x max_model_len (get_max_concurrency_for_kv_cache_config), each kind's blocks at its
    own (unified) block size and each state group's `state_pages` (the engine's
    state_pages_per_request: MambaSpec.max_memory_usage_bytes / page_size_bytes); num_spec:
    speculative tokens, whose conv rows grow the state page. packed: caches that pack by block
    (DeepSeek-V4) grouped as vLLM 0.34 does (calc/kvpacked.py), their windows holding
    in_flight_batches x max_num_batched_tokens tokens in flight."""
    packing = packed_layout(model, block_size, pp) if packed else None
    if packing is not None:
        num_blocks = kv_bytes // packing.bytes_per_block
        if not per_concurrency or max_model_len is None:
            return num_blocks * block_size
        return packing.tokens(num_blocks, max_model_len, in_flight_batches * max_num_batched_tokens)
    layout = kv_groups(model, fmt, tp, block_size, pp, newer_rule, states, num_spec)
    if layout is None:
        return None
    num_blocks = kv_bytes // (layout.page_bytes_per_layer * layout.group_size)
    if not per_concurrency or max_model_len is None:
        return num_blocks // layout.groups * block_size  # the smallest block size: the base one
    kinds = cached_kinds(model)
    needed = sum(groups * (state_pages if kinds[i].state_elements(1) else kinds[i].max_memory_pages(
        max_model_len=max_model_len, max_num_batched_tokens=max_num_batched_tokens, block_size=layout.block_sizes[i]))
        for groups, i in layout.blocks_per_kind)
    return int(num_blocks / needed * max_model_len)
