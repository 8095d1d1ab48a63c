"""MiniMax-M3 (model_type minimax_m3) as vLLM 0.34 caches it, every number derived by hand from
tests/fixtures/hf_configs/minimax-m3/config.json (hidden 6,144; 64 heads, 4 KV heads x 128; 60 layers,
sparse_attention_freq 0 for layers 0-2 and 1 for 3-59; sparse_index_dim 128, sparse_num_index_heads 4,
sparse_block_size 128, sparse_topk_blocks 16) and the vLLM source named next to each:
vllm/models/minimax_m3/nvidia/model.py (MiniMaxM3Attention, MiniMaxM3SparseAttention.get_kv_cache_spec:
a FullAttentionSpec; MiniMaxM3MoE; MiniMaxM3Model.load_weights skipping "mtp."),
common/indexer.py (MiniMaxM3IndexerCache.get_kv_cache_spec: an MLAAttentionSpec of 1 x index_head_dim
in indexer_kv_dtype, bf16 for "auto"), common/sparse_attention.py (MiniMaxM3SparseBackend: 128-token
kernel blocks), model_executor/layers/linear.py (MinimaxM3QKVParallelLinearWithIndexer: index_k one
head, replicated), v1/kv_cache_interface.py (AttentionSpec.page_size_bytes, FullAttentionSpec
.max_memory_usage_bytes, UniformTypeKVCacheSpecs: one group, its page the sum of its layers')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.calc.kvgroups import kv_groups
from kvplan.errors import SpecError
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.layer_text import describe, fixed_formula
from kvplan.specs.kinds.minimax_m3 import BlockSparseAttention
from kvplan.specs.layers import FullAttention
from kvplan.units import kv_format

FIXTURE = Path(__file__).parent / "fixtures" / "hf_configs" / "minimax-m3"
BF16, FP8 = kv_format("bf16"), kv_format("fp8")
DENSE = FullAttention(count=3, num_kv_heads=4, head_dim=128)
SPARSE = BlockSparseAttention(count=57, num_kv_heads=4, head_dim=128, index_head_dim=128, index_block_size=128,
                              index_topk_blocks=16)


def raw() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


def page(group, block_size: int = 128, fmt=BF16, tp: int = 1) -> int:
    return group.page_size_bytes(block_size=block_size, kv_format=fmt, tp=tp, state_dtype_bytes=2)


def start_bytes(group, max_model_len: int, tp: int = 1) -> int:
    return group.max_memory_bytes(max_model_len=max_model_len, max_num_batched_tokens=8192, block_size=128,
                                  kv_format=BF16, tp=tp, state_dtype_bytes=2)


# --- the config, read ------------------------------------------------------------------------------

def test_sparse_attention_freq_reads_as_three_dense_and_57_sparse_layers():
    spec = import_model(FIXTURE).spec
    assert raw()["sparse_attention_config"]["sparse_attention_freq"] == [0] * 3 + [1] * 57
    assert spec.layers == (DENSE, SPARSE) and spec.num_layers == 60
    assert spec.family == "minimax_m3" and spec.max_context == 1_048_576


def test_the_transformers_flat_keys_read_the_same():
    """MiniMaxM3VLTextConfig's own format: layer_types, mlp_layer_types and index_* instead of the
    legacy sparse_attention_config and moe_layer_freq."""
    cfg = {k: v for k, v in raw().items() if k not in ("sparse_attention_config", "moe_layer_freq")}
    cfg.update(model_type="minimax_m3_vl_text", layer_types=["full_attention"] * 3 + ["minimax_m3_sparse"] * 57,
               mlp_layer_types=["dense"] * 3 + ["sparse"] * 57, index_n_heads=4, index_head_dim=128,
               index_block_size=128, index_topk_blocks=16)
    spec = spec_from_config(cfg, "config.json", source="t", name="t", display="t").spec
    assert spec.layers == (DENSE, SPARSE) and spec.params_total == import_model(FIXTURE).spec.params_total


@pytest.mark.parametrize("sparse, message", [
    ({"sparse_attention_freq": [0, 1]}, "sparse_attention_freq must list 60 entries, 0 or 1"),
    ({"sparse_num_index_heads": 8}, "sparse_num_index_heads 8 must equal num_key_value_heads 4"),
    ({"sparse_index_dim": "128"}, "sparse_index_dim must be a whole number of at least 1"),
])
def test_a_sparse_config_vllm_cannot_run_is_one_clear_line(sparse, message):
    cfg = raw()
    cfg["sparse_attention_config"] = {**cfg["sparse_attention_config"], **sparse}
    with pytest.raises(SpecError, match=message):
        spec_from_config(cfg, "config.json", source="t", name="t", display="t")


def test_a_moe_layer_freq_that_does_not_say_is_one_clear_line():
    with pytest.raises(SpecError, match="moe_layer_freq must list 60 entries, 0 or 1, one a layer"):
        spec_from_config({**raw(), "moe_layer_freq": [0, 2] * 30}, "config.json", source="t", name="t", display="t")


# --- bytes per token, per page, per request --------------------------------------------------------

def test_bytes_per_token_of_each_kind():
    # dense: 2 (K,V) x 4 heads x 128 x 2 B = 2,048 B; sparse adds the index key, 128 x 2 B (bf16) = 256 B
    assert DENSE.kv_bytes_per_token(BF16) == 2 * 4 * 128 * 2 == 2_048
    assert SPARSE.fixed_bytes_per_token() == 128 * 2 == 256
    assert SPARSE.kv_bytes_per_token(BF16) == 2_048 + 256 == 2_304
    # fp8 KV halves K and V, not the index key (indexer_kv_dtype is its own setting)
    assert SPARSE.kv_bytes_per_token(FP8) == 2 * 4 * 128 * 1 + 256 == 1_280
    # TP 4: one KV head a rank, the index key whole on every rank; TP 8: a replica of one head
    assert SPARSE.kv_bytes_per_token(BF16, tp=4) == 2 * 1 * 128 * 2 + 256 == 768
    assert SPARSE.kv_bytes_per_token(BF16, tp=8) == 768 and DENSE.kv_bytes_per_token(BF16, tp=8) == 512
    # the whole model: 3 x 2,048 + 57 x 2,304 = 6,144 + 131,328
    spec = import_model(FIXTURE).spec
    assert sum(g.count * g.kv_bytes_per_token(BF16) for g in spec.layers) == 137_472


def test_pages_at_vllms_128_token_blocks():
    """AttentionSpec.page_size_bytes: heads x block x (head_size + head_size_v) x dtype bytes; the
    index cache's MLAAttentionSpec has 1 head and no V."""
    kv_page = 4 * 128 * (128 + 128) * 2  # FullAttentionSpec: 262,144 B
    index_page = 1 * 128 * (128 + 0) * 2  # MLAAttentionSpec: 32,768 B
    assert page(DENSE) == kv_page == 262_144
    assert page(SPARSE) == kv_page + index_page == 294_912 == 128 * 2_304
    # the kernels take 128-token blocks only (MiniMaxM3SparseBackend.get_supported_kernel_block_sizes)
    spec = import_model(FIXTURE).spec
    assert engine_entry("vllm").default_block_size(spec, None, BF16) == 128


