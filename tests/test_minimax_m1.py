"""MiniMax-M1 (model_type minimax_m1) as vLLM 0.19 lays it out (model_executor/models/minimax_text_01.py;
removed from vLLM in 0.23): attn_type_list gives 70 lightning (linear) attention layers, each a constant
state of num_attention_heads / TP x head_dim x head_dim in the model dtype
(mamba_utils.py MambaStateShapeCalculator.linear_attention_state_shape,
MambaStateDtypeCalculator.linear_attention_state_dtype), and 10 full-attention layers of 8 KV heads x 128.
Every number is derived by hand from tests/fixtures/hf_configs/minimax-m1/config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.errors import SpecError
from kvplan.specs.engines.pages import hybrid_page
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.kinds.minimax import LightningState
from kvplan.specs.layers import FullAttention
from kvplan.specs.layer_text import describe, state_formula
from kvplan.units import kv_format

FIXTURE = Path(__file__).parent / "fixtures" / "hf_configs" / "minimax-m1"
BF16, FP8 = kv_format("bf16"), kv_format("fp8")
FULL = FullAttention(count=10, num_kv_heads=8, head_dim=128)
LIGHTNING = LightningState(count=70, num_heads=64, head_dim=128)


def raw() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


def test_attn_type_list_reads_as_lightning_and_full_layers():
    spec = import_model(FIXTURE).spec
    # attn_type_list: 7 x 0 then a 1, ten times; num_attention_heads 64, num_key_value_heads 8, head_dim 128
    assert raw()["attn_type_list"] == ([0] * 7 + [1]) * 10
    assert spec.layers == (FULL, LIGHTNING) and spec.num_layers == 80
    assert spec.compute_dtype == "bf16"  # no torch_dtype in the config: the default, bf16


def test_the_lightning_state_is_heads_x_head_dim_squared_in_the_model_dtype():
    # (64 / TP, 128, 128) elements, bf16 (mamba_cache_dtype auto = the model's dtype)
    assert LIGHTNING.state_elements() == 64 * 128 * 128 == 1_048_576
    assert LIGHTNING.state_bytes(1, 2) == 1_048_576 * 2 == 2_097_152
    assert LIGHTNING.state_bytes(8, 2) == 8 * 128 * 128 * 2 == 262_144
    assert LIGHTNING.state_bytes(1, 4) == 4_194_304  # an fp32 model (vLLM refuses an fp32 *cache* dtype only)
    # no per-token cache, whatever the context; the state is one page
    assert LIGHTNING.kv_bytes_per_token(BF16) == 0 and LIGHTNING.cached_tokens(10**6) == 0
    assert LIGHTNING.page_size_bytes(block_size=16, kv_format=FP8, state_dtype_bytes=2) == 2_097_152
    assert not LIGHTNING.is_attention and LIGHTNING.kv_page_layout() is None
    assert state_formula(LIGHTNING, 8) == "64 / TP 8 heads x 128 x 128 = 131,072 elements"
    assert describe(LIGHTNING) == "64 heads x 128 x 128"


def test_a_tp_that_does_not_split_the_heads_is_refused():
    # MiniMaxText01LinearAttention asserts num_heads % tp_size == 0
    with pytest.raises(SpecError, match="tensor-parallel size 3 does not divide the lightning-attention heads 64"):
        LIGHTNING.state_bytes(3, 2)


def test_full_layers_per_token_and_a_request():
    assert FULL.kv_bytes_per_token(BF16) == 2 * 8 * 128 * 2 == 4_096
    assert FULL.kv_bytes_per_token(BF16, tp=8) == 2 * 1 * 128 * 2 == 512
    # 131,072 tokens: 10 x 131,072 x 4,096 B of KV + 70 states of 2,097,152 B
    request = 10 * 131_072 * 4_096 + 70 * 2_097_152
    assert request == 5_368_709_120 + 146_800_640 == 5_515_509_760
    from kvplan.calc.kv import request_bytes

    assert request_bytes(import_model(FIXTURE).spec, 131_072, BF16) == request


def test_vllm_grows_the_attention_block_until_its_page_holds_a_state():
    """HybridAttentionMambaModelConfig.verify_and_update_config (vllm 0.19 model_executor/models/config.py):
    attn_block_size = 16 x cdiv(state page, 16 x attention bytes a token), the state padded to that page."""
    spec = import_model(FIXTURE).spec
    # TP 1, bf16: 16 x cdiv(2,097,152, 16 x 4,096) = 16 x 32 = 512 tokens; 512 x 4,096 = 2,097,152 B (no padding)
    assert hybrid_page(spec, BF16) == (512, 512 * 4_096) == (512, 2_097_152)
    # TP 8: 16 x cdiv(262,144, 16 x 512) = 512 tokens; 512 x 512 = 262,144 B, the TP-8 state
    assert hybrid_page(spec, BF16, tp=8) == (512, 262_144)
    # fp8 KV (the state stays bf16): 16 x cdiv(2,097,152, 16 x 2,048) = 1,024 tokens of 2,048 B
    assert hybrid_page(spec, FP8) == (1_024, 2_097_152)


def test_one_request_of_a_million_tokens_at_start_up():
    """max_memory_usage_bytes at the hybrid block of 512: FullAttentionSpec holds cdiv(max_model_len, 512)
    pages, MambaSpec one state page."""
    def max_bytes(group):
        return group.max_memory_bytes(max_model_len=1_048_576, max_num_batched_tokens=8192, block_size=512,
                                      kv_format=BF16, tp=1, state_dtype_bytes=2)

    assert max_bytes(FULL) == 1_048_576 // 512 * 2_097_152 == 4_294_967_296
    assert max_bytes(LIGHTNING) == 2_097_152
    total = 10 * 4_294_967_296 + 70 * 2_097_152
    assert total == 10 * 1_048_576 * 4_096 + 70 * 64 * 128 * 128 * 2 == 43_096_473_600


def test_parameters_match_the_published_456b_total():
    spec = import_model(FIXTURE).spec
    h, inner = 6_144, 64 * 128
    lightning = 3 * h * inner + h * inner + inner * h + inner  # qkv_proj, output_gate, out_proj, norm
    full = h * inner + 2 * h * 8 * 128 + inner * h  # q, k and v, o
    expert = 3 * h * 9_216
    moe = 32 * expert + h * 32  # 32 experts and the router, every layer
    total = 200_064 * h * 2 + 70 * lightning + 10 * full + 80 * moe + (2 * 80 + 1) * h
    assert spec.params_total == total == 456_089_655_296  # "456B total"
    # top-2 of 32: a token skips 30 experts a layer; 48.4B active less the 2.46B of embeddings and
    # lm_head is the published 45.9B activated
    assert spec.params_active == total - 80 * 30 * expert == 48_403_306_496
    assert spec.params_active - 200_064 * h * 2 == 45_944_920_064


@pytest.mark.parametrize("value", [[0, 1], [2] * 80, [True] * 80])
def test_an_attn_type_list_that_does_not_say_is_refused_in_one_line(value):
    with pytest.raises(SpecError, match="attn_type_list must be 80 entries, 0 .lightning. or 1 .full attention."):
        spec_from_config({**raw(), "attn_type_list": value}, "config.json", source="t", name="t", display="t")


def test_hf_layer_types_read_as_vllm_reads_them():
    cfg = {**raw(), "attn_type_list": None,
           "layer_types": (["linear_attention"] * 7 + ["full_attention"]) * 10}
    spec = spec_from_config(cfg, "config.json", source="t", name="t", display="t").spec
    assert spec.layers == (FULL, LIGHTNING)


def test_the_cpu_probe_gives_each_request_its_pages_and_its_states(catalog):
    """As tests/test_probe.py's Jamba case: a 1,024-token request takes 10 x 64 pages of 65,536 B
    (16 x 4,096) and 70 state slots of 2,097,152 B; the pool holds whole requests, and its bytes are
    the prediction."""
    pytest.importorskip("torch")
    from kvplan.calc.kv import paged_request_bytes, resolve_kv_format
    from kvplan.probe.runner import ProbeOptions, run_probe
    from kvplan.units import MIB

    model = catalog.model("minimax-m1")
    per_request = paged_request_bytes(model, 1024, resolve_kv_format(model, "auto"), 1, 16)
    assert per_request == 10 * 64 * 65_536 + 70 * 2_097_152 == 41_943_040 + 146_800_640 == 188_743_680
    opts = ProbeOptions(device="cpu", ctx=1024, batch=4, util=1.0, max_gib=384 * MIB / 2**30, impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    # 384 MiB = 402,653,184 B // 188,743,680 B = 2 requests: their pages and their states, nothing more
    assert r.page_table.batch == 402_653_184 // per_request == 2
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 2 * per_request == 377_487_360 and r.pool.exact
    assert r.pool.layers_allocated == 10 + 70 and r.page_table.pages_used == 2 * 64
    # the full layers are laid out [pages, 2, 16, 8, 128] and attended against a float64 reference
    assert r.correctness and all(c.ok and c.kv_heads == 8 and c.q_heads == 64 for c in r.correctness) and r.ok
