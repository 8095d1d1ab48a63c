"""Gemma-4 as vLLM lays out its cache, every number derived by hand from the configs
(tests/fixtures/hf_configs/gemma-4-26b-a4b, gemma-4-31b-it-nvfp4) and the engine source cited:
- vllm/model_executor/models/gemma4.py Gemma4DecoderLayer: full layers take global_head_dim and, with
  attention_k_eq_v, num_global_key_value_heads; K = V still caches K and V (Attention gets both);
- Gemma4Attention kv_sharing_target_layer_name and v1/worker/gpu_model_runner.py get_kv_cache_spec:
  a KV-shared layer gets no KV cache spec;
- v1/kv_cache_interface.py AttentionSpec.page_size_bytes = 2 x block x heads x head_size x dtype;
- v1/core/kv_cache_utils.py unify_kv_cache_spec_page_size, _get_kv_cache_groups_uniform_page_size,
  _max_memory_usage_bytes_from_groups and get_max_concurrency_for_kv_cache_config (0.19)."""

from __future__ import annotations

import json

import pytest

from engine_fixtures import SOURCES
from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.kvgroups import kv_groups, tokens_for_kv_bytes
from kvplan.calc.startup import max_memory_usage_bytes
from kvplan.errors import SpecError
from kvplan.probe.runner import ProbeOptions, run_probe
from kvplan.specs.importer import spec_from_config
from kvplan.units import GIB, MIB, kv_format

BLOCK = 16


def per_token(model) -> list[tuple[str, int, int]]:
    fmt = resolve_kv_format(model, "auto")
    return [(g.kind, g.count, g.kv_bytes_per_token(fmt)) for g in model.layers]


def page(group, block: int = BLOCK) -> int:
    return group.page_size_bytes(block_size=block, kv_format=kv_format("bf16"), state_dtype_bytes=2)


# --- bytes per token, per kind and per model ------------------------------------------------------------

def test_26b_a4b_sliding_and_full_layers_have_their_own_heads(catalog):
    model = catalog.model("gemma-4-26b-a4b")
    # sliding: 2 (K,V) x 8 KV heads x head_dim 256 x 2 B = 8,192 B; full (K = V): 2 x 2 global KV heads x
    # global_head_dim 512 x 2 B = 4,096 B: K = V is still cached as K and V
    assert per_token(model) == [("sliding", 25, 8_192), ("full", 5, 4_096)]
    # per model: 25 x 8,192 + 5 x 4,096 = 204,800 + 20,480 = 225,280 B a token
    assert sum(c * b for _, c, b in per_token(model)) == 225_280
    assert model.layers[0].window == 1_024


def test_31b_has_twice_the_heads_and_layers(catalog):
    model = catalog.model("gemma-4-31b-it-nvfp4")
    # sliding 2 x 16 x 256 x 2 B = 16,384 B; full 2 x 4 x 512 x 2 B = 8,192 B
    assert per_token(model) == [("sliding", 50, 16_384), ("full", 10, 8_192)]
    assert sum(c * b for _, c, b in per_token(model)) == 50 * 16_384 + 10 * 8_192 == 901_120


# --- pages and vLLM's KV cache groups -----------------------------------------------------------------------

def test_pages_of_two_sizes_are_unified_by_growing_the_full_layers_block(catalog):
    model = catalog.model("gemma-4-26b-a4b")
    sliding, full = model.layers
    assert page(sliding) == 16 * 8_192 == 131_072 and page(full) == 16 * 4_096 == 65_536
    layout = kv_groups(model, resolve_kv_format(model, "auto"))
    assert layout is not None
    # 131,072 / 65,536 = 2: full blocks of 32 tokens, whose page is 32 x 4,096 = 131,072 B; groups of
    # min(25, 5) = 5 layers (25 >= 1.25 x 5): ceil(25 / 5) = 5 sliding groups + 1 full, no padding
    assert layout.block_sizes == (16, 32) and page(full, 32) == layout.page_bytes_per_layer == 131_072
    assert (layout.group_size, layout.groups, layout.padding_layers) == (5, 6, 0)
    assert layout.pool_bytes_per_block == 5 * 6 * 131_072 == 3_932_160


