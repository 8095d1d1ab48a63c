"""Step-3.7-Flash (model_type step3p7) as vLLM 0.34 caches it, every number derived by hand from
tests/fixtures/hf_configs/step-3.7-flash/config.json (hidden 4,096; 64 heads, 8 KV heads x 128; 45
layers, layer_types full every fourth from layer 0, sliding_window 512; first_k_dense_replace 3; 288
experts of 1,280, top 8, one shared expert of 1,280) and the vLLM source named next to each:
vllm/model_executor/models/step3p5.py (Step3p5DecoderLayer: every layer num_attention_groups KV heads,
a "sliding_attention" layer's Attention given per_layer_sliding_window; FusedMoEBlock; Step3p5Model
.load_weights skipping layers >= num_hidden_layers, the MTP ones), v1/kv_cache_interface.py
(FullAttentionSpec / SlidingWindowSpec.max_memory_usage_bytes), v1/core/kv_cache_planning.py
(get_kv_cache_groups: groups of the largest kind's count when under 1.25 x the smallest, else the
smallest's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.calc.kv import request_bytes
from kvplan.calc.kvgroups import kv_groups
from kvplan.errors import SpecError
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.layers import FullAttention, SlidingWindowAttention
from kvplan.units import kv_format

FIXTURE = Path(__file__).parent / "fixtures" / "hf_configs" / "step-3.7-flash"
BF16 = kv_format("bf16")
SLIDING = SlidingWindowAttention(count=33, num_kv_heads=8, head_dim=128, window=512)
FULL = FullAttention(count=12, num_kv_heads=8, head_dim=128)


def raw() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


def spec_of(cfg: dict):
    return spec_from_config(cfg, "config.json", source="t", name="t", display="t").spec


def start_bytes(group, max_model_len: int = 65_536) -> int:
    return group.max_memory_bytes(max_model_len=max_model_len, max_num_batched_tokens=8192, block_size=16,
                                  kv_format=BF16, state_dtype_bytes=2)


# --- the config, read ------------------------------------------------------------------------------

def test_layer_types_read_as_12_full_and_33_sliding_layers():
    spec = import_model(FIXTURE).spec
    # layer_types: full at 0, 4, ..., 44 (45 layers: 12 of them), the other 33 sliding
    assert [i for i, t in enumerate(raw()["layer_types"]) if t == "full_attention"] == list(range(0, 45, 4))
    assert spec.layers == (SLIDING, FULL) and spec.num_layers == 45
    assert spec.family == "step3p7" and spec.max_context == 65_536


@pytest.mark.parametrize("layer_types", [["full_attention"] * 44, ["full_attention"] * 44 + ["chunked_attention"]])
def test_layer_types_vllm_cannot_read_are_one_clear_line(layer_types):
    with pytest.raises(SpecError, match="layer_types must list 45 entries, 'full_attention' or 'sliding_attention'"):
        spec_of({**raw(), "layer_types": layer_types})


def test_mtp_entries_after_the_layers_are_not_layers():
    """Upstream configs list the 3 MTP layers' types after the 45 (Step3p5 _get_layer_type): ignored."""
    spec = spec_of({**raw(), "layer_types": raw()["layer_types"] + ["sliding_attention"] * 3})
    assert spec.layers == (SLIDING, FULL)


# --- bytes per token, per request, per group --------------------------------------------------------

def test_bytes_per_token_and_one_request():
    # every layer: 2 (K,V) x 8 heads x 128 x 2 B = 4,096 B; at TP 8 one head a rank: 512 B
    assert SLIDING.kv_bytes_per_token(BF16) == FULL.kv_bytes_per_token(BF16) == 2 * 8 * 128 * 2 == 4_096
    assert FULL.kv_bytes_per_token(BF16, tp=8) == 2 * 1 * 128 * 2 == 512
    # 65,536 tokens: 12 full layers hold them all, 33 sliding ones their 512-token window
    assert request_bytes(import_model(FIXTURE).spec, 65_536, BF16) == \
        12 * 65_536 * 4_096 + 33 * 512 * 4_096 == 3_221_225_472 + 69_206_016 == 3_290_431_488


def test_vllm_groups_the_layers_by_12_with_three_padding_layers():
    """33 sliding and 12 full layers, pages of one size (16 x 4,096 = 65,536 B): 33 >= 1.25 x 12, so
    groups of 12: 3 sliding groups (36, 3 of them padding) and 1 full group."""
    layout = kv_groups(import_model(FIXTURE).spec, BF16)
    assert (layout.group_size, layout.groups, layout.padding_layers) == (12, 4, 3)
    assert layout.page_bytes_per_layer == 16 * 4_096 == 65_536
    assert layout.pool_bytes_per_block == 12 * 4 * 65_536 == 3_145_728


