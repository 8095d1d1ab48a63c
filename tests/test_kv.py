"""KV-cache size: the issue's required numbers, hand-derived numbers for every layer kind, and
invariants. The arithmetic stands next to every assert."""

from __future__ import annotations

import pytest
from conftest import make_model
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.calc.kv import kv_size
from kvplan.errors import InputError, SpecError
from kvplan.units import GIB

# --- the numbers the issue and the source notes pin ---------------------------------------------

def test_llama3_8b_per_token_and_page(catalog):
    r = kv_size(catalog.model("llama3-8b"), 1024)
    assert r.bytes_per_token_per_gpu == 2 * 32 * 8 * 128 * 2 == 131_072   # 2 (K,V) x L x kv x hd x B
    assert r.layers[0].page_bytes_per_layer == 16 * 2 * 8 * 128 * 2 == 65_536  # note 001: 64 KB


def test_llama3_70b_at_4096_and_without_gqa(catalog):
    r = kv_size(catalog.model("llama3-70b"), 4096)
    assert r.bytes_per_request_per_gpu == 2 * 80 * 8 * 128 * 2 * 4096 == 1_342_177_280
    assert r.bytes_per_request_per_gpu / GIB == 1.25
    # note 000's "~10 GB": 2 x 80 layers x 8192 (all 64 heads x 128) x 2 B x 4096 tokens
    assert r.without_gqa.bytes_per_request == 2 * 80 * 8192 * 2 * 4096 == 10_737_418_240
    assert r.without_gqa.bytes_per_request / GIB == 10.0
    assert r.without_gqa.ratio == 8.0


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_deepseek_v3_mla_latent_same_on_every_rank(catalog, tp):
    r = kv_size(catalog.model("deepseek-v3"), 1, tp=tp)
    assert r.kv_dtype == "bf16"  # an fp8 checkpoint computes (and caches) in bf16 by default
    assert r.bytes_per_token_per_gpu == 61 * (512 + 64) * 2 == 70_272
    assert r.bytes_per_request_all_gpus == tp * 70_272  # replicated, not split


def test_deepseek_v3_without_mla(catalog):
    r = kv_size(catalog.model("deepseek-v3"), 1)
    # decompressed: 128 heads x (K 128+64 + V 128) x 2 B x 61 layers
    assert r.without_gqa.bytes_per_token == 128 * (192 + 128) * 2 * 61 == 4_997_120


def test_mistral_v01_holds_its_window(catalog):
    r = kv_size(catalog.model("mistral-7b-v0.1"), 32_768)
    assert r.layers[0].kind == "sliding"
    assert r.layers[0].cached_tokens == 4096
    assert r.bytes_per_request_per_gpu == 32 * 4096 * 2 * 8 * 128 * 2 == 536_870_912


# --- every layer kind, by hand ---------------------------------------------------------------

def test_gemma2_9b_half_local(catalog):
    r = kv_size(catalog.model("gemma2-9b"), 8192)
    per_layer = 2 * 8 * 256 * 2  # 8,192 B per token per layer (head_dim 256, not 3584/16)
    assert r.bytes_per_request_per_gpu == 21 * 4096 * per_layer + 21 * 8192 * per_layer == 2_113_929_216


def test_gemma3_27b_five_local_one_global(catalog):
    r = kv_size(catalog.model("gemma3-27b"), 131_072)
    per_layer = 2 * 16 * 128 * 2  # 8,192 B
    assert r.bytes_per_request_per_gpu == 52 * 1024 * per_layer + 10 * 131_072 * per_layer == 11_173_625_856


def test_llama4_scout_chunked(catalog):
    r = kv_size(catalog.model("llama4-scout"), 1_048_576)
    per_layer = 2 * 8 * 128 * 2  # 4,096 B
    assert r.bytes_per_request_per_gpu == 36 * 8192 * per_layer + 12 * 1_048_576 * per_layer == 52_747_567_104


def test_gpt_oss_20b_alternating_window_128(catalog):
    r = kv_size(catalog.model("gpt-oss-20b"), 8192)
    per_layer = 2 * 8 * 64 * 2  # 2,048 B
    assert r.bytes_per_request_per_gpu == 12 * 128 * per_layer + 12 * 8192 * per_layer == 204_472_320


def test_jamba_mamba_state_is_constant(catalog):
    model = catalog.model("jamba-v0.1")
    state = ((8192 * (4 - 1)) + 8192 * 16) * 2  # (conv d_inner x (d_conv-1) + ssm d_inner x d_state) x 2 B
    assert state == 311_296
    for ctx in (1, 4096, 262_144):
        r = kv_size(model, ctx)
        assert r.bytes_per_request_per_gpu == 4 * ctx * 2 * 8 * 128 * 2 + 28 * state