def test_a_request_at_start_up_counts_each_kind_at_its_unified_block(catalog):
    model = catalog.model("gemma-4-26b-a4b")
    budget = memory_budget(model, None, BudgetInputs(engine="vllm==0.19.0", gpu_mem_bytes=128 * GIB,
                                                     max_num_batched_tokens=2_496))
    # sliding: min(1,024 - 1 + 2,496, 262,144) = 3,519 tokens -> ceil(3,519 / 16) + 1 = 221 pages of 131,072 B;
    # full: ceil(262,144 / 32) = 8,192 pages of 131,072 B
    sliding, full = 25 * 221 * 131_072, 5 * 8_192 * 131_072
    assert max_memory_usage_bytes(model, budget, 262_144) == sliding + full == 6_092_881_920
    # the same as _max_memory_usage_bytes_from_groups: group_size 5 x page x (8,192 + 5 groups x 221 pages)
    assert 5 * 131_072 * (8_192 + 5 * 221) == 6_092_881_920
    # where the block size shows: 8,200 tokens are ceil(8,200 / 32) = 257 full pages of 131,072 B (not
    # ceil(8,200 / 16) = 513 of 65,536 B); sliding min(3,519, 8,200) = 3,519 as above
    assert max_memory_usage_bytes(model, budget, 8_200) == 25 * 221 * 131_072 + 5 * 257 * 131_072 == 892_600_320


def test_the_logged_capacity_needs_the_logged_batched_tokens(catalog):
    """vLLM 0.25.1, Gemma-4-26B-A4B NVFP4 on a GB10: 84.68 GiB, 3,912,140 tokens at 262,144 (0.21 on:
    num_blocks / blocks a request needs x max_model_len). 84.675 GiB = 90,918,917,324 B // (5 x 131,072)
    = 138,731 blocks; a request needs 8,192 + 5 x 221 = 9,297 -> int(138,731 / 9,297 x 262,144) = 3,911,745;
    84.685 GiB -> 138,747 blocks -> 3,912,196: the log lies between."""
    model, fmt = catalog.model("gemma-4-26b-a4b"), resolve_kv_format(catalog.model("gemma-4-26b-a4b"), "auto")
    logged = SOURCES["vllm-0.25.1-gemma-4-26b-a4b-nvfp4-gb10-1.log"]["logged"]
    count = dict(max_model_len=262_144, per_concurrency=True)
    lo, hi = (tokens_for_kv_bytes(model, int((84.68 + d) * GIB), fmt, max_num_batched_tokens=2_496, **count)
              for d in (-0.005, 0.005))
    assert (lo, hi) == (3_911_745, 3_912_196) and lo <= logged["kv_tokens"] <= hi
    # with the default 8,192 a request would need 8,192 + 5 x (ceil(9,215 / 16) + 1) = 11,077 blocks: 3.28M
    assert tokens_for_kv_bytes(model, int(84.68 * GIB), fmt, **count) == int(138_739 / 11_077 * 262_144)


# --- KV sharing (num_kv_shared_layers) ------------------------------------------------------------------------

def e2b_like(**text) -> dict:
    """A config shaped as Gemma-4 E2B is described by other projects' tests (35 layers, every 5th full,
    the last 20 KV-shared, 1 KV head, head 256, global 512, window 512): hand-written here, not a
    published file (no verbatim E2B config.json was found)."""
    types = ["full_attention" if (i + 1) % 5 == 0 else "sliding_attention" for i in range(35)]
    cfg = {"model_type": "gemma4_text", "hidden_size": 1536, "intermediate_size": 6144, "num_hidden_layers": 35,
           "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256, "global_head_dim": 512,
           "sliding_window": 512, "layer_types": types, "num_kv_shared_layers": 20, "vocab_size": 262144,
           "max_position_embeddings": 131072, "hidden_size_per_layer_input": 256,
           "vocab_size_per_layer_input": 262144, "use_double_wide_mlp": True, "tie_word_embeddings": True}
    return {**cfg, **text}


def imported(cfg: dict):
    return spec_from_config(json.loads(json.dumps(cfg)), "e2b-like", source="test", name="e2b-like",
                            display="e2b-like").spec


def test_shared_layers_read_the_last_earlier_layer_of_their_type_and_cache_nothing():
    spec = imported(e2b_like())
    # layers 0-14 keep a cache: full at 4, 9, 14 (3), sliding the other 12; layers 15-34 read it:
    # full at 19, 24, 29, 34 (4) read layer 14, the 16 sliding ones read layer 13
    shapes = [(g.kind, g.count, g.num_kv_heads, g.head_dim, getattr(g, "target_layer", None)) for g in spec.layers]
    assert shapes == [("sliding", 12, 1, 256, None), ("full", 3, 1, 512, None),
                      ("shared_kv", 16, 1, 256, 13), ("shared_kv", 4, 1, 512, 14)]
    assert spec.num_layers == 35
    # 12 x (2 x 1 x 256 x 2 B = 1,024) + 3 x (2 x 1 x 512 x 2 B = 2,048) = 18,432 B a token; all 35 layers
    # caching would be 28 x 1,024 + 7 x 2,048 = 43,008 B
    assert sum(c * b for _, c, b in per_token(spec)) == 12 * 1_024 + 3 * 2_048 == 18_432


