"""MLA's tensors that tensor parallelism does not split, as vLLM and SGLang load them (loading.py
mla_replicated, from their models/deepseek_v2.py), and the sparse-attention indexer's parameters
(params.py). Worked by hand from each model's config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.specs.catalog import load_catalog
from kvplan.specs.engines.base import Replica
from kvplan.specs.engines.loading import mla_replicated
from kvplan.specs.importer import import_model

CATALOG = load_catalog()
CONFIGS = Path(__file__).parent / "fixtures" / "hf_configs"


def test_glm_5_fp8_at_tp_8_by_hand():
    """GLM-5-FP8 (hidden 6,144, q_lora_rank 2,048, kv_lora_rank 512, rope 64, indexer 32 heads of 128,
    256 experts, 78 layers), fp8 weights and bf16 norms. A layer holds whole: the a-projections
    6,144 x (2,048 + 512 + 64) x 1 B = 16,121,856; their norms (2,048 + 512) x 2 = 5,120; the indexer's
    wq_b and wk (2,048 x 32 x 128 + 6,144 x 128) x 1 = 9,175,040, weights_proj and k_norm
    (6,144 x 32 + 2 x 128) x 2 = 393,728; the router 256 x (6,144 x 2 + 4) = 3,146,752: 28,842,496.
    x 78 = 2,249,714,688, + the decoder's norms (2 x 78 + 1) x 6,144 x 2 = 1,929,216; 7/8 of it beyond
    the 1/8 params_total counts."""
    whole = 28_842_496 * 78 + 1_929_216
    assert mla_replicated(CATALOG.model("glm-5"), Replica(CATALOG.gpu("h200"), tp=8)) == whole * 7 // 8 == 1_970_188_416


def test_nothing_is_replicated_on_one_gpu_and_other_layouts_are_not_mla():
    assert mla_replicated(CATALOG.model("deepseek-v3"), Replica(CATALOG.gpu("h200"), tp=1)) == 0
    assert mla_replicated(CATALOG.model("llama3-8b"), Replica(CATALOG.gpu("h200"), tp=8)) is None
    assert mla_replicated(CATALOG.model("kimi-k2.6-nvfp4"), Replica(CATALOG.gpu("b200"), tp=8)) is None  # NVFP4


def test_deepseek_v2_lite_has_no_query_down_projection():
    """V2-Lite's q_lora_rank is null: q_proj is split like any column-parallel weight; only the latent's
    kv_a_proj_with_mqa 2,048 x (512 + 64) x 2 B = 2,359,296 and its norm 512 x 2 = 1,024 stay whole,
    beside the router 64 x (2,048 x 2 + 4) = 262,400 (27 layers) and the decoder's norms 55 x 2,048 x 2."""
    whole = 27 * (2_359_296 + 1_024 + 262_400) + 55 * 2_048 * 2
    assert mla_replicated(CATALOG.model("deepseek-v2-lite"), Replica(CATALOG.gpu("h100-sxm"), tp=2)) == whole // 2


@given(st.integers(1, 64))
def test_the_replicated_share_is_the_whole_less_one_tps_share(tp):
    """DeepSeek-V3 holds 1,149,414,400 B whole on every rank (test_capacity.py works it); params_total / TP
    counts 1/TP of them, so the rest, (TP - 1) / TP of the whole, is what a rank adds, growing with TP."""
    model, gpu = CATALOG.model("deepseek-v3"), CATALOG.gpu("h200")
    share = mla_replicated(model, Replica(gpu, tp=tp))
    assert share == 1_149_414_400 * (tp - 1) // tp
    assert share <= (mla_replicated(model, Replica(gpu, tp=tp + 1)) or 0)


@pytest.mark.parametrize("engine", ["vllm==0.19", "sglang==0.5.5"])
def test_both_engines_count_them_with_the_weights(engine):
    model, gpu = CATALOG.model("deepseek-v3"), CATALOG.gpu("h200")
    one = memory_budget(model, gpu, BudgetInputs(engine=engine, tp=8))
    assert "tensors TP 8 does not split" in one.weights_source
    base = -(-671_026_419_200 // 8)  # 1 B a parameter
    assert one.weights_bytes - base >= 1_005_737_600  # test_capacity.py works it: 7/8 of 1,149,414,400


def test_the_indexer_counts_in_the_parameters():
    """The sparse-attention indexer's weights, once left out of the architecture count: wq_b q_lora_rank x
    heads x dim + wk hidden x dim + k_norm 2 x dim + weights_proj hidden x heads on each layer that has one.
    DeepSeek-V3.2 is V3.1's architecture plus an indexer on its 61 layers; GLM-5.2's 57 layers that share
    one lack it, where GLM-5 has one on all 78."""
    deepseek = 1536 * 64 * 128 + 7168 * 128 + 2 * 128 + 7168 * 64  # 13,959,424 a layer
    glm = 2048 * 32 * 128 + 6144 * 128 + 2 * 128 + 6144 * 32  # 9,371,904 a layer
    total = lambda name: CATALOG.model(name).params_total  # noqa: E731
    assert total("deepseek-v3.2") - total("deepseek-v3.1-nvfp4") == 61 * deepseek == 851_524_864
    assert total("glm-5") - total("glm-5.2") == 57 * glm == 534_198_528
    for name in ("deepseek-v3.2", "glm-5", "glm-5.2"):  # the database holds what import counts
        assert import_model(CONFIGS / name / "config.json").spec.params_total == total(name)


def test_sglang_counts_a_dsa_token_as_its_latent_and_stores_it_wider():
    """SGLang's profile_max_num_token counts an MLA token as (kv_lora_rank + qk_rope_head_dim) x 1 B in fp8
    plus the indexer's 128 + 128 / 128 x 4 = 132 B a layer: GLM-5's 78 layers x 708 = 55,224 B. Its DSA pool
    stores 656 + 132 B a layer (the fp8 latent's four fp32 scales, the RoPE key in bf16): 61,464 B. The
    tokens are the budget over the first; a 0.5.8 log allocates them at the second, past the fraction."""
    model, gpu = CATALOG.model("glm-5"), CATALOG.gpu("mi355x")
    b = memory_budget(model, gpu, BudgetInputs(engine="sglang==0.5.8", tp=8, kv_dtype="fp8"))
    assert b.kv_bytes_per_token == 78 * (656 + 132) == 61_464
    assert b.token_capacity == b.usable_pool_bytes // (78 * (576 + 132))
    dense = memory_budget(CATALOG.model("deepseek-v3"), CATALOG.gpu("h200"),
                          BudgetInputs(engine="sglang==0.5.8", tp=8, kv_dtype="fp8"))
    assert dense.token_capacity == dense.usable_pool_bytes // (61 * 576)  # no indexer, no scales: the same
    vllm = memory_budget(model, gpu, BudgetInputs(engine="vllm==0.19", tp=8, kv_dtype="fp8"))
    assert vllm.token_capacity == vllm.usable_pool_bytes // (vllm.block_size * 61_464) * vllm.block_size  # as laid out
