"""Every layer kind answers the LayerKind protocol, with numbers derived by hand: what it caches per
token, a page, and what one request of max_model_len needs at start-up as vLLM V1 counts it
(vllm/v1/kv_cache_interface.py max_memory_usage_bytes). Its texts live in layer_text, one per class."""

from __future__ import annotations

import typing

import pytest

from kvplan.errors import SpecError
from kvplan.specs import layer_text
from kvplan.specs.layer_kind import AttentionShape, LayerKind
from kvplan.specs.layer_union import (KINDS, BlockSparseAttention, CrossAttention, DeepseekV4Compressed,
                                      DeepseekV4Window, LayerGroup, LightningState, SharedKvAttention)
from kvplan.specs.layers import (KIND_TAGS, SHARED_KINDS, ChunkedLocalAttention, DecompressedAttention, FullAttention,
                                 GatedDeltaNetState, MambaState, MLALatent, MlpOnly, SlidingWindowAttention, layer_class)
from kvplan.units import kv_format

BF16, FP8 = kv_format("bf16"), kv_format("fp8")

# Real shapes: Llama-3-8B's full layer, Gemma-3-27B's sliding one, Llama-4-Scout's chunked one,
# DeepSeek-V3's latent, Nemotron-H-8B's Mamba-2, Qwen3-Next's Gated DeltaNet, Nemotron-H's MLP block,
# Llama-3.2-11B-Vision's cross-attention to one image of 4 tiles x (40 x 40 patches + 1) = 6,404 vision tokens. MiniMax-M1's lightning attention.
LLAMA3_FULL = FullAttention(count=32, num_kv_heads=8, head_dim=128)
GEMMA3_SLIDING = SlidingWindowAttention(count=52, num_kv_heads=16, head_dim=128, window=1024)
SCOUT_CHUNKED = ChunkedLocalAttention(count=36, num_kv_heads=8, head_dim=128, chunk=8192)
DEEPSEEK_MLA = MLALatent(count=61, kv_lora_rank=512, qk_rope_head_dim=64, num_heads=128, qk_nope_head_dim=128,
                         v_head_dim=128)
NEMOTRON_MAMBA = MambaState(count=24, d_inner=128 * 64, d_state=128, d_conv=4, n_groups=8, num_heads=128)
QWEN3_NEXT_GDN = GatedDeltaNetState(count=36, num_k_heads=16, num_v_heads=32, head_k_dim=128, head_v_dim=128,
                                    conv_kernel=4)
MLP_BLOCK = MlpOnly(count=24)
# Gemma-4 E2B's KV-shared sliding layers as other projects' tests quote its config (35 layers, the last 20
# shared, 1 KV head x 256, window 512; no verbatim E2B config.json was found): they read layer 13's cache
SHARED_KV = SharedKvAttention(count=16, num_kv_heads=1, head_dim=256, window=512, target_layer=13)
MLLAMA_CROSS = CrossAttention(count=8, num_kv_heads=8, head_dim=128, vision_tokens=6_404)
MINIMAX_LIGHTNING = LightningState(count=70, num_heads=64, head_dim=128)
# DeepSeek-V4-Flash's window-only layers and its ratio-4 layers (numbers in tests/test_deepseek_v4.py)
DSV4_WINDOW = DeepseekV4Window(count=2, head_dim=512, rope_head_dim=64, window=128)
DSV4_C4 = DeepseekV4Compressed(count=21, head_dim=512, rope_head_dim=64, window=128, compress_ratio=4,
                               index_head_dim=128, index_topk=512)
# MiniMax-M3's block-sparse layers: 4 KV heads x 128 and an index key of 128 (numbers in tests/test_minimax_m3.py)
MINIMAX_M3_MSA = BlockSparseAttention(count=57, num_kv_heads=4, head_dim=128, index_head_dim=128, index_block_size=128,
                                      index_topk_blocks=16)
# Falcon-H1-0.5B's Mamba-2 mixers, beside the attention of the same 36 layers (the `parallel` field)
FALCON_H1_MAMBA = MambaState(count=36, d_inner=24 * 64, d_state=128, d_conv=4, n_groups=1, num_heads=24,
                             parallel=True)
ONE_OF_EACH = {"full": LLAMA3_FULL, "sliding": GEMMA3_SLIDING, "chunked": SCOUT_CHUNKED, "mla": DEEPSEEK_MLA,
               "mamba": NEMOTRON_MAMBA, "gdn": QWEN3_NEXT_GDN, "mlp": MLP_BLOCK, "shared_kv": SHARED_KV,
               "cross": MLLAMA_CROSS, "lightning": MINIMAX_LIGHTNING, "dsv4_swa": DSV4_WINDOW,
               "dsv4_compressed": DSV4_C4, "msa": MINIMAX_M3_MSA}
