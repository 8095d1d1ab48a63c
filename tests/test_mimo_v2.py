"""MiMo-V2-Flash (model_type mimo_v2_flash) as vLLM lays it out (vllm 0.34
model_executor/models/mimo_v2.py MiMoV2FlashDecoderLayer and MiMoV2Attention; kv_cache_interface.py
AttentionSpec with head_size_v): 9 full-attention layers (4 KV heads) and 39 sliding-window layers
(8 KV heads, window 128, attention sinks), K head 192 and V head 128 in both. Every number below is
derived by hand from tests/fixtures/hf_configs/mimo-v2-flash/config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.errors import SpecError
from kvplan.specs.hfconfig import Config
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.layer_kind import AttentionShape
from kvplan.specs.layers import FullAttention, SlidingWindowAttention
from kvplan.units import kv_format

FIXTURE = Path(__file__).parent / "fixtures" / "hf_configs" / "mimo-v2-flash"
BF16, FP8 = kv_format("bf16"), kv_format("fp8")
# hybrid_layer_pattern: 0 (full) at layers 0, 5, 11, 17, 23, 29, 35, 41, 47; 1 (sliding) elsewhere
FULL = FullAttention(count=9, num_kv_heads=4, head_dim=192, v_head_dim=128)
SLIDING = SlidingWindowAttention(count=39, num_kv_heads=8, head_dim=192, v_head_dim=128, window=128, sinks=True)


def raw() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


def test_the_config_reads_as_two_kinds_with_their_own_heads_and_k_v_head_sizes():
    spec = import_model(FIXTURE).spec
    # full: num_key_value_heads 4, head_dim 192, v_head_dim 128; sliding: swa_num_key_value_heads 8,
    # swa_head_dim 192, swa_v_head_dim 128, sliding_window_size 128, add_swa_attention_sink_bias true
    assert spec.layers == (FULL, SLIDING)
    assert raw()["hybrid_layer_pattern"].count(0) == 9 and spec.num_layers == 48


def test_bytes_per_token_count_k_and_v_at_their_own_sizes():
    # AttentionSpec: num_kv_heads x (head_size + head_size_v) x dtype bytes, per token and layer
    assert FULL.kv_bytes_per_token(BF16) == 4 * (192 + 128) * 2 == 2_560
    assert SLIDING.kv_bytes_per_token(BF16) == 8 * (192 + 128) * 2 == 5_120
    assert FULL.kv_bytes_per_token(FP8) == 4 * 320 == 1_280
    # a cross-check against vLLM 0.19, which padded V to 192 (mimo_v2_flash.py pads v to head_dim):
    # 2 x 4 x 192 x 2 B = 3,072 B, 512 B a token more than 0.34 caches
    assert 2 * 4 * 192 * 2 - FULL.kv_bytes_per_token(BF16) == 4 * (192 - 128) * 2 == 512
    # TP 4: 1 full head and 2 sliding heads a rank; TP 8: the 4 full heads replicated, one a rank
    assert FULL.kv_bytes_per_token(BF16, tp=4) == 1 * 320 * 2 == 640
    assert SLIDING.kv_bytes_per_token(BF16, tp=4) == 2 * 320 * 2 == 1_280
    assert FULL.kv_bytes_per_token(BF16, tp=8) == SLIDING.kv_bytes_per_token(BF16, tp=8) == 640


def test_a_request_and_its_pages():
    # 131,072 tokens: 9 full layers keep them all, 39 sliding layers their window of 128 (sinks add no byte)
    full = 9 * 131_072 * 2_560
    sliding = 39 * 128 * 5_120
    assert (full, sliding) == (3_019_898_880, 25_559_040)
    assert FULL.cached_tokens(131_072) * FULL.kv_bytes_per_token(BF16) * 9 == full
    assert SLIDING.cached_tokens(131_072) * SLIDING.kv_bytes_per_token(BF16) * 39 == sliding
    # a page of 16 tokens: 40,960 B full, 81,920 B sliding (pages of two sizes)
    assert FULL.page_size_bytes(block_size=16, kv_format=BF16, state_dtype_bytes=2) == 16 * 2_560 == 40_960
    assert SLIDING.page_size_bytes(block_size=16, kv_format=BF16, state_dtype_bytes=2) == 16 * 5_120 == 81_920


def max_bytes(group, max_model_len: int) -> int:
    return group.max_memory_bytes(max_model_len=max_model_len, max_num_batched_tokens=8192, block_size=16,
                                  kv_format=BF16, tp=1, state_dtype_bytes=2)


def test_one_request_of_the_whole_context_at_start_up():
    """vLLM V1's max_memory_usage_bytes at max_model_len 262,144 (the config's max_position_embeddings),
    max_num_batched_tokens 8,192, 16-token pages."""
    # FullAttentionSpec: cdiv(262,144, 16) = 16,384 pages x 40,960 B = 671,088,640 B a layer
    assert max_bytes(FULL, 262_144) == 16_384 * 40_960 == 671_088_640
    # SlidingWindowSpec: min(128 - 1 + 8,192, 262,144) = 8,319 tokens -> cdiv 520 pages + 1 = 521 x 81,920 B
    assert max_bytes(SLIDING, 262_144) == 521 * 81_920 == 42_680_320
    total = 9 * 671_088_640 + 39 * 42_680_320
    assert total == 6_039_797_760 + 1_664_532_480 == 7_704_330_240
    assert sum(g.count * max_bytes(g, 262_144) for g in import_model(FIXTURE).spec.layers) == total


def test_prefill_shape_and_page_layout_are_honest_about_two_head_sizes():
    # QK over 192 and PV over 128 for 64 query heads; FlashInfer's one-head-size page cannot hold the
    # pair, so the page is raw bytes (vLLM 0.34 DiffKV: [blocks, block_size, kv_heads, 192 + 128])
    assert FULL.prefill_attention_shape(64) == AttentionShape(64, 4, 192, 128)
    assert FULL.prefill_flops_per_pair(64) == 2 * 64 * (192 + 128) == 40_960
    assert FULL.kv_page_layout() is None and SLIDING.kv_page_layout(tp=2) is None
    assert FullAttention(count=1, num_kv_heads=4, head_dim=128, v_head_dim=128).kv_page_layout() == (4, 128)
    # without GQA: 64 heads x (192 + 128) x 2 B = 40,960 B a token
    assert FULL.mha_equivalent(64).kv_bytes_per_token(BF16) == 40_960


def test_parameters_match_the_published_309b_total_and_15b_active():
    spec = import_model(FIXTURE).spec
    h = 4_096
    full = h * 64 * 192 + h * 4 * (192 + 128) + 64 * 128 * h  # q, k and v, o: 89,128,960
    sliding = h * 64 * 192 + h * 8 * (192 + 128) + 64 * 128 * h + 64  # and a sink a head: 94,371,904
    expert = 3 * h * 2_048  # 25,165,824
    moe_layer = 256 * expert + h * 256 + 256  # routed experts, router, its correction bias
    total = (152_576 * h * 2 + 9 * full + 39 * sliding + 3 * h * 16_384 + 47 * moe_layer + (2 * 48 + 1) * h)
    assert spec.params_total == total == 308_778_780_864  # "309B total"
    # moe_layer_freq: 47 MoE layers (layer 0 is dense); a token skips 248 experts in each
    assert spec.params_active == total - 47 * 248 * expert == 15_445_936_320  # "15B active"


@pytest.mark.parametrize("key, value, message", [
    ("hybrid_layer_pattern", [0, 1], "hybrid_layer_pattern must be a list of 48 entries, 0 or 1"),
    ("hybrid_layer_pattern", None, "hybrid_layer_pattern must be a list of 48 entries"),
    ("moe_layer_freq", [1] * 47 + [2], "moe_layer_freq must be a list of 48 entries, 0 or 1"),
    ("swa_head_dim", None, "needs an integer swa_head_dim"),
])
def test_a_config_that_does_not_say_is_refused_in_one_line(key, value, message):
    cfg = {**raw(), key: value}
    with pytest.raises(SpecError, match=message):
        spec_from_config(cfg, "config.json", source="t", name="t", display="t")


def test_v_head_dim_equal_to_head_dim_is_left_out():
    from kvplan.specs.archs.mimo_v2 import layer_groups

    cfg = {**raw(), "v_head_dim": 192, "swa_v_head_dim": None}
    full, sliding = layer_groups(Config(cfg, "config.json"), 48)
    assert "v_head_dim" not in full and "v_head_dim" not in sliding


def test_the_cpu_probe_allocates_both_kinds_as_the_calculator_predicts(catalog):
    """The probe allocates every layer's pool on CPU torch (tests/test_probe.py's rule): pages of two
    sizes are not shared across kinds, so each of the 48 layers gets a tensor of raw-byte pages (no
    one-head-size layout holds K 192 and V 128), and the bytes are the prediction."""
    pytest.importorskip("torch")
    from kvplan.calc.kv import paged_request_bytes, resolve_kv_format
    from kvplan.probe.runner import ProbeOptions, run_probe
    from kvplan.units import MIB

    model = catalog.model("mimo-v2-flash")
    opts = ProbeOptions(device="cpu", ctx=256, batch=4, util=1.0, max_gib=128 * MIB / 2**30, impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    # a page of every layer: 9 x 40,960 + 39 x 81,920 = 3,563,520 B; 128 MiB // 3,563,520 = 37 pages a layer
    assert r.pool.page_bytes == 9 * 40_960 + 39 * 81_920 == 3_563_520
    assert (r.pool.predicted_blocks, r.pool.layers_allocated) == (134_217_728 // 3_563_520, 48) == (37, 48)
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 37 * 3_563_520 == 131_850_240 and r.pool.exact
    # a 256-token request: 16 pages in each layer's tensor; 37 // 16 = 2 of the 4 asked for
    assert (r.page_table.batch, r.page_table.pages_used, r.page_table.problems) == (2, 32, ())
    # what the calculator pages for one: 9 x 16 x 40,960 + 39 x 8 (the window) x 81,920 B
    per_request = paged_request_bytes(model, 256, resolve_kv_format(model, "auto"), 1, 16)
    assert per_request == 9 * 16 * 40_960 + 39 * 8 * 81_920 == 31_457_280
    assert r.correctness == () and r.ok  # raw-byte pages are allocated and counted, not attended
