"""The MLP width a token passes through: MoE counts the routed top-k and the shared experts, as the
published active parameters require (ModelSpec.active_intermediate_size)."""

from __future__ import annotations

from conftest import make_model


def test_a_dense_model_passes_through_its_intermediate_size():
    assert make_model().active_intermediate_size == 14_336


def test_deepseek_v3_counts_the_shared_expert(catalog):
    v3 = catalog.model("deepseek-v3")
    assert v3.active_intermediate_size == (8 + 1) * 2_048 == 18_432
    # the evidence: this spec's params_active is 37,552,297,472 (the paper's "37B activated"), with
    # 9 experts of 3 x 7,168 x 2,048 = 44,040,192 parameters in each of 58 MoE layers; without the
    # shared expert 58 x 44,040,192 = 2,554,331,136 fewer: 34,997,966,336, about 35.0B
    expert = 3 * 7_168 * 2_048
    assert v3.params_active == 37_552_297_472
    assert v3.params_active - 58 * expert == 34_997_966_336


def test_llama4_scout_counts_its_shared_expert(catalog):
    scout = catalog.model("llama4-scout")
    assert scout.active_intermediate_size == (1 + 1) * 8_192
    # 17,172,894,720 active (Meta's "17B active"); without the shared expert 48 x 3 x 5,120 x 8,192 fewer
    assert scout.params_active == 17_172_894_720
    assert scout.params_active - 48 * 3 * 5_120 * 8_192 == 11_133_096_960


def test_without_an_expert_width_the_intermediate_size_is_the_expert(catalog):
    model = make_model(moe={"num_experts": 8, "experts_per_token": 2}, params_active=2_000_000_000)
    assert model.active_intermediate_size == 2 * 14_336
