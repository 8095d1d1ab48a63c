"""Nemotron-NAS (model_type nemotron-nas, DeciLM block_configs), numbers derived by hand from
tests/fixtures/hf_configs/llama-3.3-nemotron-super-49b/config.json (80 layers; hidden 8,192; 64
query heads of 128; 49 attention blocks with n_heads_in_group 8, 31 with no_op attention; every
ffn kept, ffn_mult 0.5 to 5.25; bf16), following vLLM model_executor/models/nemotron_nas.py
(DeciLMDecoderLayer, _ffn_mult_to_intermediate_size) and, for layers of different KV heads,
v1/kv_cache_interface.py UniformTypeKVCacheSpecs (0.19, 0.34)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kvgroups import kv_groups
from kvplan.calc.startup import start_bytes
from kvplan.errors import SpecError
from kvplan.specs.archs.nemotron_nas import mlp_widths
from kvplan.specs.hfconfig import Config
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.units import GIB, MIB, kv_format

FIXTURE = Path(__file__).parent / "fixtures" / "hf_configs" / "llama-3.3-nemotron-super-49b"
BF16 = kv_format("bf16")


def config() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


def spec(cfg: dict):
    return spec_from_config(cfg, "x", source="x", name="x", display="x").spec


@pytest.fixture(scope="module")
def model():
    return import_model(FIXTURE).spec


def test_layers_by_kv_heads_and_the_attention_free_ones(model):
    full, mlp = model.layers
    # num_attention_heads 64 // n_heads_in_group 8 = 8 KV heads; head_dim 8,192 / 64 = 128
    assert (full.kind, full.count, full.num_kv_heads, full.head_dim) == ("full", 49, 8, 128)
    assert (mlp.kind, mlp.count) == ("mlp", 31)  # no_op attention: no Attention, no cache
    assert model.num_layers == 80


def test_kv_bytes_per_token(model):
    full = model.layers[0]
    assert full.kv_bytes_per_token(BF16) == 2 * 8 * 128 * 2 == 4_096  # K,V x 8 heads x 128 x 2 B
    assert 49 * 4_096 == 200_704  # a token in every attention layer; the 31 others keep nothing
    assert model.layers[1].kv_bytes_per_token(BF16) == 0 and model.layers[1].state_bytes(1, 2) == 0


def test_mlp_widths_as_the_model_file_computes_them():
    """_ffn_mult_to_intermediate_size: int(2 x ffn_mult x 8,192 / 3), up to a multiple of 256."""
    widths = Counter(mlp_widths(Config(config(), "x")))
    assert widths == {28_672: 49,  # 5.25: 86,016 / 3 = 28,672, a multiple of 256
                      14_336: 6,  # 2.625: 43,008 / 3 = 14,336
                      7_168: 10,  # 1.3125: 21,504 / 3 = 7,168
                      5_632: 8,  # 1.0: int(5,461.33) = 5,461 -> 5,632 (22 x 256)
                      2_816: 6,  # 0.5: int(2,730.67) = 2,730 -> 2,816 (11 x 256)
                      17_920: 1}  # 3.28125: 53,760 / 3 = 17,920 (70 x 256)


def test_intermediate_size_is_the_widest_mlp(model):
    assert model.intermediate_size == 28_672


def test_page_and_one_group_of_the_49_attention_layers(model):
    layout = kv_groups(model, BF16)
    # 16 tokens x 4,096 B = 65,536 B a page; the mlp layers register nothing, so one group of 49
    assert (layout.group_size, layout.groups, layout.padding_layers, layout.page_bytes_per_layer) == (49, 1, 0, 65_536)


def test_layers_of_different_kv_heads_make_one_group_whose_page_is_their_sum():
    """Ten of the attention blocks given n_heads_in_group 16 (64 // 16 = 4 KV heads, 2,048 B a token):
    two full groups here; vLLM 0.19/0.34 put every full layer in one group (UniformTypeKVCacheSpecs),
    its page 39 x 65,536 + 10 x 32,768 = 2,883,584 B (16 tokens each)."""
    cfg = config()
    attention = [b for b in cfg["block_configs"] if not b["attention"]["no_op"]]
    for block in attention[:10]:
        block["attention"]["n_heads_in_group"] = 16
    m = spec(cfg)
    four, eight = m.layers[0], m.layers[1]  # in the order they first appear
    assert (four.count, four.num_kv_heads, eight.count, eight.num_kv_heads) == (10, 4, 39, 8)
    layout = kv_groups(m, BF16)
    assert (layout.group_size, layout.groups, layout.page_bytes_per_layer) == (1, 1, 39 * 65_536 + 10 * 32_768)
    b = budget(m, "vllm==0.34.0")
    assert b.num_blocks == 1_073_741_824 // 2_883_584 == 372
    # 0.34: 372 blocks / cdiv(131,072, 16) blocks a request, x 131,072 tokens
    assert b.token_capacity == int(372 / 8_192 * 131_072) == 5_952


def budget(model, engine: str):
    """A 1 GiB pool: gpu_mem_bytes 1 GiB + 3 B at util 1.0, less 1 B each of weights, activation, overhead."""
    return memory_budget(model, None, BudgetInputs(engine=engine, util=1.0, gpu_mem_bytes=GIB + 3, weights_bytes=1,
                                                   activation_bytes=1, overhead_bytes=1))


def test_token_capacity_and_a_requests_max_memory_at_start_up(model):
    b = budget(model, "vllm==0.19.0")
    assert b.page_bytes == 49 * 65_536 == 3_211_264
    assert b.num_blocks == 1_073_741_824 // 3_211_264 == 334
    assert b.token_capacity == 334 * 16 == 5_344
    assert budget(model, "vllm==0.34.0").token_capacity == int(334 / 8_192 * 131_072) == 5_344
    # check_enough_kv_cache_memory: 49 layers x cdiv(131,072, 16) = 8,192 pages x 65,536 B
    assert start_bytes(model, b, 131_072) == 49 * 8_192 * 65_536 == 26_306_674_688


def test_parameters_from_block_configs(model):
    """Attention blocks: q/o 2 x 8,192 x 8,192 + k/v 2 x 8,192 x 1,024 + a norm 8,192 = 151,003,136, x 49;
    MLPs 3 x 8,192 x width + a norm, over the widths above; embeddings and lm_head 2 x 128,256 x 8,192
    and the final norm. The model card: 49B; Hugging Face lists 49.9B."""
    attention = 49 * (2 * 8192 * 8192 + 2 * 8192 * 1024 + 8192)
    widths = {28_672: 49, 14_336: 6, 7_168: 10, 5_632: 8, 2_816: 6, 17_920: 1}
    mlp = sum(n * 3 * 8192 * w for w, n in widths.items()) + 80 * 8192
    assert attention == 49 * 151_003_136 == 7_399_153_664
    assert model.params_total == attention + mlp + 2 * 128_256 * 8192 + 8192 == 49_867_145_216
    assert abs(model.params_total - 49.9e9) / 49.9e9 < 0.01


def test_a_block_without_a_usable_head_grouping_is_refused():
    cfg = config()
    cfg["block_configs"][0]["attention"]["n_heads_in_group"] = 7
    with pytest.raises(SpecError, match=r"block_configs\[0\].attention.n_heads_in_group 7 must divide "
                                        "num_attention_heads 64"):
        spec(cfg)
    cfg = config()
    cfg["block_configs"] = cfg["block_configs"][:79]
    with pytest.raises(SpecError, match="block_configs must list 80 blocks"):
        spec(cfg)


def test_the_probe_allocates_the_layout_the_calculator_predicts(catalog):
    """A 256 MiB pool / (49 layers x 65,536 B) = 83 blocks in each of the 49 attention layers (the 31
    others get no tensor); a 1,024-token request takes 64 of them, so one request fits."""
    pytest.importorskip("torch")
    from kvplan.probe.runner import ProbeOptions, run_probe

    opts = ProbeOptions(device="cpu", ctx=1024, batch=4, util=1.0, max_gib=256 * MIB / 2**30, impl="torch")
    r = run_probe(catalog.model("llama-3.3-nemotron-super-49b"), opts, catalog.gpus.specs)
    assert r.pool.predicted_blocks == r.pool.allocated_blocks == 268_435_456 // (49 * 65_536) == 83
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 83 * 49 * 65_536 == 266_534_912 and r.pool.exact
    assert r.pool.layers_allocated == 49 and r.page_table.batch == 83 // 64 == 1 and r.ok