DECOMPRESSED = DEEPSEEK_MLA.mha_equivalent(128)


def max_bytes(group, max_model_len: int, max_num_batched_tokens: int = 8192, block_size: int = 16,
              fmt=BF16, tp: int = 1) -> int:
    return group.max_memory_bytes(max_model_len=max_model_len, max_num_batched_tokens=max_num_batched_tokens,
                                  block_size=block_size, kv_format=fmt, tp=tp, state_dtype_bytes=2)


def max_pages(group, max_model_len: int, max_num_batched_tokens: int = 8192, block_size: int = 16) -> int:
    return group.max_memory_pages(max_model_len=max_model_len, max_num_batched_tokens=max_num_batched_tokens,
                                  block_size=block_size)


# --- one registry, one protocol ---------------------------------------------------------------------

def test_the_registry_has_one_class_per_yaml_kind_and_the_union_names_the_same():
    assert set(KINDS) == set(ONE_OF_EACH) == {"full", "sliding", "chunked", "mla", "mamba", "gdn", "mlp",
                                               "shared_kv", "cross", "lightning", "dsv4_swa", "dsv4_compressed", "msa"}
    union = typing.get_args(typing.get_args(LayerGroup)[0])
    assert union == tuple(KINDS.values())


def test_the_registry_names_every_kind_and_imports_a_familys_only_when_asked():
    """layers.py holds the shared kinds and, by tag, where each family's lives; the union holds all."""
    assert KIND_TAGS == tuple(KINDS) and set(SHARED_KINDS) == {"full", "sliding", "chunked", "mla", "mamba", "gdn",
                                                                "mlp"}
    assert layer_class("dsv4_compressed") is DeepseekV4Compressed and layer_class("msa") is BlockSparseAttention


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_in_the_registry_is_a_layer_kind(kind):
    group = ONE_OF_EACH[kind]
    assert type(group) is layer_class(kind) and group.kind == kind
    assert isinstance(group, LayerKind)


def test_the_decompressed_comparison_is_a_layer_kind_but_not_a_yaml_kind():
    assert isinstance(DECOMPRESSED, DecompressedAttention) and isinstance(DECOMPRESSED, LayerKind)
    assert DECOMPRESSED.kind not in KINDS


def test_an_unknown_kind_is_one_line_naming_the_known_ones():
    with pytest.raises(SpecError) as err:
        layer_class("linear")
    assert str(err.value) == ("unknown layer kind 'linear'; known kinds: "
                              "full, sliding, chunked, mla, mamba, gdn, mlp, shared_kv, cross, lightning, dsv4_swa, dsv4_compressed, "
                              "msa")


# --- per token, per request, per page -----------------------------------------------------------------

@pytest.mark.parametrize("kind, per_token, held, state, page", [
    ("full", 2 * 8 * 128 * 2, 100_000, 0, 16 * 4_096),  # K,V x 8 heads x 128 x 2 B = 4,096 B
    ("sliding", 2 * 16 * 128 * 2, 1_024, 0, 16 * 8_192),  # min(100,000, window 1,024)
    ("chunked", 2 * 8 * 128 * 2, 8_192, 0, 16 * 4_096),  # min(100,000, chunk 8,192)
    ("mla", (512 + 64) * 2, 100_000, 0, 16 * 1_152),  # latent + rope, whole on every rank
    ("mamba", 0, 0, 1_079_296 * 2, 1_079_296 * 2),  # conv 10,240 x 3 + ssm 8,192 x 128 elements; one page
    ("gdn", 0, 0, 548_864 * 2, 548_864 * 2),  # conv 8,192 x 3 + recurrent 32 x 128 x 128 elements
    ("mlp", 0, 0, 0, 0),
    ("shared_kv", 0, 0, 0, 0),  # reads layer 13's cache: no byte, token or page of its own
    ("cross", 2 * 8 * 128 * 2, 6_404, 0, 16 * 4_096),  # as full attention, but the vision tokens whatever ctx
    ("lightning", 0, 0, 1_048_576 * 2, 1_048_576 * 2),  # 64 heads x 128 x 128 elements; one page
    ("msa", 2 * 4 * 128 * 2 + 128 * 2, 100_000, 0, 16 * 2_304),  # K,V + a bf16 index key; every token
])
def test_bytes_per_token_tokens_held_state_and_page(kind, per_token, held, state, page):
    group = ONE_OF_EACH[kind]
    assert group.kv_bytes_per_token(BF16) == per_token
    assert group.cached_tokens(100_000) == held
    assert group.state_bytes(1, 2) == state
    assert group.page_size_bytes(block_size=16, kv_format=BF16, state_dtype_bytes=2) == page


