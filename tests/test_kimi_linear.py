"""Kimi-Linear (model_type kimi_linear): KDA linear-attention layers with a constant state beside MLA
layers, as vLLM lays them out. KDA's state is vllm/model_executor/layers/mamba/mamba_utils.py
MambaStateShapeCalculator.kda_state_shape (conv q, k, v: num_heads x head_dim / TP x (kernel - 1) each;
recurrent: num_heads / TP x head_dim x head_dim) in MambaStateDtypeCalculator.kda_state_dtype's dtypes
(conv in the model's dtype, recurrent float32); the MLA layers cache kv_lora_rank + qk_rope_head_dim a
token (MLAAttentionSpec). Every number is derived by hand next to its assert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kv import paged_request_bytes, request_bytes, resolve_kv_format
from kvplan.calc.startup import start_bytes
from kvplan.errors import SpecError
from kvplan.specs.engines.pages import hybrid_page
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.layers import GatedDeltaNetState, MLALatent
from kvplan.units import MIB, kv_format

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
BF16, FP8 = kv_format("bf16"), kv_format("fp8")
KDA_STATE = 3 * 4_096 * 3 * 2 + 32 * 128 * 128 * 4  # conv 73,728 B (bf16) + recurrent 2,097,152 B (fp32)


def raw_config() -> dict:
    return json.loads((FIXTURES / "kimi-linear-48b-a3b" / "config.json").read_text())


def test_the_real_config_imports_as_7_mla_and_20_kda_layers():
    """kda_layers is 1-based (KimiLinearConfig.is_kda_layer: layer_idx + 1 in kda_layers): 20 KDA
    layers; the other 7 (4, 8, ..., 24, 27) are MLA."""
    spec = import_model(FIXTURES / "kimi-linear-48b-a3b").spec
    mla, kda = spec.layers
    assert isinstance(mla, MLALatent) and (mla.count, mla.kv_lora_rank, mla.qk_rope_head_dim) == (7, 512, 64)
    assert isinstance(kda, GatedDeltaNetState) and kda.count == 20
    assert (kda.num_k_heads, kda.num_v_heads, kda.head_k_dim, kda.head_v_dim, kda.conv_kernel) == (32, 32, 128, 128, 4)
    assert kda.ssm_dtype == "fp32" and spec.max_context == 1_048_576  # model_max_length


# --- bytes per token, state bytes, a request -------------------------------------------------------------

def test_an_mla_layer_caches_its_latent_and_rope_key_a_token(catalog):
    mla = catalog.model("kimi-linear-48b-a3b").layers[0]
    # (512 + 64) x 2 B = 1,152 B a token, whole on every rank; fp8 576 B (a dense latent: no DSA indexer)
    assert mla.kv_bytes_per_token(BF16) == 1_152 == mla.kv_bytes_per_token(BF16, tp=4)
    assert mla.kv_bytes_per_token(FP8) == 576


def test_a_kda_state_is_three_conv_states_in_bf16_and_an_fp32_recurrent_state(catalog):
    kda = catalog.model("kimi-linear-48b-a3b").layers[1]
    # vLLM 0.19 kda_state_shape: conv q (3, 4,096), conv k (3, 4,096), conv v (3, 4,096) in bf16:
    # 3 x 12,288 x 2 B = 73,728 B; recurrent (32, 128, 128) fp32: 2,097,152 B; 2,170,880 B a layer
    assert kda.state_bytes(1, 2) == KDA_STATE == 73_728 + 2_097_152 == 2_170_880
    # the same elements by Gated DeltaNet's formula: conv_dim 2 x 32 x 128 + 32 x 128 = 12,288 = 3 x 4,096
    assert kda.conv_dim == 12_288 and kda.state_elements() == 12_288 * 3 + 32 * 128 * 128
    # TP 4: conv 3,072 x 3 x 2 B = 18,432; recurrent 8 x 128 x 128 x 4 B = 524,288
    assert kda.state_bytes(4, 2) == 18_432 + 524_288 == 542_720
    assert kda.cached_tokens(1_000_000) == 0 and kda.kv_bytes_per_token(BF16) == 0


def test_a_request_is_its_mla_tokens_and_twenty_states(catalog):
    model = catalog.model("kimi-linear-48b-a3b")
    # 7 x 8,192 x 1,152 B = 66,060,288; 20 x 2,170,880 = 43,417,600
    assert request_bytes(model, 8_192, BF16) == 66_060_288 + 43_417_600 == 109_477_888
    # at 1M tokens the states are 0.5% of it: 7 x 1,048,576 x 1,152 = 8,455,716,864
    assert request_bytes(model, 1_048_576, BF16) == 8_455_716_864 + 43_417_600


# --- one page size for the hybrid: vLLM grows the MLA block until its page holds a state ---------------

@pytest.mark.parametrize("engine, kv, block", [
    # 0.19 HybridAttentionMambaModelConfig, use_mla: blocks of 64: 64 x cdiv(2,170,880, 64 x 1,152) = 64 x 30
    ("vllm==0.19", "auto", 1_920),
    # fp8: 576 B a token: 64 x cdiv(2,170,880, 36,864) = 64 x 59 = 3,776 (the state stays bf16 + fp32)
    ("vllm==0.19", "fp8", 3_776),
    # 0.34 platforms/interface.py _align_hybrid_block_size, use_mla: 128 x cdiv(2,170,880, 147,456) = 128 x 15
    ("vllm==0.34", "auto", 1_920),
    # fp8: 128 x cdiv(2,170,880, 73,728) = 128 x 30 = 3,840, where 0.19's 64s give 3,776
    ("vllm==0.34", "fp8", 3_840),
])
def test_the_attention_block_grows_in_the_mla_kernels_steps(catalog, engine, kv, block):
    model = catalog.model("kimi-linear-48b-a3b")
    assert memory_budget(model, catalog.gpu("h100"), BudgetInputs(engine=engine, kv_dtype=kv)).block_size == block


def test_the_hybrid_page_and_its_padding(catalog):
    model = catalog.model("kimi-linear-48b-a3b")
    # 1,920 x 1,152 B = 2,211,840 B a page; the state's page is padded by 40,960 B (1.89%)
    assert hybrid_page(model, BF16) == (1_920, 2_211_840)
    assert 2_211_840 - KDA_STATE == 40_960
    # with a Gated DeltaNet model's 16-token steps (no MLA) it would be 16 x cdiv(2,170,880, 18,432) = 1,888
    assert hybrid_page(model, BF16, mla_alignment=16) == (1_888, 1_888 * 1_152)
    # TP 4: the latent is whole, the state a quarter: 64 x cdiv(542,720, 73,728) = 64 x 8 = 512
    assert hybrid_page(model, BF16, tp=4) == (512, 512 * 1_152)


def test_one_request_of_max_model_len_at_start_up(catalog):
    """vLLM V1's max_memory_usage_bytes: an MLA layer cdiv(1,048,576, 1,920) = 547 pages of 2,211,840 B,
    a KDA layer one state page, padded as vLLM's MambaSpec pads it to the attention page (2,170,880 B
    of state + 40,960 B)."""
    model = catalog.model("kimi-linear-48b-a3b")
    budget = memory_budget(model, catalog.gpu("h100"), BudgetInputs(engine="vllm==0.19", max_model_len=1_048_576))
    # 7 x 547 x 2,211,840 = 8,469,135,360; + 20 x 2,211,840 = 44,236,800
    assert start_bytes(model, budget, 1_048_576) == 7 * 547 * 2_211_840 + 20 * 2_211_840 == 8_513_372_160


# --- parameters -----------------------------------------------------------------------------------------

def test_parameters_are_the_checkpoints_less_the_router_biases(catalog):
    """Per the checkpoint's tensors: a KDA layer q, k, v, o 4 x 2,304 x 4,096; f_a, g_a 2 x 128 x 2,304;
    f_b, g_b 2 x 4,096 x 128; b_proj 32 x 2,304; convs 3 x 4,096 x 4; A_log 32, dt_bias 4,096, o_norm 128."""
    kda = 4 * 2_304 * 4_096 + 2 * 128 * 2_304 + 2 * 4_096 * 128 + 32 * 2_304 + 3 * 4_096 * 4 + 32 + 4_096 + 128
    assert kda == 39_514_272
    # MLA: q 2,304 x 32 x 192, kv_a 2,304 x 576 + norm 512, kv_b 512 x 32 x 256, o 4,096 x 2,304
    mla = 2_304 * 32 * 192 + 2_304 * 576 + 512 + 512 * 32 * 256 + 4_096 * 2_304
    expert = 3 * 2_304 * 1_024
    moe = (256 + 1) * expert + 2_304 * 256  # routed + shared experts + router (its 256 biases not counted)
    total = 2 * 163_840 * 2_304 + 20 * kda + 7 * mla + 3 * 2_304 * 9_216 + 26 * moe + (2 * 27 + 1) * 2_304
    assert import_model(FIXTURES / "kimi-linear-48b-a3b").spec.params_total == total == 49_122_675_072
    # the 20 safetensors shards hold 49,122,681,728: 26 layers x 256 e_score_correction_bias more
    assert catalog.model("kimi-linear-48b-a3b").params_total == total + 26 * 256 == 49_122_681_728
    # active: less 26 layers x (256 - 8) routed experts a token does not use
    assert catalog.model("kimi-linear-48b-a3b").params_active == 49_122_681_728 - 26 * 248 * expert == 3_484_459_904


# --- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kda_layers", [[0, 1], [1, 28], [1, 1]])
def test_kda_layers_must_be_distinct_one_based_layer_numbers(kda_layers):
    raw = raw_config()
    raw["linear_attn_config"]["kda_layers"] = kda_layers
    with pytest.raises(SpecError, match="kda_layers must list distinct 1-based layer numbers up to "
                                        "num_hidden_layers 27"):
        spec_from_config(raw, "cfg.json", source="t", name=None, display=None)


def test_a_config_without_linear_attn_config_is_refused():
    raw = raw_config()
    del raw["linear_attn_config"]
    with pytest.raises(SpecError, match="a kimi_linear config needs linear_attn_config with kda_layers"):
        spec_from_config(raw, "cfg.json", source="t", name=None, display=None)


# --- the probe: allocated bytes equal the prediction -----------------------------------------------------

def test_the_probe_gives_each_request_its_mla_pages_and_its_kda_states(catalog):
    """On CPU torch with the probe's 16-token pages: a 1,024-token request takes 7 MLA layers x 64 pages x
    18,432 B = 8,257,536 B and 20 KDA states of 2,170,880 B = 43,417,600 B: 51,675,136 B."""
    pytest.importorskip("torch")
    from kvplan.probe.runner import ProbeOptions, run_probe

    model = catalog.model("kimi-linear-48b-a3b")
    per_request = paged_request_bytes(model, 1_024, resolve_kv_format(model, "auto"), 1, 16)
    assert per_request == 7 * 64 * 18_432 + 20 * 2_170_880 == 51_675_136
    r = run_probe(model, ProbeOptions(device="cpu", ctx=1024, batch=8, util=1.0, max_gib=256 * MIB / 2**30,
                                      impl="torch"), catalog.gpus.specs)
    # 256 MiB = 268,435,456 B // 51,675,136 B = 5 requests (of the 8 asked): their pages and states, nothing more
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 5 * per_request == 258_375_680 and r.pool.exact
    assert r.pool.layers_allocated == 7 + 20 and r.page_table.batch == 5 and r.ok
