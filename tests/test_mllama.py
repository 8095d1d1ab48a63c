"""Llama-3.2 Vision (mllama): cross-attention layers cache K/V of an image's vision tokens, a fixed count
whatever the context, as vLLM 0.10.2 lays them out (vllm/model_executor/models/mllama.py:
MllamaTextCrossAttention, an ENCODER_DECODER Attention of num_key_value_heads x hidden_size //
num_attention_heads; MllamaMultiModalProcessor.apply: the encoder prompt is tiles x
calc_token_per_chunk(image_size) = tiles x ((image_size // 14)**2 + 1) tokens). Every number is
derived by hand next to its assert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kv import paged_request_bytes, request_bytes, resolve_kv_format
from kvplan.calc.startup import start_bytes
from kvplan.errors import SpecError
from kvplan.specs.archs.mllama import tower_params
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.kinds.mllama import CrossAttention, vision_tokens_per_image
from kvplan.units import kv_format

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
BF16, FP8 = kv_format("bf16"), kv_format("fp8")


def config(name: str) -> dict:
    return json.loads((FIXTURES / name / "config.json").read_text())


# --- the vision tokens a request with an image holds ---------------------------------------------------

def test_vision_tokens_are_tiles_times_patches_and_a_class_token():
    # 560 / 14 = 40 patches a side; 40 x 40 + 1 class token = 1,601 a tile (vLLM calc_token_per_chunk);
    # 4 tiles (max_num_tiles): 6,404
    assert vision_tokens_per_image(560, 14, 4) == 4 * (40 * 40 + 1) == 6_404
    assert vision_tokens_per_image(448, 14, 1) == 32 * 32 + 1 == 1_025  # one tile of a 448 px tower
    with pytest.raises(SpecError, match="image_size 561 is not a multiple of patch_size 14"):
        vision_tokens_per_image(561, 14, 4)


def test_the_real_configs_import_as_self_and_cross_attention_layers():
    # 90B: 100 layers, 20 of them listed in cross_attention_layers; 8 KV heads of 8,192 / 64 = 128
    big = import_model(FIXTURES / "llama3.2-90b-vision").spec
    assert [(g.kind, g.count) for g in big.layers] == [("full", 80), ("cross", 20)]
    cross = big.layers[1]
    assert isinstance(cross, CrossAttention)
    assert (cross.num_kv_heads, cross.head_dim, cross.vision_tokens) == (8, 128, 6_404)
    # 11B: 40 layers, 8 cross; 4,096 / 32 = 128
    small = import_model(FIXTURES / "llama3.2-11b-vision").spec
    assert [(g.kind, g.count) for g in small.layers] == [("full", 32), ("cross", 8)]
    assert small.num_layers == 40 and small.layers[1].head_dim == 128


# --- bytes per token, per cached vision token, per request ---------------------------------------------

def test_a_cross_layer_costs_what_a_full_layer_costs_per_token_but_holds_the_vision_tokens(catalog):
    cross = catalog.model("llama3.2-90b-vision").layers[1]
    # 2 (K,V) x 8 heads x 128 x 2 B = 4,096 B a vision token; fp8 halves it; TP 8: one head a rank
    assert cross.kv_bytes_per_token(BF16) == 2 * 8 * 128 * 2 == 4_096
    assert cross.kv_bytes_per_token(FP8) == 2_048 and cross.kv_bytes_per_token(BF16, tp=8) == 512
    for ctx in (1, 8_192, 131_072):  # the vision tokens, whatever the context
        assert cross.cached_tokens(ctx) == 6_404
    # every text token attends to every vision token: 100 x 6,404 pairs for a 100-token prompt
    assert cross.attended_pairs(100) == 640_400


def test_a_request_holds_its_text_in_the_self_layers_and_its_image_in_the_cross_layers(catalog):
    model = catalog.model("llama3.2-90b-vision")
    # 80 self layers x 8,192 tokens x 4,096 B = 2,684,354,560; 20 cross x 6,404 x 4,096 B = 524,615,680
    assert request_bytes(model, 8_192, BF16) == 2_684_354_560 + 524_615_680 == 3_208_970_240
    # cross-check: 4,096 B x (80 x 8,192 + 20 x 6,404) token-layers = 4,096 x 783,440
    assert request_bytes(model, 8_192, BF16) == 4_096 * (80 * 8_192 + 20 * 6_404)


def test_pages_of_sixteen_tokens_round_the_vision_tokens_up(catalog):
    model = catalog.model("llama3.2-11b-vision")
    cross = model.layers[1]
    # one page: 16 x 4,096 B = 65,536 B, as a self layer's; 6,404 / 16 = 400.25 -> 401 pages
    assert cross.page_size_bytes(block_size=16, kv_format=BF16, state_dtype_bytes=2) == 65_536
    assert cross.max_memory_pages(max_model_len=131_072, max_num_batched_tokens=8_192, block_size=16) == 401
    # 4,096-token request: 32 x 256 pages + 8 x 401 pages, x 65,536 B = 747,110,400 B
    assert paged_request_bytes(model, 4_096, BF16) == (32 * 256 + 8 * 401) * 65_536 == 747_110_400


def test_one_request_of_max_model_len_at_start_up(catalog):
    """vLLM V1's max_memory_usage_bytes summed over layers (kvplan's start rule for the current preset):
    a self layer cdiv(131,072, 16) = 8,192 pages, a cross layer cdiv(6,404, 16) = 401, of 65,536 B."""
    model = catalog.model("llama3.2-90b-vision")
    budget = memory_budget(model, catalog.gpu("h100"), BudgetInputs(tp=8))
    assert budget.block_size == 16
    # at TP 8 one KV head a rank: a page is 16 x 2 x 1 x 128 x 2 B = 8,192 B
    # 80 x 8,192 pages x 8,192 B + 20 x 401 x 8,192 B = 5,368,709,120 + 65,699,840
    assert start_bytes(model, budget, 131_072) == 80 * 8_192 * 8_192 + 20 * 401 * 8_192 == 5_434_408_960


# --- parameters: the vision tower counted tensor by tensor ---------------------------------------------

def text_params(h: int, inter: int, heads: int, kv: int, layers: int, cross: int, vocab: int) -> int:
    """transformers' MllamaForCausalLM: embed_tokens has vocab + 8 rows; a cross layer adds q/k norms
    of head_dim and two scalar gates to a Llama layer; no biases."""
    hd = h // heads
    attention = 2 * h * heads * hd + 2 * h * kv * hd
    layer = attention + 3 * h * inter + 2 * h
    return (vocab + 8) * h + vocab * h + layers * layer + cross * (2 * hd + 2) + h


def test_the_vision_tower_and_text_model_give_the_published_11b_count():
    tower = tower_params(config("llama3.2-11b-vision")["vision_config"], 4_096)
    # conv 3 x 14 x 14 x 1,280 = 752,640; class 1,280; positions 1,601 x 1,280 + 1 + 9 x 4 x 1,601 x 1,280;
    # tile embeddings 2 x (9 x 4 x 1,280 + 1); pre/post LayerNorms 4 x 1,280; 32 local layers of
    # 6,553,600 (q,k,v,o) + 13,107,200 (fc1, fc2) + 5,120 + 1,280 (biases) + 5,120 (2 LayerNorms) = 19,672,320,
    # and 8 gated ones (+2);
    # projector 7,680 x 4,096 + 4,096
    layer = 4 * 1_280**2 + 2 * 1_280 * 5_120 + 5_120 + 1_280 + 4 * 1_280
    assert layer == 19_672_320
    expected = (752_640 + 1_280 + 1_601 * 1_280 + 1 + 9 * 4 * 1_601 * 1_280 + 2 * (9 * 4 * 1_280 + 1) + 4 * 1_280
                + 32 * layer + 8 * (layer + 2) + 7_680 * 4_096 + 4_096)
    assert tower == expected == 895_028_755
    # with the text model, the 10,670,220,835 the 11B checkpoint's safetensors hold
    assert text_params(4_096, 14_336, 32, 8, 40, 8, 128_256) + tower == 10_670_220_835
    assert text_params(8_192, 28_672, 64, 8, 100, 20, 128_256) == 87_666_865_192  # 90B text model


def test_the_import_estimate_adds_the_exact_tower(catalog):
    spec = import_model(FIXTURES / "llama3.2-11b-vision").spec
    # the shared estimate of the text model leaves out the 8 extra embedding rows (8 x 4,096) and the
    # cross layers' norms and gates (8 x (2 x 128 + 2)): 9,775,192,080 - 32,768 - 2,064 = 9,775,157,248
    assert spec.tower_params == 895_028_755
    assert spec.params_total == 9_775_157_248 + 895_028_755
    assert catalog.model("llama3.2-11b-vision").params_total == 10_670_220_835


# --- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [[3, 8, 40], [3, 3], [], "3,8"])
def test_cross_attention_layers_must_be_distinct_indices_below_the_layer_count(layers):
    raw = config("llama3.2-11b-vision")
    raw["text_config"]["cross_attention_layers"] = layers
    with pytest.raises(SpecError, match="cross_attention_layers must list distinct layer indices below "
                                        "num_hidden_layers 40"):
        spec_from_config(raw, "cfg.json", source="t", name=None, display=None)


def test_a_config_without_a_vision_config_is_refused():
    raw = config("llama3.2-11b-vision")
    del raw["vision_config"]
    with pytest.raises(SpecError, match="an mllama config needs a vision_config"):
        spec_from_config(raw, "cfg.json", source="t", name=None, display=None)


# --- the probe: allocated bytes equal the prediction ---------------------------------------------------

def test_the_probe_shares_its_pool_between_self_and_cross_layers(catalog):
    """Llama-3.2-11B-Vision on CPU torch: 32 self and 8 cross layers, pages of one size (65,536 B), laid
    out as vLLM V1 lays a hybrid out (gcd(32, 8) = 8 shared tensors); a 4,096-token request with one
    image takes 32/8 x 256 + 8/8 x 401 = 1,425 pages of each tensor."""
    pytest.importorskip("torch")
    from kvplan.probe.runner import ProbeOptions, run_probe

    model = catalog.model("llama3.2-11b-vision")
    r = run_probe(model, ProbeOptions(device="cpu", ctx=4096, batch=4, util=0.9, max_gib=2, impl="torch"),
                  catalog.gpus.specs)
    # 2 GiB x 0.9 = 1,932,735,283 B // (40 layers x 65,536 B) = 737 blocks; 737 x 40 / 8 = 3,685 pages a tensor
    assert (r.pool.predicted_blocks, r.pool.layers_allocated, r.pool.allocated_blocks) == (737, 8, 3_685)
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 737 * 40 * 65_536 == 1_932_001_280
    # 3,685 // 1,425 = 2 requests, as the pool // one request's paged bytes (747,110,400 B)
    per_request = paged_request_bytes(model, 4_096, resolve_kv_format(model, "auto"))
    assert r.page_table.batch == r.pool.allocated_bytes // per_request == 3_685 // 1_425 == 2
    assert r.page_table.pages_used == 2 * 1_425 and not r.page_table.problems and r.ok
