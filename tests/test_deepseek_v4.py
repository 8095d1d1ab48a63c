"""DeepSeek-V4 as vLLM 0.34 caches it, every number derived by hand from the configs in
tests/fixtures/hf_configs/deepseek-v4-{flash,pro} (head_dim 512, qk_rope_head_dim 64, sliding_window 128,
index_head_dim 128) and the vLLM source named next to each: vllm/models/deepseek_v4/attention.py
(DeepseekV4Attention.get_kv_cache_spec, DeepseekV4IndexerCache, DeepseekV4Indexer.__init__),
compressor.py (CompressorStateCache, DeepseekCompressor), v1/attention/backends/mla/sparse_swa.py
(DeepseekV4SWACache), v1/kv_cache_interface.py (AttentionSpec.page_size_bytes,
_apply_alignment_padding, FullAttentionSpec / SlidingWindowSpec.max_memory_usage_bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvplan.calc.kv import kv_size, layers_kv
from kvplan.errors import InputError, SpecError
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.kinds.deepseek_v4 import DeepseekV4Compressed, DeepseekV4Window
from kvplan.units import kv_format

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
BF16, FP8 = kv_format("bf16"), kv_format("fp8")
LAYER = {"head_dim": 512, "rope_head_dim": 64, "window": 128}
WINDOW = DeepseekV4Window(count=2, **LAYER)
C4 = DeepseekV4Compressed(count=21, compress_ratio=4, index_head_dim=128, index_topk=512, **LAYER)
C128 = DeepseekV4Compressed(count=20, compress_ratio=128, **LAYER)


def page(group, block_size: int = 256) -> int:
    return group.page_size_bytes(block_size=block_size, kv_format=BF16, state_dtype_bytes=2)


def start_bytes(group, max_model_len: int = 1_048_576, batched: int = 8192, block_size: int = 256) -> int:
    return group.max_memory_bytes(max_model_len=max_model_len, max_num_batched_tokens=batched,
                                  block_size=block_size, kv_format=BF16, state_dtype_bytes=2)


# --- the config, read ----------------------------------------------------------------------------

def test_flash_layers_follow_compress_ratios_without_the_mtp_layer():
    """44 ratios: 0, 0, (4, 128) x 20, 4 for the 43 layers, then 0 for the MTP layer (dropped)."""
    spec = import_model(FIXTURES / "deepseek-v4-flash").spec
    assert [(g.kind, g.count, getattr(g, "compress_ratio", 0)) for g in spec.layers] == [
        ("dsv4_swa", 2, 0), ("dsv4_compressed", 21, 4), ("dsv4_compressed", 20, 128)]
    assert spec.layers[1] == C4 and spec.layers[2] == C128 and spec.num_layers == 43


def test_pro_has_no_window_only_layer_and_a_wider_topk():
    """62 ratios: 128, 128, (4, 128) x 29, 4, then the MTP layer's 0: 30 x ratio 4, 31 x ratio 128."""
    spec = import_model(FIXTURES / "deepseek-v4-pro").spec
    assert [(g.kind, g.count, g.compress_ratio) for g in spec.layers] == [
        ("dsv4_compressed", 30, 4), ("dsv4_compressed", 31, 128)]
    assert spec.layers[0].index_topk == 1024


def test_parameters_match_the_published_counts():
    """DeepSeek: Flash 284B total / 13B activated, Pro 1.6T / 49B. The estimate (attention with its
    compressors and indexer, 256 or 384 gated experts + 1 shared, hash tables, hyper-connections,
    embeddings; no MTP) lands within 0.2% and 2.5% of the totals."""
    flash = import_model(FIXTURES / "deepseek-v4-flash").spec
    pro = import_model(FIXTURES / "deepseek-v4-pro").spec
    assert flash.params_total == 284_334_567_511 and abs(flash.params_total / 284e9 - 1) < 0.002
    assert pro.params_total == 1_572_999_528_803 and abs(pro.params_total / 1.6e12 - 1) < 0.025
    # a token skips 250 of 256 experts in 43 layers: 43 x 250 x 3 x 4,096 x 2,048 = 270,532,608,000
    assert flash.params_active == 284_334_567_511 - 270_532_608_000 == 13_801_959_511


def test_a_short_compress_ratios_list_is_one_clear_line():
    raw = {**_flash_config(), "compress_ratios": [0, 4]}
    with pytest.raises(SpecError, match="compress_ratios must list at least 43 ratios"):
        spec_from_config(raw, "cfg.json", source="t", name=None, display=None)


def _flash_config() -> dict:
    import json

    return json.loads((FIXTURES / "deepseek-v4-flash" / "config.json").read_text())


