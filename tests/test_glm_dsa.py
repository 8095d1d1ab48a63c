"""GLM-5.x (glm_moe_dsa) as vLLM 0.34 caches it: an MLA latent on every layer (kv_lora_rank 512 + rope
64), and DeepSeek-V3.2's indexer key (index_head_dim 128: 128 B fp8 + one fp32 scale = 132 B,
DeepseekV32IndexerCache) only on the layers that build an indexer. GLM-5.2's indexer_types marks 57 of
its 78 layers "shared": they reuse the top-k of the closest preceding indexer layer and build no
indexer (vllm/model_executor/models/utils.py compute_skip_topk_layers; models/deepseek_v32/attention.py
DeepseekV32Attention: `indexer = None` where skip_topk), but they stay sparse attention, so in fp8
their latent is fp8_ds_mla too (512 x 1 B + 4 scales x 4 B + 64 x 2 B = 656 B;
model_executor/layers/attention/mla_attention.py _canonicalize_sparse_mla_kv_cache_dtype). Every
number is derived by hand from tests/fixtures/hf_configs/glm-5.2 (and glm-5, glm-5.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.calc.kv import layers_kv
from kvplan.calc.kvgroups import kv_groups
from kvplan.errors import SpecError
from kvplan.specs.archs.glm_dsa import shared_indexer_layers
from kvplan.specs.hfconfig import Config
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.layers import MLALatent
from kvplan.units import kv_format

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
BF16, FP8 = kv_format("bf16"), kv_format("fp8")
GLM52 = json.loads((FIXTURES / "glm-5.2" / "config.json").read_text())
SHAPE = {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "num_heads": 64, "qk_nope_head_dim": 192, "v_head_dim": 256,
         "q_lora_rank": 2048}
# indexer_types: "full" at layers 0, 1, 2, then every 4th from 6 to 74
OWN_INDEXER = {0, 1, 2, *range(6, 78, 4)}


def per_token(model, fmt) -> int:
    return sum(layer.bytes_per_token for layer in layers_kv(model, 1, fmt))


def test_glm_5_2_shares_its_indexer_on_57_of_78_layers():
    shared = shared_indexer_layers(Config(GLM52, "glm-5.2"), 78)
    assert len(OWN_INDEXER) == 3 + 18 == 21  # 6, 10, ..., 74: (74 - 6) / 4 + 1 = 18
    assert shared == set(range(78)) - OWN_INDEXER and len(shared) == 78 - 21 == 57


def test_the_frequency_rule_gives_the_same_layers_without_indexer_types():
    """vLLM's second rule (and deepseek_v2.py `_skip_topk`): layer i shares where
    max(i - offset + 1, 0) % freq != 0; GLM-5.2's offset 3, freq 4: 0, 1, 2 and 6, 10, ... keep theirs."""
    cfg = {k: v for k, v in GLM52.items() if k != "indexer_types"}
    assert (cfg["index_skip_topk_offset"], cfg["index_topk_freq"]) == (3, 4)
    assert shared_indexer_layers(Config(cfg, "no types"), 78) == set(range(78)) - OWN_INDEXER
    pattern = {**cfg, "index_topk_pattern": "FFS" + "F" * 75}  # a pattern wins over the frequency
    assert shared_indexer_layers(Config(pattern, "pattern"), 78) == {2}


def test_glm_5_2_imports_as_two_mla_groups(catalog):
    groups = [{"kind": g.kind, **g.model_dump(exclude_defaults=True)} for g in import_model(FIXTURES / "glm-5.2").spec.layers]
    assert groups == [{"kind": "mla", "count": 21, **SHAPE, "index_head_dim": 128, "index_n_heads": 32},
                      {"kind": "mla", "count": 57, **SHAPE, "shared_indexer": True}]
    assert catalog.model("glm-5.2").layers == catalog.model("glm-5.3-fp8").layers  # the same config


@pytest.mark.parametrize("name", ["glm-5", "glm-5.1"])
def test_glm_5_and_5_1_keep_an_indexer_on_every_layer(catalog, name):
    """Neither config names index_topk_freq, index_topk_pattern or indexer_types: freq 1, none shared."""
    (group,) = catalog.model(name).layers
    assert (group.count, group.index_head_dim, group.shared_indexer) == (78, 128, False)


def test_bytes_per_token_with_and_without_the_shared_indexers(catalog):
    model, every_layer = catalog.model("glm-5.2"), catalog.model("glm-5.1")
    # bf16: latent (512 + 64) x 2 B = 1,152 B a layer; + 128 + 4 = 132 B where the layer has an indexer
    assert per_token(model, BF16) == 21 * (1_152 + 132) + 57 * 1_152 == 92_628
    assert per_token(model, BF16) == 78 * 1_152 + 21 * 132  # the same, counted by term
    assert per_token(every_layer, BF16) == 78 * (1_152 + 132) == 100_152 == 92_628 + 57 * 132
    # fp8: every layer is sparse, so 512 x 1 + 4 x 4 + 64 x 2 = 656 B (fp8_ds_mla); + 132 B with an indexer
    assert per_token(model, FP8) == 21 * (656 + 132) + 57 * 656 == 53_940 == 78 * 656 + 21 * 132
    assert per_token(every_layer, FP8) == 78 * 788 == 61_464 == 53_940 + 57 * 132


def test_a_shared_indexer_layer_keeps_the_sparse_fp8_layout():
    shared = MLALatent(count=1, shared_indexer=True, **SHAPE)
    dense = MLALatent(count=1, **SHAPE)  # a dense MLA model (DeepSeek-V3, Kimi-K2): fp8 latent + rope
    assert shared.kv_bytes_per_token(FP8) == 512 + 4 * 4 + 64 * 2 == 656
    assert dense.kv_bytes_per_token(FP8) == 512 + 64 == 576
    assert shared.kv_bytes_per_token(BF16) == dense.kv_bytes_per_token(BF16) == (512 + 64) * 2 == 1_152
    assert shared.fixed_bytes_per_token() == 0


def test_an_mla_group_cannot_have_and_share_an_indexer():
    with pytest.raises(ValueError, match="not both"):
        MLALatent(count=1, index_head_dim=128, shared_indexer=True, **SHAPE)


@pytest.mark.parametrize("types", [["full"] * 77, ["full"] * 77 + ["half"], "full"])
def test_bad_indexer_types_are_one_error(types):
    with pytest.raises(SpecError, match="indexer_types must list 78 entries"):
        spec_from_config({**GLM52, "indexer_types": types}, "cfg.json", source="x", name="x", display=None)


def test_the_two_pages_are_not_unified_into_groups():
    """21 pages of 16 x 1,284 B and 57 of 16 x 1,152 B: 20,544 is not a multiple of 18,432, so kvplan
    lays no vLLM groups out (kv_groups None) and sums the layers' pages instead."""
    model = import_model(FIXTURES / "glm-5.2").spec
    assert 16 * 1_284 == 20_544 and 20_544 % (16 * 1_152) != 0
    assert kv_groups(model, BF16) is None
