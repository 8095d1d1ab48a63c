"""DeepSeek-V4's token capacity as vLLM 0.34 groups its caches (vllm/v1/core/kv_cache_planning.py
_get_packed_kv_cache_groups, _get_kv_cache_bytes_per_block, get_kv_cache_config_from_groups;
vllm/v1/core/kv_cache_utils.py get_max_concurrency_for_kv_cache_config, get_kv_cache_capacity), every
number derived by hand from tests/fixtures/hf_configs/deepseek-v4-{flash,pro} at 256-token blocks.

Pages (tests/test_deepseek_v4.py derives them): a window's 64-token block 64 x 584 = 37,376 -> 37,440 B;
a ratio-4 layer's 64 latents 37,440 B and 64 indexer keys 8,448 -> 8,640 B; a ratio-128 layer's 2
latents 1,728 B; a ratio-4 ring block 4 x 2 x 2 x 512 x 4 = 32,768 -> 32,832 B, its indexer ring
4 x 2 x 2 x 128 x 4 = 8,192 -> 8,640 B; a ratio-128 ring block 8 x 2 x 512 x 4 = 32,768 -> 32,832 B.
Buckets (UniformTypeKVCacheSpecs.is_uniform_type: one block size, one window): latents and indexer
keys (256 tokens, full); windows (64 tokens, window 128); ratio-4 rings (4 tokens, window 8);
ratio-128 rings (8 tokens, window 128)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kvgroups import tokens_for_kv_bytes
from kvplan.calc.kvpacked import approximate_gcd, packed_layout
from kvplan.calc.startup import max_memory_usage_bytes
from kvplan.specs.importer import import_model
from kvplan.units import GIB, kv_format

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
BF16 = kv_format("bf16")
POOL = 100 * GIB  # 107,374,182,400 B


def spec(name: str):
    return import_model(FIXTURES / f"deepseek-v4-{name}").spec


def groups(name: str) -> list[tuple[str, tuple[tuple[int, int], ...], int]]:
    return [(g.cache.name, g.layers, g.bytes_per_block) for g in packed_layout(spec(name), 256).groups]


def test_the_layer_count_per_group_pads_the_balanced_buckets_least():
    # Flash: balanced buckets of 43 windows, 21 x 2 ring pages, 20 ratio-128 rings; the floor is the
    # two-page-size ring bucket's 21. Padding to d: d = 21: 20 + 0 + 1 = 21; d = 22: 1 + 1 + 2 = 4;
    # d = 23: 3 + 2 + 3 = 8 -> 22 (_approximate_gcd, lower_bound = min_repeats_per_group)
    assert approximate_gcd([43, 21, 20], 21) == 22
    # Pro: 61 windows, 30 x 2 ring pages, 31 rings, floor 30: d = 30: 29 + 0 + 29; d = 31: 1 + 1 + 0 = 2
    assert approximate_gcd([61, 30, 31], 30) == 31


def test_flash_has_five_groups_and_a_block_costs_the_latents_group():
    """2 window-only layers, 21 ratio-4 and 20 ratio-128: 43 windows, split cdiv(43, 22) = 2 ways."""
    assert groups("flash") == [
        ("window", ((37_440, 22),), 22 * 37_440),  # 823,680: repeats 0, 2, 4, ... of 43
        ("window", ((37_440, 21),), 21 * 37_440),  # 786,240
        # unbalanced (21, 21, 20 layers a page size): one group, whole
        ("latents", ((37_440, 21), (8_640, 21), (1_728, 20)), 21 * (37_440 + 8_640) + 20 * 1_728),
        ("ring", ((32_832, 21), (8_640, 21)), 21 * (32_832 + 8_640)),  # 870,912
        ("ring", ((32_832, 20),), 20 * 32_832),  # 656,640
    ]
    # the widest group: 967,680 + 34,560 = 1,002,240 B a block (one page over all 43 layers: 1,301,760 B)
    assert packed_layout(spec("flash"), 256).bytes_per_block == 1_002_240


def test_pro_has_five_groups_and_a_block_costs_the_latents_group():
    """30 ratio-4 and 31 ratio-128 layers, every one with a window: 61 windows split cdiv(61, 31) = 2."""
    assert groups("pro") == [
        ("window", ((37_440, 31),), 1_160_640),  # 31 x 37,440
        ("window", ((37_440, 30),), 1_123_200),  # 30 x 37,440
        ("latents", ((37_440, 30), (8_640, 30), (1_728, 31)), 30 * 46_080 + 31 * 1_728),  # 1,382,400 + 53,568
        ("ring", ((32_832, 30), (8_640, 30)), 1_244_160),  # 30 x 41,472
        ("ring", ((32_832, 31),), 1_017_792),  # 31 x 32,832
    ]
    assert packed_layout(spec("pro"), 256).bytes_per_block == 1_435_968


@pytest.mark.parametrize("max_model_len, blocks", [
    # latents: cdiv(L, 256) = 4,096; two window groups of cdiv(min(127 + 16,384, L), 64) + 1 = 258 + 1;
    # ratio-4 rings cdiv(7 + 16,384, 4) + 1 = 4,098 + 1; ratio-128 rings cdiv(127 + 16,384, 8) + 1 = 2,064 + 1
    (1_048_576, 4_096 + 2 * 259 + 4_099 + 2_065),  # 10,778
    (65_536, 256 + 2 * 259 + 4_099 + 2_065),  # 6,938
])
def test_blocks_one_request_takes_summed_over_groups(max_model_len, blocks):
    """8,192 batched tokens, 2 steps in flight (async scheduling: max_in_flight_tokens = 16,384);
    each group's blocks are its first layer's cdiv(max_memory_usage_bytes, page_size_bytes)."""
    for name in ("flash", "pro"):  # the same five kinds of group, whatever their widths
        assert packed_layout(spec(name), 256).blocks_per_request(max_model_len, 16_384) == blocks


def _budget(name: str, engine: str = "vllm"):
    return memory_budget(spec(name), None, BudgetInputs(
        engine=engine, gpu_mem_bytes=POOL + GIB, util=1.0, weights_bytes=GIB, activation_bytes=0, overhead_bytes=0,
        max_num_batched_tokens=8_192))


def test_flash_num_blocks_and_tokens_from_a_100_gib_pool():
    b = _budget("flash")
    # 107,374,182,400 // 1,002,240 = 107,134 blocks (107,134 x 1,002,240 = 107,373,980,160; 202,240 B left)
    assert (b.kv_pool_bytes, b.page_bytes, b.num_blocks) == (POOL, 1_002_240, 107_134)
    assert b.num_blocks * 1_002_240 + 202_240 == POOL
    # int(107,134 / 10,778 x 1,048,576) = int(10,422,911.3) (get_kv_cache_capacity)
    assert b.token_capacity == 10_422_911 == int(107_134 / 10_778 * 1_048_576)
    # the same through tokens_for_kv_bytes, and at max_model_len 65,536: int(107,134 / 6,938 x 65,536)
    for length, tokens in ((1_048_576, 10_422_911), (65_536, 1_011_982)):
        assert tokens_for_kv_bytes(spec("flash"), POOL, BF16, block_size=256, max_model_len=length,
                                   max_num_batched_tokens=8_192, per_concurrency=True, packed=True,
                                   in_flight_batches=2) == tokens
    # a second way, by bytes: a request's groups cost 10,778 x 1,002,240 = 10,802,142,720 B of the pool;
    # 107,374,182,400 B / that x 1,048,576 = 10,422,931.2, over by the 202,240 B no block takes (20 tokens)
    assert POOL / (10_778 * 1_002_240) * 1_048_576 == pytest.approx(10_422_911, abs=202_240 / 10_778 / 1_002_240
                                                                    * 1_048_576 + 1)


def test_pro_num_blocks_and_tokens_from_a_100_gib_pool():
    b = _budget("pro")
    # 107,374,182,400 // 1,435,968 = 74,774 (74,774 x 1,435,968 = 107,373,071,232; 1,111,168 B left)
    assert (b.page_bytes, b.num_blocks) == (1_435_968, 74_774)
    assert b.num_blocks * 1_435_968 + 1_111_168 == POOL
    # the same five kinds of group as Flash, so the same 10,778 blocks a request of 1,048,576 tokens
    assert b.token_capacity == int(74_774 / 10_778 * 1_048_576) == 7_274_654


def test_start_up_counts_blocks_by_group():
    """get_kv_cache_configs checks _max_memory_usage_bytes_from_groups: the block's bytes x the blocks
    one request takes, 1,002,240 x 10,778 = 10,802,142,720 B (the per-layer sum is 6,785,877,312 + the
    second in-flight step's window and ring pages)."""
    b = _budget("flash")
    assert max_memory_usage_bytes(spec("flash"), b, 1_048_576) == 1_002_240 * 10_778 == 10_802_142_720


def test_releases_before_the_packing_preset_keep_one_page_over_every_layer():
    """vllm==0.19 (no DeepSeek-V4 grouping): a block of every layer's page, 2 x 149,760 + 21 x 46,080
    + 20 x 1,728 = 1,301,760 B; 107,374,182,400 // 1,301,760 = 82,483 blocks x 256 tokens."""
    b = _budget("flash", "vllm==0.19")
    assert (b.page_bytes, b.num_blocks, b.token_capacity) == (1_301_760, 82_483, 82_483 * 256)


def test_models_without_block_caches_are_not_packed():
    """Gemma-3-27B's full and sliding layers have one page each: no packing, its groups as before."""
    gemma = import_model(FIXTURES / "gemma3-27b").spec
    assert all(group.block_caches(16) == () for group in gemma.layers)
    assert packed_layout(gemma, 16) is None