def test_shared_layers_take_no_place_in_vllms_groups():
    spec = imported(e2b_like())
    layout = kv_groups(spec, resolve_kv_format(spec, "auto"))
    assert layout is not None
    # pages at 16 tokens: sliding 16 x 1,024 = 16,384 B, full 16 x 2,048 = 32,768 B -> the sliding block
    # grows to 32; groups of min(12, 3) = 3: 4 sliding + 1 full, 5 groups, no padding, no shared layer
    assert layout.block_sizes == (32, 16) and layout.page_bytes_per_layer == 32_768
    assert (layout.group_size, layout.groups, layout.padding_layers) == (3, 5, 0)


def test_shared_layers_have_queries_only():
    """Parameters: a shared layer has q_proj and o_proj but no k/v projection or k_norm (gemma4.py
    _gemma4_layer_weights_mapper drops them); sharing 20 layers removes 20 x (2 x 1,536 x 1 x dim + dim)."""
    shared, unshared = imported(e2b_like()), imported(e2b_like(num_kv_shared_layers=0, use_double_wide_mlp=False))
    kv = 16 * (2 * 1_536 * 256 + 256) + 4 * (2 * 1_536 * 512 + 512)
    wide = 20 * 3 * 1_536 * 6_144  # the shared layers' MLP twice as wide (use_double_wide_mlp)
    assert unshared.params_total - shared.params_total == kv - wide


@pytest.mark.parametrize("change, message", [
    ({"num_kv_shared_layers": 35}, "num_kv_shared_layers 35 leaves no layer"),
    ({"layer_types": ["sliding_attention"] * 34}, "needs layer_types: 35 entries"),
    ({"layer_types": ["sliding_attention"] * 15 + ["full_attention"] * 20}, "has no earlier full_attention"),
])
def test_a_config_that_cannot_be_laid_out_is_one_line(change, message):
    with pytest.raises(SpecError, match=message):
        imported(e2b_like(**change))


# --- the probe allocates the new layout -------------------------------------------------------------------------

def test_the_probe_allocates_sliding_and_full_pages_as_the_calculator_counts(catalog):
    """On CPU, with the probe's textbook budget (one tensor a layer, no vLLM groups): 16-token pages of
    131,072 B in each of 25 sliding tensors and 65,536 B in each of 5 full ones, 3,604,480 B a block of
    every layer; the shared kind would allocate nothing (none here). 64 MiB // 3,604,480 = 18 blocks."""
    model = catalog.model("gemma-4-26b-a4b")
    opts = ProbeOptions(device="cpu", ctx=256, batch=1, util=1.0, max_gib=64 * MIB / 2**30, impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    assert r.pool.page_bytes == 25 * 131_072 + 5 * 65_536 == 3_604_480
    assert r.pool.predicted_blocks == 67_108_864 // 3_604_480 == 18 and r.pool.layers_allocated == 30
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 18 * 3_604_480 == 64_880_640 and r.pool.exact


def test_the_probe_allocates_nothing_for_shared_layers():
    """The E2B-like spec: 15 tensors (12 sliding of 16 x 1,024 B pages, 3 full of 16 x 2,048 B), none for
    the 20 shared layers; 16 MiB // (12 x 16,384 + 3 x 32,768 = 294,912 B) = 56 blocks."""
    from kvplan.probe.pool import layer_shapes

    spec = imported(e2b_like())
    shapes = layer_shapes(spec, resolve_kv_format(spec, "auto"), 56, BLOCK)
    assert len(shapes) == 15 and sorted({shape for shape, _ in shapes}) == [(56, 2, 16, 1, 256), (56, 2, 16, 1, 512)]
    opts = ProbeOptions(device="cpu", ctx=256, batch=1, util=1.0, max_gib=16 * MIB / 2**30, impl="torch")
    r = run_probe(spec, opts, {})
    assert r.pool.predicted_blocks == 16_777_216 // 294_912 == 56 and r.pool.layers_allocated == 15
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 56 * 294_912