def test_vllm_puts_every_layer_in_one_group_its_page_the_sum():
    """get_kv_cache_groups: the specs are not one (FullAttentionSpec.merge refuses an MLAAttentionSpec)
    but all of FullAttentionSpec's type, so one UniformTypeKVCacheSpecs whose page sums 117 specs."""
    spec = import_model(FIXTURE).spec
    layout = kv_groups(spec, BF16, block_size=128)
    assert (layout.group_size, layout.groups, layout.padding_layers) == (1, 1, 0)
    # 3 x 262,144 + 57 x 294,912 = 786,432 + 16,809,984; = 128 tokens x 137,472 B a token
    assert layout.page_bytes_per_layer == 17_596_416 == 128 * 137_472
    # TP 8: 3 x 65,536 + 57 x (65,536 + 32,768)
    assert kv_groups(spec, BF16, tp=8, block_size=128).page_bytes_per_layer == 5_799_936


def test_one_request_of_a_million_tokens_at_start_up():
    """FullAttentionSpec.max_memory_usage_bytes: cdiv(max_model_len, 128) pages of each layer's page."""
    assert start_bytes(DENSE, 1_048_576) == 8_192 * 262_144 == 2_147_483_648
    assert start_bytes(SPARSE, 1_048_576) == 8_192 * 294_912 == 2_415_919_104
    total = 3 * start_bytes(DENSE, 1_048_576) + 57 * start_bytes(SPARSE, 1_048_576)
    assert total == 8_192 * 17_596_416 == 1_048_576 * 137_472 == 144_149_839_872
    # one token over a block boundary takes a whole page more: cdiv(131,073, 128) = 1,025
    assert start_bytes(SPARSE, 131_073) == 1_025 * 294_912
    # TP 8 (the fit a single H200 node runs): 8,192 x 5,799,936 B = 44.25 GiB
    tp8 = 3 * start_bytes(DENSE, 1_048_576, tp=8) + 57 * start_bytes(SPARSE, 1_048_576, tp=8)
    assert tp8 == 8_192 * 5_799_936 == 47_513_075_712