# --- what one cached entry takes --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [BF16, FP8])
def test_a_latent_is_584_bytes_in_fp8_ds_mla_whatever_the_kv_dtype(fmt):
    # 448 NoPE x 1 B (fp8) + 64 RoPE x 2 B (bf16) + 448 / 64 = 7 UE8M0 scales + 1 pad = 584 B
    # (attention.py get_kv_cache_spec: state_content_bytes=584; auto and fp8 both become fp8_ds_mla)
    for group in (WINDOW, C4, C128):
        assert group.kv_bytes_per_token(fmt) == 448 + 64 * 2 + 8 == 584


def test_the_indexer_key_and_the_compressor_rings():
    # indexer: 128 fp8 + 128 / 128 x 4 B fp32 scale = 132 B (DeepseekV4Indexer: k_cache_head_dim)
    assert C4.indexer_key_bytes() == 132 and C128.indexer_key_bytes() == 0
    # ratio 4 overlaps (coff 2): 2 x 2 x 512 fp32 = 8,192 B a token, + the indexer's 2 x 2 x 128 x 4 = 2,048 B,
    # for coff x ratio = 8 tokens; ratio 128: 2 x 1 x 512 x 4 = 4,096 B for 128 tokens
    assert (C4.ring_bytes_per_token(), C4.ring_tokens()) == (8_192 + 2_048, 8)
    assert (C128.ring_bytes_per_token(), C128.ring_tokens()) == (4_096, 128)


# --- what a layer holds at a context ------------------------------------------------------------------

@pytest.mark.parametrize("ctx, window, c4, c128", [
    (100, 100, 100 + 25, 100 + 0),  # under the window: every token, and 100 // 4 entries
    (4_096, 128, 128 + 1_024, 128 + 32),  # 4,096 / 4 and 4,096 / 128 compressed entries
    (1_048_576, 128, 128 + 262_144, 128 + 8_192),
])
def test_tokens_held_are_the_window_and_one_entry_per_ratio(ctx, window, c4, c128):
    assert (WINDOW.cached_tokens(ctx), C4.cached_tokens(ctx), C128.cached_tokens(ctx)) == (window, c4, c128)


def test_bytes_held_at_4096_tokens():
    # window layer: 128 x 584 = 74,752 B
    assert WINDOW.held_bytes(4_096, BF16) == 74_752
    # ratio 4: 1,152 x 584 + 1,024 keys x 132 + 8 ring tokens x 10,240 = 672,768 + 135,168 + 81,920
    assert C4.held_bytes(4_096, BF16) == 672_768 + 135_168 + 81_920 == 889_856
    # ratio 128: 160 x 584 + 128 ring tokens x 4,096 = 93,440 + 524,288
    assert C128.held_bytes(4_096, BF16) == 93_440 + 524_288 == 617_728


def test_a_flash_request_of_a_million_tokens_two_ways():
    model = import_model(FIXTURES / "deepseek-v4-flash").spec
    ctx = 1_048_576
    per_layer = [layer.bytes_per_request_per_layer for layer in layers_kv(model, ctx, BF16)]
    # by layer: 74,752; 262,272 x 584 + 262,144 x 132 + 81,920 = 187,851,776; 8,320 x 584 + 524,288 = 5,383,168
    assert per_layer == [74_752, 187_851_776, 5_383_168]
    request = kv_size(model, ctx).bytes_per_request_per_gpu
    assert request == 2 * 74_752 + 21 * 187_851_776 + 20 * 5_383_168 == 4_052_700_160
    # by cache: latents (2 x 128 + 21 x 262,272 + 20 x 8,320) x 584 + keys 21 x 262,144 x 132
    # + rings 21 x 81,920 + 20 x 524,288
    assert request == 5_674_368 * 584 + 21 * 262_144 * 132 + 21 * 81_920 + 20 * 524_288