def test_one_request_of_max_model_len_at_start_up():
    """FullAttentionSpec: cdiv(65,536, 16) = 4,096 pages; SlidingWindowSpec: min(511 + 8,192, 65,536)
    = 8,703 tokens -> cdiv 544 pages + 1 (the window need not start on a page boundary) = 545."""
    assert start_bytes(FULL) == 4_096 * 65_536 == 268_435_456
    assert start_bytes(SLIDING) == 545 * 65_536 == 35_717_120
    total = 12 * start_bytes(FULL) + 33 * start_bytes(SLIDING)
    assert total == 3_221_225_472 + 1_178_664_960 == 4_399_890_432


# --- parameters -------------------------------------------------------------------------------------

def test_parameters_against_the_published_196b_backbone():
    """StepFun: 198B total with a 1.8B perception encoder, a 196B language backbone, 11B active. Per
    layer q, k, v, o, q_norm and k_norm; 3 dense MLPs of 11,264; 42 MoE layers of 288 experts and a
    shared one of 1,280 (FusedMoEBlock), the router and its bias; no MTP layer."""
    h = 4_096
    attention = h * (64 + 2 * 8) * 128 + 64 * 128 * h + 2 * 128
    dense_mlp = 3 * h * 11_264
    expert = 3 * h * 1_280
    moe = 288 * expert + expert + h * 288 + 288
    embeddings = 2 * 128_896 * h
    total = embeddings + 45 * (attention + 2 * h) + 3 * dense_mlp + 42 * moe + h
    spec = import_model(FIXTURE).spec
    assert (attention, moe) == (75_497_728, 4_546_756_896)
    assert spec.params_total == total == 195_832_712_256 and abs(total / 196e9 - 1) < 0.002
    # a token skips 280 of 288 experts in 42 layers
    assert spec.params_active == total - 42 * 280 * expert == 10_863_905_856 and abs(10.86e9 / 11e9 - 1) < 0.02


@pytest.mark.parametrize("keys", [
    {"mlp_layer_types": ["dense"] * 3 + ["sparse"] * 42},
    {"moe_layers_enum": ",".join(str(i) for i in range(3, 45))},  # the remote-code string vLLM splits
])
def test_the_moe_layers_read_the_same_from_each_key(keys):
    cfg = {k: v for k, v in raw().items() if k != "first_k_dense_replace"}
    spec = spec_of({**cfg, **keys})
    assert (spec.params_total, spec.params_active) == (195_832_712_256, 10_863_905_856)


def test_without_any_moe_key_vllms_own_default_every_layer_but_the_first():
    """Step3p5 _is_moe_layer: 0 < layer < num_hidden_layers: 44 MoE layers, 1 dense."""
    cfg = {k: v for k, v in raw().items() if k != "first_k_dense_replace"}
    h = 4_096
    expert = 3 * h * 1_280
    moe = 288 * expert + expert + h * 288 + 288
    spec = spec_of(cfg)
    assert spec.params_total - 195_832_712_256 == 2 * (moe - 3 * h * 11_264)  # two dense layers become MoE
    assert spec.params_active == spec.params_total - 44 * 280 * expert


# --- the probe allocates the pool as the calculator counts it -------------------------------------------

def test_the_cpu_probe_shares_its_tensors_across_both_kinds(catalog):
    """As tests/test_probe.py's Gemma-2 case: pages of one size, so gcd(33, 12) = 3 tensors shared by
    both kinds. 256 MiB // (45 x 65,536 B) = 91 blocks, 91 x 45 / 3 = 1,365 pages a tensor; a
    1,000-token request takes (12 x 63 + 33 x 32) / 3 = 604 of them (63 = cdiv(1,000, 16), 32 for the window)."""
    pytest.importorskip("torch")
    from kvplan.calc.kv import paged_request_bytes
    from kvplan.probe.runner import ProbeOptions, run_probe

    model = catalog.model("step-3.7-flash")
    opts = ProbeOptions(device="cpu", ctx=1_000, batch=2, util=1.0, max_gib=0.25, impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    assert (r.pool.predicted_blocks, r.pool.layers_allocated, r.pool.allocated_blocks) == (91, 3, 1_365)
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 91 * 45 * 65_536 == 268_369_920
    per_request = paged_request_bytes(model, 1_000, BF16, 1, 16)
    assert per_request == (12 * 63 + 33 * 32) * 65_536 == 118_751_232
    assert r.page_table.batch == 268_369_920 // per_request == 2 and r.page_table.pages_used == 2 * 604
    assert r.correctness and all(c.ok and c.kv_heads == 8 and c.q_heads == 64 for c in r.correctness) and r.ok