def test_bytes_per_token_split_by_tp_and_the_indexer_in_its_own_format():
    assert LLAMA3_FULL.kv_bytes_per_token(BF16, tp=4) == 2 * 2 * 128 * 2  # 8 heads / TP 4 = 2 heads
    assert LLAMA3_FULL.kv_bytes_per_token(BF16, tp=16) == 2 * 1 * 128 * 2  # beyond 8: one replica a rank
    assert DEEPSEEK_MLA.kv_bytes_per_token(BF16, tp=8) == 1_152  # the latent is not split
    dsa = DEEPSEEK_MLA.model_copy(update={"index_head_dim": 128})
    # fp8 latent with its scales and a bf16 RoPE key, 512 + 4 x 4 + 64 x 2 = 656 B, + indexer 128 fp8 values
    # + one fp32 scale per 128 = 132 B; a dense MLA layer's fp8 latent is 576 B
    assert dsa.fixed_bytes_per_token() == 132 and dsa.kv_bytes_per_token(FP8) == 656 + 132
    assert DEEPSEEK_MLA.kv_bytes_per_token(FP8) == 576


# --- at engine start-up: vLLM V1's max_memory_usage_bytes ----------------------------------------------

def test_full_attention_holds_max_model_len():
    # cdiv(131,072, 16) = 8,192 pages x 16 x 4,096 B = 536,870,912 B (512 MiB)
    assert max_pages(LLAMA3_FULL, 131_072) == 8_192
    assert max_bytes(LLAMA3_FULL, 131_072) == 8_192 * 65_536 == 536_870_912


@pytest.mark.parametrize("max_model_len, pages", [(8_192, 512), (8_193, 513), (8_191, 512)])
def test_full_attention_pages_round_up(max_model_len, pages):
    # an exact block multiple, one over (a page more), one under (the same pages)
    assert max_pages(LLAMA3_FULL, max_model_len, max_num_batched_tokens=2_048) == pages


def test_sliding_window_holds_the_window_and_a_prefill_chunk_plus_one_page():
    # min(1,024 - 1 + 8,192, 131,072) = 9,215 tokens; cdiv(9,215, 16) = 576 (576 x 16 = 9,216);
    # + 1 page because the window need not start on a page boundary: 577 pages
    assert max_pages(GEMMA3_SLIDING, 131_072) == 576 + 1 == 577
    # a page: 16 tokens x 2 (K,V) x 16 heads x 128 x 2 B = 131,072 B
    assert max_bytes(GEMMA3_SLIDING, 131_072) == 577 * 131_072 == 75_628_544


def test_sliding_window_is_capped_by_max_model_len():
    # min(1,023 + 8,192, 4,096) = 4,096 tokens -> 256 pages + 1 = 257
    assert max_pages(GEMMA3_SLIDING, 4_096) == 257
    # a window that ends on a page boundary still gets the extra page: min(1,023 + 1, 10**6) = 1,024 -> 64 + 1
    assert max_pages(GEMMA3_SLIDING, 10**6, max_num_batched_tokens=1) == 65


def test_chunked_local_attention_holds_a_chunk_and_a_prefill_chunk_without_the_extra_page():
    # min(8,192 + 8,192, 131,072) = 16,384 tokens -> 1,024 pages of 16 x 4,096 B = 67,108,864 B
    assert max_pages(SCOUT_CHUNKED, 131_072) == 1_024
    assert max_bytes(SCOUT_CHUNKED, 131_072) == 1_024 * 65_536 == 67_108_864
    # min(16,384, 10,000) = 10,000 tokens -> cdiv(10,000, 16) = 625 pages (625 x 16 = 10,000 exactly)
    assert max_pages(SCOUT_CHUNKED, 10_000) == 625


def test_mla_holds_max_model_len_of_latents():
    # cdiv(163,840, 16) = 10,240 pages x 16 x 1,152 B = 188,743,680 B; fp8 halves the latent
    assert max_bytes(DEEPSEEK_MLA, 163_840) == 10_240 * 18_432 == 188_743_680
    assert max_bytes(DEEPSEEK_MLA, 163_840, fmt=FP8) == 10_240 * 16 * 576