def test_attended_pairs_against_a_direct_sum():
    ctx = 4_096
    # the window: 128 x 129 / 2 + (4,096 - 128) x 128 = 8,256 + 507,904
    assert WINDOW.attended_pairs(ctx) == 516_160 == sum(min(t, 128) for t in range(1, ctx + 1))
    window = 516_160
    # ratio 128: sum of t // 128 = 128 x 32 x 31 / 2 + 32 x 1 = 63,488 + 32
    assert C128.attended_pairs(ctx) - window == 63_520 == sum(t // 128 for t in range(1, ctx + 1))
    # ratio 4 with top 512: t // 4 entries until t = 2,048, then 512: 523,264 + 512 x 2,049
    assert C4.attended_pairs(ctx) - window == 523_264 + 1_049_088 == sum(min(t // 4, 512) for t in range(1, ctx + 1))


# --- pages and what vLLM checks at start-up -----------------------------------------------------------

def test_pages_of_256_tokens_padded_to_576_bytes():
    # window: 256 x 584 = 149,504 -> 260 x 576 = 149,760
    assert page(WINDOW) == 149_760
    # ratio 4: 256 / 4 = 64 latents x 584 = 37,376 -> 65 x 576 = 37,440; 64 keys x 132 = 8,448 -> 15 x 576 = 8,640
    assert page(C4) == 37_440 + 8_640 == 46_080
    # ratio 128: 2 latents x 584 = 1,168 -> 3 x 576 = 1,728
    assert page(C128) == 1_728
    # vLLM's sparse MLA kernels take 256-token blocks only (sparse_mla.py get_supported_kernel_block_sizes)
    model = import_model(FIXTURES / "deepseek-v4-flash").spec
    assert engine_entry("vllm").default_block_size(model, None, BF16) == 256
    # an engine whose own page is smaller (SGLang's 1 token) takes the kernels' page too: a page of 1 token holds
    # 1 // 128 = 0 latents of a ratio-128 layer
    assert engine_entry("sglang").default_block_size(model, None, BF16) == 256


def test_start_up_bytes_of_a_million_token_request():
    """max_model_len 1,048,576, 8,192 tokens a step (SlidingWindowSpec counts window - 1 + them)."""
    # the window's 64-token blocks: cdiv(min(127 + 8,192, L), 64) = 130, + 1 = 131 pages x 37,440 (64 x 584 -> 65 x 576)
    window = 131 * 37_440
    assert start_bytes(WINDOW) == window == 4_904_640
    # ratio 4: cdiv(L, 256) = 4,096 pages x 46,080; rings of 4-token blocks: cdiv(7 + 8,192, 4) + 1 = 2,051 pages
    # x (4 x 8,192 = 32,768 -> 32,832, + 4 x 2,048 = 8,192 -> 8,640)
    assert start_bytes(C4) == 4_096 * 46_080 + window + 2_051 * (32_832 + 8_640) == 278_707_392
    # ratio 128: 4,096 x 1,728; ring of 8-token blocks: cdiv(127 + 8,192, 8) + 1 = 1,041 x (8 x 4,096 -> 32,832)
    assert start_bytes(C128) == 4_096 * 1_728 + window + 1_041 * 32_832 == 46_160_640
    total = 2 * start_bytes(WINDOW) + 21 * start_bytes(C4) + 20 * start_bytes(C128)
    assert total == 6_785_877_312  # 6.32 GiB on every rank: the latent is not split by TP


def test_paged_bytes_count_the_compressed_pages_by_the_tokens_they_cover():
    # ratio 4 at 1,000 tokens: cdiv(1,000, 256) = 4 pages of 46,080 B, though it holds 128 + 250 entries
    assert C4.held_pages(1_000, 256) == 4 and WINDOW.held_pages(1_000, 256) == 1
    layer = layers_kv(import_model(FIXTURES / "deepseek-v4-flash").spec, 1_000, BF16, block_size=256)[1]
    assert layer.paged_bytes_per_request == 21 * 4 * 46_080


# --- the probe allocates the new kinds as the calculator counts them -----------------------------------

def test_the_probe_allocates_every_deepseek_v4_layer_as_predicted(catalog):
    pytest.importorskip("torch")
    from kvplan.probe.runner import ProbeOptions, run_probe

    model = catalog.model("deepseek-v4-flash")
    opts = ProbeOptions(device="cpu", ctx=1_000, batch=2, block_size=256, util=1.0, max_gib=0.25, impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    # a block: 2 x 149,760 + 21 x 46,080 + 20 x 1,728 = 1,301,760 B; 268,435,456 // 1,301,760 = 206 blocks
    assert r.pool.predicted_blocks == 206 and r.pool.layers_allocated == 43
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 206 * 1_301_760
    # a request of 1,000 tokens takes cdiv(1,000, 256) = 4 pages of every layer's pool; both fit
    assert (r.page_table.batch, r.page_table.pages_used) == (2, 2 * 4) and r.ok


def test_size_defaults_to_the_kernels_block_and_says_what_the_layers_store(catalog):
    """`kvplan size` takes the 256-token block DeepSeek-V4's sparse MLA kernels require (16 would give
    a ratio-128 layer pages of 16 // 128 = 0 latents), and says the layers store fp8_ds_mla."""
    model = catalog.model("deepseek-v4-flash")
    result = kv_size(model, 32_768)
    assert result.block_size == 256 and kv_size(model, 32_768, block_size=128).block_size == 128
    # a page must hold whole latents of the ratio-128 layers: 64 // 128 = 0 (a page of 0 B, a ZeroDivisionError)
    with pytest.raises(InputError, match="block_size 64 does not hold whole pages of deepseek-v4-flash's compressed "
                                         r"layers \(one latent per 128 tokens\); give block_size a multiple of 128"):
        kv_size(model, 32_768, block_size=64)
    assert "its layers store fp8_ds_mla (584 B a latent), whatever the KV dtype asked" in result.kv_dtype_note
    assert kv_size(catalog.model("llama3-8b"), 4_096).block_size == 16  # no kernel asks: vLLM's 16
    assert kv_size(catalog.model("llama3-8b"), 4_096).kv_dtype_note == ""
