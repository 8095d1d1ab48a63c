"""Per-request state of the newer layer kinds, as vLLM allocates it, derived by hand: Gated DeltaNet
(Qwen3-Next), Mamba-2 with groups replicated under TP (Nemotron-H), MLP-only blocks, and the
DeepSeek sparse-attention indexer beside an MLA latent."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvplan.calc.kv import kv_size
from kvplan.errors import InputError, SpecError
from kvplan.specs.layers import GatedDeltaNetState, MambaState, MLALatent, MlpOnly
from kvplan.specs.importer import import_model

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"


def layer(result, kind):
    return next(group for group in result.layers if group.kind == kind)


# --- Gated DeltaNet: Qwen3-Next-80B-A3B (16 K heads, 32 V heads, 128 x 128, kernel 4) ----------------

QWEN3_NEXT_GDN = GatedDeltaNetState(count=36, num_k_heads=16, num_v_heads=32, head_k_dim=128, head_v_dim=128,
                                    conv_kernel=4)


def test_gdn_state_at_tp1():
    # conv_dim = 2 x 16 x 128 + 32 x 128 = 8,192; conv state 8,192 x (4 - 1) = 24,576
    # recurrent state 32 x 128 x 128 = 524,288; together 548,864 elements
    assert QWEN3_NEXT_GDN.conv_dim == 8_192
    assert QWEN3_NEXT_GDN.state_elements(1) == 24_576 + 524_288 == 548_864


def test_gdn_state_splits_across_tp():
    # conv 8,192 / 2 x 3 = 12,288; recurrent 32 / 2 x 128 x 128 = 262,144
    assert QWEN3_NEXT_GDN.state_elements(2) == 12_288 + 262_144
    assert QWEN3_NEXT_GDN.state_elements(2) * 2 == QWEN3_NEXT_GDN.state_elements(1)


def test_gdn_refuses_a_tp_that_does_not_split_its_heads():
    with pytest.raises(SpecError, match="does not divide the linear-attention key heads 16"):
        QWEN3_NEXT_GDN.state_elements(32)


def test_qwen3_next_imported_and_sized():
    spec = import_model(FIXTURES / "qwen3-next-80b-a3b").spec
    assert [(g.kind, g.count) for g in spec.layers] == [("full", 12), ("gdn", 36)]  # every 4th layer full
    r = kv_size(spec, 32768)
    # full attention: 12 layers x 2 (K, V) x 2 KV heads x 256 x 2 B = 24,576 B per token
    assert r.bytes_per_token_per_gpu == 12 * 2 * 2 * 256 * 2 == 24_576
    # GDN: 36 layers x 548,864 elements x 2 B (bf16) = 39,518,208 B whatever the context
    assert layer(r, "gdn").bytes_per_request == 36 * 548_864 * 2 == 39_518_208
    assert r.bytes_per_request_per_gpu == 32768 * 24_576 + 39_518_208
    at_tp2 = kv_size(spec, 32768, tp=2)
    assert layer(at_tp2, "gdn").bytes_per_request == 36 * (12_288 + 262_144) * 2 == 19_759_104


# --- Mamba-2: Nemotron-H-8B (128 heads x 64, state 128, 8 groups, conv 4) --------------------------

NEMOTRON_MAMBA = MambaState(count=24, d_inner=128 * 64, d_state=128, d_conv=4, n_groups=8, num_heads=128)


def test_mamba2_state_at_tp1():
    # conv channels 8,192 + 2 x 8 x 128 = 10,240; conv 10,240 x 3 = 30,720; ssm 8,192 x 128 = 1,048,576
    assert NEMOTRON_MAMBA.state_elements(1) == 30_720 + 1_048_576 == 1_079_296


def test_mamba2_groups_are_replicated_when_tp_does_not_divide_them():
    # TP 16 > 8 groups: vLLM extends them to 16; conv channels 8,192 + 2 x 16 x 128 = 12,288
    # conv 12,288 / 16 x 3 = 2,304; ssm 8,192 / 16 x 128 = 65,536
    assert NEMOTRON_MAMBA.groups_after_tp_replication(16) == 16
    assert NEMOTRON_MAMBA.state_elements(16) == 2_304 + 65_536
    # TP 8 divides the 8 groups: no replication; (10,240 / 8) x 3 + 1,024 x 128
    assert NEMOTRON_MAMBA.state_elements(8) == 1_280 * 3 + 131_072


def test_mamba1_state_is_unchanged():
    # Jamba's Mamba-1: d_inner 8,192, state 16, conv 4, no groups: 8,192 x 3 + 8,192 x 16
    jamba = MambaState(count=28, d_inner=8192, d_state=16, d_conv=4)
    assert jamba.state_elements(1) == 8192 * 3 + 8192 * 16 == 155_648
    assert jamba.state_elements(2) == 155_648 // 2


def test_nemotron_h_imported_and_sized():
    spec = import_model(FIXTURES / "nemotron-h-8b").spec
    # "M-M-M-M*-M-..." (52 characters): 24 Mamba-2, 4 attention, 24 MLP blocks
    assert [(g.kind, g.count) for g in spec.layers] == [("mamba", 24), ("full", 4), ("mlp", 24)]
    r = kv_size(spec, 8192)
    assert r.bytes_per_token_per_gpu == 4 * 2 * 8 * 128 * 2 == 16_384  # 4 layers x K,V x 8 heads x 128 x 2 B
    assert layer(r, "mamba").bytes_per_request == 24 * 1_079_296 * 2 == 51_806_208
    assert layer(r, "mlp").bytes_per_request == 0
    assert r.bytes_per_request_per_gpu == 8192 * 16_384 + 51_806_208


def test_mlp_only_blocks_cache_nothing():
    block = MlpOnly(count=3)
    assert (block.kv_elements_per_token(4), block.state_elements(4), block.cached_tokens(10**6)) == (0, 0, 0)


def test_a_bad_hybrid_pattern_is_one_error(tmp_path):
    config = (FIXTURES / "nemotron-h-8b" / "config.json").read_text().replace('"M-M-M-M*', '"M-X-M-M*')
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(SpecError, match="hybrid_override_pattern must be 52 characters of M, \\*, - or E"):
        import_model(tmp_path)


# --- DeepSeek sparse attention: the indexer beside the latent ------------------------------------------

def test_dsa_indexer_adds_132_bytes_per_token_and_layer(catalog):
    v3 = catalog.model("deepseek-v3")
    v32 = v3.model_copy(update={"layers": (v3.layers[0].model_copy(update={"index_head_dim": 128}),)})
    # MLA: (512 + 64) x 2 B = 1,152 B per layer; indexer: 128 fp8 values + 128/128 x 4 B scale = 132 B
    assert MLALatent(count=1, kv_lora_rank=512, qk_rope_head_dim=64, num_heads=128, qk_nope_head_dim=128,
                     v_head_dim=128, index_head_dim=128).fixed_bytes_per_token() == 132
    assert kv_size(v32, 1).bytes_per_token_per_gpu == 61 * (1_152 + 132) == 78_324
    # the indexer key is in its own fp8 format, whatever the KV dtype; an fp8 latent carries a scale per
    # 128 values and keeps its RoPE key in bf16: 512 + 4 x 4 + 64 x 2 = 656 B (vLLM fp8_ds_mla, SGLang's DSA pool)
    assert kv_size(v32, 1, kv_dtype="fp8").bytes_per_token_per_gpu == 61 * (656 + 132)
    # and, like the latent, whole on every tensor-parallel rank
    assert kv_size(v32, 1, tp=8).bytes_per_token_per_gpu == 61 * (1_152 + 132)


def test_kv_size_refuses_a_tp_that_splits_no_state():
    spec = import_model(FIXTURES / "qwen3-next-80b-a3b").spec
    with pytest.raises((SpecError, InputError)):
        kv_size(spec, 1024, tp=32)


def test_a_deepseek_v32_config_gets_its_indexer(tmp_path):
    import json

    config = json.loads((FIXTURES / "deepseek-v3" / "config.json").read_text())
    config.update(model_type="deepseek_v32", architectures=["DeepseekV32ForCausalLM"])  # index_* from the class
    (tmp_path / "config.json").write_text(json.dumps(config))
    (mla,) = import_model(tmp_path).spec.layers
    assert mla.index_head_dim == 128 and mla.fixed_bytes_per_token() == 132


def test_qwen3_6_35b_a3b_keeps_its_recurrent_state_in_fp32():
    """Its config says mamba_ssm_dtype float32, which vLLM takes for the GDN recurrent state
    (model_executor/models/config.py, Qwen3_5ForConditionalGenerationConfig); the conv state stays bf16."""
    spec = import_model(FIXTURES / "qwen3.6-35b-a3b").spec
    assert [(g.kind, g.count) for g in spec.layers] == [("full", 10), ("gdn", 30)]
    r = kv_size(spec, 32768)
    # full attention: 10 layers x 2 (K, V) x 2 KV heads x 256 x 2 B = 20,480 B per token
    assert r.bytes_per_token_per_gpu == 10 * 2 * 2 * 256 * 2 == 20_480
    # conv: (2 x 16 x 128 + 32 x 128) x (4 - 1) = 24,576 x 2 B; recurrent: 32 x 128 x 128 = 524,288 x 4 B
    assert layer(r, "gdn").bytes_per_request == 30 * (24_576 * 2 + 524_288 * 4) == 30 * 2_146_304 == 64_389_120
