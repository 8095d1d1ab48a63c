"""Falcon-H1 (model_type falcon_h1): attention and a Mamba-2 mixer side by side in every layer, each
numbers derived by hand from tests/fixtures/hf_configs/falcon-h1-0.5b/config.json (36 layers; hidden
1,024; 8 query / 2 KV heads of 64; Mamba-2: 24 heads x 64 = d_ssm 1,536, 1 group, d_state 128,
d_conv 4; bf16), following vLLM model_executor/models/falcon_h1.py (FalconH1ParallelHybrid,
FalconH1ForCausalLM.get_mamba_state_shape_from_config) and
model_executor/layers/mamba/mamba_utils.py (MambaStateShapeCalculator.mamba2_state_shape)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kvgroups import kv_groups
from kvplan.calc.startup import start_bytes
from kvplan.errors import SpecError
from kvplan.specs.engines.pages import hybrid_page
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.model import ModelSpec
from kvplan.units import GIB, MIB, kv_format

FIXTURE = Path(__file__).parent / "fixtures" / "hf_configs" / "falcon-h1-0.5b"
BF16 = kv_format("bf16")


@pytest.fixture(scope="module")
def model() -> ModelSpec:
    return import_model(FIXTURE).spec


def test_every_layer_holds_attention_and_a_mamba_mixer_beside_it(model):
    attention, mamba = model.layers
    assert (attention.kind, attention.count, attention.num_kv_heads, attention.head_dim) == ("full", 36, 2, 64)
    assert (mamba.kind, mamba.count, mamba.parallel) == ("mamba", 36, True)
    assert (mamba.d_inner, mamba.num_heads, mamba.n_groups, mamba.d_state, mamba.d_conv) == (1536, 24, 1, 128, 4)
    assert model.num_layers == 36  # the mixers add no decoder layer: 36 attention + 36 mixers, 36 layers


def test_kv_bytes_per_token(model):
    attention, mamba = model.layers
    assert attention.kv_bytes_per_token(BF16) == 2 * 2 * 64 * 2 == 512  # K,V x 2 heads x 64 x 2 B
    assert 36 * attention.kv_bytes_per_token(BF16) == 18_432  # every layer's attention
    assert mamba.kv_bytes_per_token(BF16) == 0  # the mixer keeps no token
    assert attention.kv_bytes_per_token(BF16, tp=2) == 2 * 1 * 64 * 2 == 256  # 1 KV head a rank


def test_state_bytes_as_mamba2_state_shape_gives_them(model):
    """conv_state (conv_dim / TP, d_conv - 1), conv_dim = d_ssm + 2 x n_groups x d_state; temporal
    state (heads / TP, head_dim, d_state); both in bf16 (mamba2_state_dtype, "auto")."""
    mamba = model.layers[1]
    conv = (1536 + 2 * 1 * 128) * (4 - 1)  # 1,792 x 3 = 5,376
    ssm = 24 * 64 * 128  # 196,608, the same as d_ssm 1,536 x d_state 128
    assert mamba.state_elements() == conv + ssm == 201_984
    assert mamba.state_bytes(1, 2) == 201_984 * 2 == 403_968
    # TP 2: the 1 group is replicated to 2 (extra_groups_for_head_shards: 2 - 1), so conv_dim is
    # 1,536 + 2 x 2 x 128 = 2,048, split: 1,024 x 3 = 3,072; ssm 12 heads x 64 x 128 = 98,304
    assert mamba.state_bytes(2, 2) == (1024 * 3 + 12 * 64 * 128) * 2 == 202_752


def test_hybrid_page_grows_the_attention_block_to_hold_a_state(model):
    """HybridAttentionMambaModelConfig (0.19 config.py): block = 16 x cdiv(403,968, 16 x 512) = 16 x 50
    = 800 tokens; the attention page 800 x 512 = 409,600 B, and the state's page padded to it."""
    assert hybrid_page(model, BF16) == (800, 409_600)
    layout = kv_groups(model, BF16, block_size=800)
    # 36 attention layers and 36 Mamba layers, one page size: group_size 36, 2 groups, no padding
    assert (layout.group_size, layout.groups, layout.padding_layers) == (36, 2, 0)
    assert (layout.page_bytes_per_layer, layout.state_layers) == (409_600, 36)
    assert kv_groups(model, BF16, block_size=800, states=False) is None  # an engine that does not unify


def budget(model, engine: str, prefix_caching: bool | None = None):
    """A 1 GiB pool: gpu_mem_bytes 1 GiB + 3 B at util 1.0, less 1 B each of weights, activation, overhead."""
    return memory_budget(model, None, BudgetInputs(engine=engine, util=1.0, gpu_mem_bytes=GIB + 3, weights_bytes=1,
                                                   activation_bytes=1, overhead_bytes=1, prefix_caching=prefix_caching))