def test_falcon_7b_mqa(catalog):
    r = kv_size(catalog.model("falcon-7b"), 1)
    assert r.bytes_per_token_per_gpu == 32 * 2 * 1 * 64 * 2 == 8192
    assert r.without_gqa.bytes_per_token == 32 * 2 * 71 * 64 * 2 == 581_632  # 71 heads: 71x


def test_opt_13b_is_already_mha(catalog):
    r = kv_size(catalog.model("opt-13b"), 2048)
    assert r.kv_dtype == "fp16"
    assert r.bytes_per_token_per_gpu == 40 * 2 * 40 * 128 * 2 == 819_200
    assert r.without_gqa.ratio == 1.0


def test_qwen3_32b_head_dim_is_stored_not_derived(catalog):
    # hidden 5120 / 64 heads would give 80; the config says 128
    r = kv_size(catalog.model("qwen3-32b"), 1)
    assert r.bytes_per_token_per_gpu == 64 * 2 * 8 * 128 * 2 == 262_144


@pytest.mark.parametrize("kv_dtype, per_layer", [
    ("fp8", 2048),            # 2 x 8 x 128 elements x 1 B
    ("int8", 2048 + 32 * 4),  # + 2048/64 groups x 4 B scales
    ("int4", 1024 + 32 * 4),
    ("fp32", 8192),
])
def test_quantized_kv(kv_dtype, per_layer):
    r = kv_size(make_model(), 1, kv_dtype=kv_dtype)
    assert r.bytes_per_token_per_gpu == 32 * per_layer


# --- tensor parallelism -------------------------------------------------------------------------

def test_tp_splits_kv_heads(catalog):
    r = kv_size(catalog.model("llama3-70b"), 4096, tp=8)
    assert r.bytes_per_token_per_gpu == 80 * 2 * 1 * 128 * 2 == 40_960
    assert r.bytes_per_request_all_gpus == r.bytes_per_request_unsharded == 1_342_177_280


def test_tp_beyond_kv_heads_replicates(catalog):
    r = kv_size(catalog.model("llama3-70b"), 4096, tp=16)
    assert r.bytes_per_token_per_gpu == 40_960  # still one whole KV head per rank
    assert r.bytes_per_request_all_gpus == 2 * r.bytes_per_request_unsharded


@pytest.mark.parametrize("tp", [3, 5, 6])
def test_tp_must_divide_heads(catalog, tp):
    with pytest.raises(InputError, match=f"tp {tp} does not divide") as err:  # the library names its keyword
        kv_size(catalog.model("llama3-70b"), 4096, tp=tp)
    assert err.value.spelled({"tp": "--tp"}).startswith(f"--tp {tp} does not divide")  # the CLI, its flag


def test_tp_neither_divisor_nor_multiple_of_kv_heads():
    model = make_model(num_attention_heads=48, layers=[{"kind": "full", "count": 2, "num_kv_heads": 12,
                                                        "head_dim": 64}])
    with pytest.raises(SpecError, match="neither divides nor is a multiple of 12 KV heads"):
        kv_size(model, 1, tp=8)


# --- pages -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ctx, pages", [(4095, 256), (4096, 256), (4097, 257), (1, 1), (16, 1), (17, 2)])
def test_pages_round_up(ctx, pages):
    r = kv_size(make_model(), ctx)
    assert r.layers[0].pages_per_request_per_layer == pages
    assert r.paged_bytes_per_request_per_gpu == 32 * pages * 65_536


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(ctx=0), "ctx 0 is out of range; use 1..1,073,741,824 tokens"),  # the readers' bounds, by keyword
    (dict(ctx=2**31), "out of range"),
    (dict(ctx=1, batch=0), "batch 0 is out of range"),
    (dict(ctx=1, block_size=0), "block_size 0 is out of range; use 1..65,536 tokens"),
    (dict(ctx=1, kv_dtype="fp4"), "unknown KV dtype 'fp4'"),
])
def test_bad_input(kwargs, message):
    ctx = kwargs.pop("ctx")
    with pytest.raises(InputError, match=message):
        kv_size(make_model(), ctx, **kwargs)


# --- cross-check against the textbook formula, and invariants -------------------------------------

def test_every_full_attention_model_matches_the_textbook_formula(catalog):
    for model in catalog.models.specs.values():
        if {g.kind for g in model.layers} != {"full"}:
            continue
        ctx = 3000
        textbook = sum(2 * g.count * g.num_kv_heads * g.head_dim for g in model.layers) * 2 * ctx
        dtype_bytes = 2 if model.dtype in ("bf16", "fp16", "fp8") else 4
        assert kv_size(model, ctx).bytes_per_request_per_gpu == textbook // 2 * dtype_bytes, model.name