def test_a_state_is_one_page_whatever_the_length_and_an_mlp_block_needs_nothing():
    # vLLM MambaSpec (mamba_cache_mode none): page_size_bytes x 1
    for max_model_len in (1, 131_072, 10**6):
        assert max_bytes(NEMOTRON_MAMBA, max_model_len) == 1_079_296 * 2 == 2_158_592
        assert max_bytes(QWEN3_NEXT_GDN, max_model_len) == 548_864 * 2 == 1_097_728
        assert max_bytes(MLP_BLOCK, max_model_len) == 0
        assert max_bytes(SHARED_KV, max_model_len) == 0  # no KV cache spec in vLLM: nothing at start-up
        assert max_bytes(MINIMAX_LIGHTNING, max_model_len) == 64 * 128 * 128 * 2 == 2_097_152
    # at TP 2 the Gated DeltaNet state halves: (12,288 + 262,144) x 2 B
    assert max_bytes(QWEN3_NEXT_GDN, 4_096, tp=2) == (12_288 + 262_144) * 2
    # and the lightning state: 64 / 8 = 8 heads x 128 x 128 x 2 B = 262,144 B at TP 8
    assert max_bytes(MINIMAX_LIGHTNING, 4_096, tp=8) == 8 * 128 * 128 * 2 == 262_144


def test_a_parallel_mamba_group_answers_as_a_mamba_group_and_says_where_it_runs():
    """The flag changes the layer count (ModelSpec), not the bytes: conv (1,536 + 2 x 1 x 128) x 3 =
    5,376 + ssm 1,536 x 128 = 196,608 elements, one page of 201,984 x 2 B whatever the length."""
    assert FALCON_H1_MAMBA.state_elements() == 5_376 + 196_608 == 201_984
    assert max_bytes(FALCON_H1_MAMBA, 16_384) == max_bytes(FALCON_H1_MAMBA.model_copy(update={"parallel": False}),
                                                           16_384) == 403_968
    assert layer_text.describe(FALCON_H1_MAMBA) == "d_inner 1536, state 128, conv 4, 1 groups, beside attention"
    assert "beside" not in layer_text.describe(NEMOTRON_MAMBA)


# --- what calculators outside specs ask instead of a kind's name --------------------------------------

@pytest.mark.parametrize("kind, attention, shape, layout", [
    ("full", True, AttentionShape(32, 8, 128, 128), (8, 128)),
    ("sliding", True, AttentionShape(32, 16, 128, 128), (16, 128)),
    ("chunked", True, AttentionShape(32, 8, 128, 128), (8, 128)),
    ("mla", True, AttentionShape(128, 128, 128 + 64, 128), None),  # prefill runs decompressed
    ("mamba", False, None, None),
    ("gdn", False, None, None),
    ("mlp", False, None, None),
    ("shared_kv", True, AttentionShape(32, 1, 256, 256), None),  # attends over its target's cache
    ("cross", True, AttentionShape(32, 8, 128, 128), (8, 128)),
    ("lightning", False, None, None),
    ("msa", True, AttentionShape(32, 4, 128, 128), None),  # the page holds index keys beside K and V
])
def test_attention_shape_and_page_layout(kind, attention, shape, layout):
    group = ONE_OF_EACH[kind]
    assert group.is_attention is attention
    assert group.prefill_attention_shape(32) == shape
    assert group.kv_page_layout() == layout


def test_prefill_flops_per_pair_follow_the_shape():
    assert LLAMA3_FULL.prefill_flops_per_pair(32) == 2 * 32 * (128 + 128)  # QK and PV, 2 FLOPs each
    assert DEEPSEEK_MLA.prefill_flops_per_pair() == 2 * 128 * (192 + 128)
    assert DECOMPRESSED.prefill_flops_per_pair() == 2 * 128 * (192 + 128)
    assert NEMOTRON_MAMBA.prefill_flops_per_pair(32) == 0


# --- texts: one per class, none missing -----------------------------------------------------------------

@pytest.mark.parametrize("group", [*ONE_OF_EACH.values(), DECOMPRESSED], ids=lambda g: g.kind)
def test_every_kind_has_every_text(group):
    for text in layer_text.TEXTS:
        assert type(group) in text.registry
    assert layer_text.describe(group) and layer_text.held_formula(group, 10)
    assert layer_text.elements_formula(group, 2) and layer_text.state_formula(group, 2)


def test_texts_without_state_say_so_and_an_unknown_class_fails_loudly():
    assert layer_text.state_formula(LLAMA3_FULL) == "no per-request state"
    assert layer_text.state_formula(QWEN3_NEXT_GDN) == ("conv 8,192 x (4 - 1) + recurrent 32 x 128 x 128 "
                                                        "= 548,864 elements")
    with pytest.raises(TypeError, match="no describe text for layer class object"):
        layer_text.describe(object())