def test_token_capacity_as_vllm_logs_it(model):
    old, new = budget(model, "vllm==0.19.0"), budget(model, "vllm==0.34.0")
    assert old.block_size == new.block_size == 800 and old.kv_pool_bytes == 1_073_741_824
    # a block of each of the 2 groups: 2 x 36 x 409,600 = 29,491,200 B; 1 GiB holds 36 of them
    assert old.page_bytes == 72 * 409_600 == 29_491_200
    assert old.num_blocks == 1_073_741_824 // 29_491_200 == 36
    # 0.19 (kv_cache_utils.py): num_blocks // groups x block = (1 GiB // (36 x 409,600)) // 2 x 800
    assert old.token_capacity == (1_073_741_824 // (36 * 409_600)) // 2 * 800 == 28_800
    # 0.34 (get_max_concurrency_for_kv_cache_config): prefix caching is on for a hybrid (0.26 on), so
    # mamba_cache_mode 'align', and the Mamba-2 mixer keeps a prefill checkpoint (0.32 on): a state group
    # takes 2 + 0 + 1 = 3 pages: 72 blocks / (cdiv(16,384, 800) = 21 + 3) = 3 requests of 16,384 tokens
    assert new.state_pages == 3 and new.token_capacity == int(72 / (21 + 3) * 16_384) == 49_152
    # without prefix caching ('none'): 1 state page, 72 / 22 requests
    assert budget(model, "vllm==0.34.0", prefix_caching=False).token_capacity == int(72 / (21 + 1) * 16_384) == 53_620


def test_a_requests_max_memory_at_start_up(model):
    """check_enough_kv_cache_memory: each attention layer cdiv(16,384, 800) = 21 pages, each Mamba
    layer one page, padded to the attention page (MambaSpec page_size_padded): 409,600 B each."""
    b = budget(model, "vllm==0.19.0")
    assert start_bytes(model, b, 16_384) == 36 * 21 * 409_600 + 36 * 1 * 409_600 == 324_403_200


def test_parameters_from_the_config(model):
    """Per layer: q/o 2 x 1,024 x 512 + k/v 2 x 1,024 x 128 = 1,310,720; Mamba-2 in_proj 1,024 x
    (2 x 1,536 + 2 x 128 + 24) = 3,432,448, conv 1,792 x 4 + bias 1,792 = 8,960, dt_bias/A/D 72,
    out_proj 1,536 x 1,024 = 1,572,864 (no gated-norm weight: mamba_rms_norm false) = 5,014,344;
    MLP 3 x 1,024 x 2,048 = 6,291,456; 2 norms 2,048: 12,618,568 a layer. Untied embeddings 2 x
    32,784 x 1,024 = 67,141,632 and the final norm 1,024. The model card names it 0.5B."""
    per_layer = 1_310_720 + (3_432_448 + 8_960 + 72 + 1_572_864) + 6_291_456 + 2_048
    assert per_layer == 12_618_568
    assert model.params_total == 36 * per_layer + 67_141_632 + 1_024 == 521_411_104
    assert abs(model.params_total - 0.5e9) / 0.5e9 < 0.05


def config(**changes) -> dict:
    return {**json.loads((FIXTURE / "config.json").read_text()), **changes}


def test_mamba_d_ssm_from_the_config_or_refused_where_transformers_refuses_it():
    spec = spec_from_config(config(mamba_d_ssm=1536), "x", source="x", name="x", display="x").spec
    assert spec.layers[1].d_inner == 1536
    with pytest.raises(SpecError, match=r"mamba_n_heads 24 x mamba_d_head 64 is not mamba_d_ssm 2048"):
        spec_from_config(config(mamba_d_ssm=2048), "x", source="x", name="x", display="x")
    # null: mamba_expand x hidden_size = 2 x 1,024 = 2,048, and d_head "auto" = 2,048 / 32 heads = 64
    spec = spec_from_config(config(mamba_d_ssm=None, mamba_n_heads=32, mamba_d_head="auto"), "x", source="x",
                            name="x", display="x").spec
    assert (spec.layers[1].d_inner, spec.layers[1].num_heads) == (2048, 32)


def test_a_parallel_group_counts_no_layer_but_may_not_exceed_them(model):
    data = model.model_dump()
    data["layers"][1]["count"] = 37
    with pytest.raises(ValueError, match="runs beside 37 layers but the model has 36"):
        ModelSpec.model_validate(data)
    data["layers"][1].update(count=36, parallel=False)  # 72 layers counted, 36 declared
    with pytest.raises(ValueError, match="layers add up to 72 but num_layers is 36"):
        ModelSpec.model_validate(data)


def test_the_probe_allocates_the_layout_the_calculator_predicts(catalog):
    """At vLLM's block of 800 tokens a 1,024-token request takes cdiv(1,024, 800) = 2 pages of
    409,600 B in each of 36 attention layers (29,491,200 B) and a 403,968-B state in each of 36
    Mamba layers (14,542,848 B): 44,034,048 B. A 128 MiB pool holds 3 of them."""
    pytest.importorskip("torch")
    from kvplan.probe.runner import ProbeOptions, run_probe

    opts = ProbeOptions(device="cpu", ctx=1024, batch=4, util=1.0, block_size=800, max_gib=128 * MIB / 2**30,
                        impl="torch")
    r = run_probe(catalog.model("falcon-h1-0.5b"), opts, catalog.gpus.specs)
    per_request = 36 * 2 * 409_600 + 36 * 403_968
    assert per_request == 44_034_048
    assert r.page_table.batch == 134_217_728 // per_request == 3
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 3 * per_request and r.pool.exact
    assert r.pool.layers_allocated == 36 + 36 and r.ok