MODELS = ["llama3-8b", "mistral-7b-v0.1", "gemma3-27b", "deepseek-v3", "jamba-v0.1", "llama4-scout",
          "gpt-oss-120b", "qwen3-30b-a3b"]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(MODELS), ctx=st.integers(1, 300_000), extra=st.integers(1, 100_000))
def test_kv_never_shrinks_as_ctx_grows(catalog, name, ctx, extra):
    model = catalog.model(name)
    assert kv_size(model, ctx + extra).bytes_per_request_per_gpu >= kv_size(model, ctx).bytes_per_request_per_gpu


@settings(max_examples=60, deadline=None)
@given(ctx=st.integers(1, 10**6), k=st.integers(1, 64))
def test_full_attention_is_linear_in_ctx(ctx, k):
    model = make_model()
    assert kv_size(model, k * ctx).bytes_per_request_per_gpu == k * kv_size(model, ctx).bytes_per_request_per_gpu


@settings(max_examples=60, deadline=None)
@given(ctx=st.integers(4096, 10**6))
def test_sliding_window_stops_growing(catalog, ctx):
    model = catalog.model("mistral-7b-v0.1")
    assert kv_size(model, ctx).bytes_per_request_per_gpu == kv_size(model, 4096).bytes_per_request_per_gpu


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(MODELS + ["llama3-70b", "qwen2.5-72b"]), ctx=st.integers(1, 200_000),
       tp=st.sampled_from([1, 2, 4, 8, 16]), batch=st.integers(1, 64))
def test_per_gpu_times_tp_covers_the_whole_cache(catalog, name, ctx, tp, batch):
    model = catalog.model(name)
    try:
        r = kv_size(model, ctx, tp=tp, batch=batch)
    except (InputError, SpecError):
        return  # tp that does not fit the model: rejected, tested above
    assert r.bytes_per_request_per_gpu * tp >= r.bytes_per_request_unsharded
    assert r.bytes_per_batch_per_gpu == batch * r.bytes_per_request_per_gpu


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(MODELS), ctx=st.integers(1, 200_000), block=st.sampled_from([1, 8, 16, 32, 256]))
def test_paged_waste_is_under_one_page_per_layer(catalog, name, ctx, block):
    r = kv_size(catalog.model(name), ctx, block_size=block)
    for layer in r.layers:
        waste = layer.paged_bytes_per_request - layer.bytes_per_request
        assert 0 <= waste < layer.count * max(layer.page_bytes_per_layer, 1)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(MODELS), ctx=st.integers(1, 100_000))
def test_narrower_kv_dtypes_never_cost_more(catalog, name, ctx):
    model = catalog.model(name)
    sizes = [kv_size(model, ctx, kv_dtype=d).bytes_per_request_per_gpu for d in ("fp32", "bf16", "int8", "fp8")]
    assert sizes == sorted(sizes, reverse=True)
    assert kv_size(model, ctx, kv_dtype="int4").bytes_per_request_per_gpu <= sizes[-1]


@pytest.mark.parametrize("name, per_token", [
    ("llama2-7b", 32 * 2 * 32 * 128 * 2),        # MHA: 524,288 B
    ("llama2-70b", 80 * 2 * 8 * 128 * 2),        # GQA 8: 327,680 B
    ("llama3.1-405b", 126 * 2 * 8 * 128 * 2),    # 516,096 B
    ("llama3.2-1b", 16 * 2 * 8 * 64 * 2),        # head_dim 64: 32,768 B
    ("mixtral-8x7b", 32 * 2 * 8 * 128 * 2),      # 131,072 B (experts do not change the cache)
    ("mixtral-8x22b", 56 * 2 * 8 * 128 * 2),     # 229,376 B
    ("qwen2.5-7b", 28 * 2 * 4 * 128 * 2),        # 57,344 B
    ("qwen2.5-72b", 80 * 2 * 8 * 128 * 2),       # 327,680 B
    ("qwen3-235b-a22b", 94 * 2 * 4 * 128 * 2),   # 192,512 B
    ("phi3-mini-4k", 32 * 2 * 32 * 96 * 2),      # head_dim 3072/32 = 96: 393,216 B
    ("phi4", 40 * 2 * 10 * 128 * 2),             # 204,800 B
    ("deepseek-v2-lite", 27 * (512 + 64) * 2),   # 31,104 B
    ("gpt-oss-120b", 36 * 2 * 8 * 64 * 2),       # 73,728 B while inside the 128-token window
])
def test_per_token_bytes_by_family(catalog, name, per_token):
    assert kv_size(catalog.model(name), 1).bytes_per_token_per_gpu == per_token


def test_phi3_window_of_2047(catalog):
    r = kv_size(catalog.model("phi3-mini-4k"), 4096)
    assert r.layers[0].cached_tokens == 2047
    assert r.bytes_per_request_per_gpu == 32 * 2047 * 2 * 32 * 96 * 2 == 804_913_152