def test_a_query_reads_16_blocks_once_its_context_passes_2048_tokens():
    """Sum over t of the keys a query reads: t up to 16 x 128 = 2,048; beyond, 15 whole blocks and its
    own block's (t - 1) % 128 + 1 tokens (index_topk.py: the local block is always among the top 16)."""
    def brute(ctx: int) -> int:
        return sum(t if -(-t // 128) <= 16 else 15 * 128 + (t - 1) % 128 + 1 for t in range(1, ctx + 1))

    for ctx in (1, 2_047, 2_048, 2_049, 2_176, 2_177, 5_000):
        assert SPARSE.attended_pairs(ctx) == brute(ctx)
    assert SPARSE.attended_pairs(2_048) == DENSE.attended_pairs(2_048) == 2_048 * 2_049 // 2
    # 1,048,576: 2,098,176 + 1,046,528 x 1,920 + 8,176 x 8,256 = 2,078,932,992, against a dense 549.8e9
    assert SPARSE.attended_pairs(1_048_576) == 2_098_176 + 1_046_528 * 1_920 + 8_176 * 8_256 == 2_078_932_992


def test_texts_name_the_index_key_and_its_format():
    assert describe(SPARSE) == "4 KV x 128 + index key 128, top 16 blocks of 128"
    assert fixed_formula(SPARSE) == "index key 128 x 2 B (bf16 whatever the KV dtype, on every rank)"
    assert SPARSE.kv_page_layout() is None  # index keys share the page with K and V


# --- parameters -------------------------------------------------------------------------------------

def test_parameters_against_the_published_428b():
    """MiniMax: 428B total, 23B activated (the multimodal release). Per layer: q, k, v, o and the two
    per-head norms; a sparse layer's index_q (4 heads x 128) and index_k (1 head); three dense MLPs of
    12,288; 57 MoE layers of 128 experts + 1 shared of 3,072 (MiniMaxM3MoE), the router and its bias."""
    h = 6_144
    attention = h * (64 + 2 * 4) * 128 + 64 * 128 * h + 2 * 128
    index = h * (4 + 1) * 128 + 2 * 128
    dense_mlp = 3 * h * 12_288
    expert = 3 * h * 3_072
    moe = (128 + 1) * expert + h * 128 + 128
    embeddings = 2 * 200_064 * h
    total = embeddings + 60 * (attention + 2 * h) + 57 * index + 3 * dense_mlp + 57 * moe + h
    spec = import_model(FIXTURE).spec
    assert (attention, index, moe) == (106_955_008, 3_932_416, 7_305_166_976)
    assert spec.params_total == total == 426_174_572_928 and abs(total / 428e9 - 1) < 0.005
    # a token skips 124 of 128 experts in 57 layers; less the 2.46B of embeddings and lm_head: 23.5B
    assert spec.params_active == total - 57 * 124 * expert == 25_962_473_856
    assert abs((spec.params_active - embeddings) / 23e9 - 1) < 0.025


# --- the probe allocates the pool as the calculator counts it -------------------------------------------

def test_the_cpu_probe_allocates_every_layer_as_predicted(catalog):
    """One tensor a layer (the pages differ in size), each of the pool's blocks: a block of every layer
    is 17,596,416 B; 300 MiB holds 17 blocks; a 1,000-token request takes cdiv(1,000, 128) = 8."""
    pytest.importorskip("torch")
    from kvplan.probe.runner import ProbeOptions, run_probe
    from kvplan.units import MIB

    model = catalog.model("minimax-m3")
    opts = ProbeOptions(device="cpu", ctx=1_000, batch=2, block_size=128, util=1.0, max_gib=300 * MIB / 2**30,
                        impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    assert r.pool.predicted_blocks == 314_572_800 // 17_596_416 == 17 and r.pool.layers_allocated == 60
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 17 * 17_596_416 and r.pool.exact
    assert (r.page_table.batch, r.page_table.pages_used) == (2, 2 * 8)
    # the dense layers are laid out [pages, 2, 128, 4, 128] and attended against a float64 reference
    assert r.correctness and all(c.ok and c.kv_heads == 4 and c.q_heads == 64 for c in r.correctness) and r.ok
