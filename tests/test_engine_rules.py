"""Each engine rule of the release presets, derived by hand (the arithmetic beside each assert), and
where a public log measures the term, against it (tests/fixtures/engine_logs/)."""

from __future__ import annotations

import pytest

from conftest import make_model
from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.weights import pp_layers
from kvplan.specs.engines.base import BatchLimits, Replica, comm_buffers
from kvplan.specs.engines.registry import engine
from kvplan.units import GIB, MIB


def extras(budget, what: str = "") -> int:
    """What the budget's weights hold beyond the parameters (the formula's '+ N B (what)' parts), those
    naming `what` where it is given."""
    formula = next(step.formula for step in budget.explain if step.label == "weights")
    return sum(int(part.split(" B")[0].replace(",", "")) for part in formula.split(" + ")[1:] if what in part)


# --- the dummy sampler and the forward pass ----------------------------------------------------------

@pytest.mark.parametrize("spec, per_logit", [
    ("vllm==0.10", 38), ("vllm==0.11", 38), ("vllm==0.13", 38),  # the PyTorch sort
    ("vllm==0.19", 14), ("vllm==0.20", 14),  # the Triton kernel
    ("vllm==0.21", 10), ("vllm==0.34", 10),  # FlashInfer, installed and on by default
])
def test_the_sampler_peak_follows_the_vocabulary_and_max_num_seqs(catalog, spec, per_logit):
    """Qwen3-4B on an H100 (1,024 sequences, 8,192 batched tokens): rows x 151,936 vocabulary entries x the
    release's bytes a logit, plus the batch's hidden states (8,192 x 2,560 x 2 B = 41,943,040 B)."""
    b = memory_budget(catalog.model("qwen3-4b"), catalog.gpu("h100"), BudgetInputs(engine=spec))
    assert b.activation_bytes == 1_024 * 151_936 * per_logit + 41_943_040


def test_the_sort_path_is_what_a_0_10_log_measures(catalog):
    """vLLM 0.10.2 on an H100, Qwen3-4B at its defaults, 'FlashInfer is not available': the profile's
    torch peak is 5.59 GiB; 1,024 x 151,936 x 38 + 41,943,040 = 5,954,076,672 B = 5.545 GiB (0.8% under)."""
    b = memory_budget(catalog.model("qwen3-4b"), catalog.gpu("h100"), BudgetInputs(engine="vllm==0.10.2"))
    assert b.activation_bytes == 5_954_076_672 and abs(b.activation_bytes / GIB / 5.59 - 1) < 0.01


def test_the_sampler_does_not_shrink_with_tp_and_doubles_for_fp32(catalog):
    model, h100 = catalog.model("llama3-8b"), catalog.gpu("h100")
    one = memory_budget(model, h100, BudgetInputs(engine="vllm==0.19"))
    four = memory_budget(model, h100, BudgetInputs(engine="vllm==0.19", tp=4))
    assert one.activation_bytes == four.activation_bytes == 1_024 * 128_256 * 14 + 8_192 * 4_096 * 2
    fp32 = memory_budget(model, h100, BudgetInputs(engine="vllm==0.19", weights_dtype="fp32"))
    # 28 B a logit; the hidden states in fp32 too: 8,192 x 4,096 x 4
    assert fp32.activation_bytes == 1_024 * 128_256 * 28 + 8_192 * 4_096 * 4


def test_flashinfer_where_the_deployment_has_it(catalog):
    model, h100 = catalog.model("llama3-8b"), catalog.gpu("h100")
    flashinfer = memory_budget(model, h100, BudgetInputs(engine="vllm==0.10", sampler="flashinfer"))
    assert flashinfer.activation_bytes == 1_024 * 128_256 * 10 + 8_192 * 4_096 * 2
    # a V100 (compute capability 7.0) runs no FlashInfer kernel: the PyTorch sort, asked or not
    v100 = memory_budget(model, catalog.gpu("v100"), BudgetInputs(engine="vllm==0.34", sampler="flashinfer"))
    assert v100.activation_source.endswith("(Triton top-k/top-p)")


def test_few_sequences_leave_the_forward_pass_as_the_peak(catalog):
    """--max-num-seqs 1 on an RTX 4090 (2,048 batched tokens), Qwen2.5-3B in fp16: the forward pass,
    3 x 2,048 x 2,048 x 2 + 3 x 2,048 x 11,008 x 2 = 160,432,128 B = 0.149 GiB; the log (0.10.2) says 0.17."""
    b = memory_budget(catalog.model("qwen2.5-3b"), catalog.gpu("rtx-4090"),
                      BudgetInputs(engine="vllm==0.10.2", max_num_seqs=1, weights_dtype="fp16"))
    assert b.activation_bytes == 3 * 2_048 * 2_048 * 2 + 3 * 2_048 * 11_008 * 2 == 160_432_128


def test_v0_profiles_a_batch_of_max_model_len_tokens(catalog):
    """vLLM V0 (0.6.4) on an RTX 3090, Llama-3.1-8B, no chunked prefill below 32K: the profile batch is
    max_model_len tokens. The logs' torch peaks less the 14.99 GiB of weights: 2.07 GiB at 20,000 and
    2.99 GiB at 29,000; the forward pass, 3 x tokens x (4,096 + 14,336) x 2 B: 2.060 and 2.987 GiB."""
    model, gpu = catalog.model("llama3.1-8b"), catalog.gpu("rtx-3090")
    for tokens, logged in ((20_000, 2.07), (29_000, 2.99)):
        b = memory_budget(model, gpu, BudgetInputs(engine="vllm==0.6", max_model_len=tokens))
        assert b.max_num_batched_tokens == tokens and not b.chunked_prefill
        assert b.activation_bytes == 3 * tokens * 18_432 * 2 and abs(b.activation_bytes / GIB - logged) < 0.015
    long = memory_budget(model, gpu, BudgetInputs(engine="vllm==0.6", max_model_len=65_536))
    assert long.chunked_prefill and long.max_num_batched_tokens == 512  # past 32K: chunks of 512


def test_without_chunked_prefill_a_step_holds_a_whole_prompt(catalog):
    model, h100 = catalog.model("llama3-8b"), catalog.gpu("h100")
    b = memory_budget(model, h100, BudgetInputs(chunked_prefill=False))
    assert b.max_num_batched_tokens == 8_192 and not b.start_refusal  # max(8,192, max_model_len 8,192)
    refused = memory_budget(model, h100, BudgetInputs(chunked_prefill=False, max_num_batched_tokens=4_096))
    assert "without chunked prefill max_num_batched_tokens (4,096) must be at least max_model_len (8,192)" \
        in refused.start_refusal


# --- what vLLM loads beside the weights ----------------------------------------------------------------

def test_the_rope_table_is_on_every_gpu():
    """A Llama-4-Scout-Instruct config derives 10,485,760 positions: 10,485,760 x 128 x 2 B = 2.5 GiB a GPU,
    whatever the TP (rotary_embedding get_rope: one table per distinct rope)."""
    scout = make_model(max_context=10_485_760)
    for tp in (1, 8):
        b = memory_budget(scout, None, BudgetInputs(tp=tp, gpu_mem_bytes=200 * GIB))
        assert extras(b, "RoPE") == 10_485_760 * 128 * 2 == int(2.5 * GIB)
    # Gemma-3's local and global ropes are two tables: 2 x 131,072 x 128 x 2 B for Gemma-3-27B
    gemma = make_model(family="gemma3", max_context=131_072)
    assert extras(memory_budget(gemma, None, BudgetInputs(gpu_mem_bytes=80 * GIB)), "RoPE") == 2 * 131_072 * 128 * 2


def test_the_allocator_keeps_block_tails_and_tp_keeps_some_tensors_whole(catalog):
    """vLLM's 'Model loading took' is allocated bytes, and PyTorch counts a tensor of 10 MiB or more as
    its 2 MiB-rounded block when the tail is 1 MiB or less (vllm_alloc.py). Against the fixture logs,
    4 decimals each: Qwen2-7B (0.10.1.1, A100) 14.2488 GiB at TP 1, 7.1217 at TP 2; Qwen3-4B (0.10.2,
    H100) 7.5552; Qwen3-30B-A3B (0.12.0, H100) 28.4571 at TP 2 -- each now within 0.5 MiB of the log."""
    from kvplan.specs.engines.base import Replica
    from kvplan.specs.engines.vllm_alloc import loaded_extras, tail

    assert (tail(31 * MIB + MIB // 2), tail(24 * MIB + MIB // 2), tail(9 * MIB + MIB // 2)) == (MIB // 2, 0, 0)
    qwen2 = catalog.model("qwen2-7b-instruct")
    # TP 1, a layer: qkv 3,584 x (28 + 2 x 4) x 128 x 2 B = 31.5 MiB -> +0.5; o 24.5 MiB: its 1.5 MiB tail
    # is split off; gate_up 2 x 18,944 x 3,584 x 2 B = 259 MiB -> +1; down 129.5 -> +0.5: 2 MiB x 28
    # layers; embedding and LM head 152,064 x 3,584 x 2 B = 1,039.5 MiB each -> +0.5 x 2: 57 MiB
    assert loaded_extras(qwen2, Replica(None, 1)) == [(57 * MIB, "allocator block tails")]
    # TP 2: qkv 15.75 -> +0.25, o 12.25 -> 0, gate_up 129.5 -> +0.5, down 64.75 -> 0: 0.75 x 28 = 21;
    # the embeddings 519.75 -> +0.25 x 2: 21.5 MiB; the norms whole: (2 x 28 + 1) x 3,584 x 2 B / 2 = 204,288 B
    assert loaded_extras(qwen2, Replica(None, 2)) == [(21 * MIB + MIB // 2, "allocator block tails"),
                                                      (204_288, "tensors TP 2 does not split")]
    # Qwen3-30B-A3B at TP 2: no tails; the router 128 x 2,048 x 2 B = 512 KiB a layer, whole: 48 x 256 KiB
    # beyond half, + the norms (2 x 48 + 1) x 2,048 x 2 B / 2 = 198,656 B
    moe = loaded_extras(catalog.model("qwen3-30b-a3b"), Replica(None, 2))
    assert moe == [(48 * 256 * 1024 + 198_656, "tensors TP 2 does not split")] and moe[0][0] == 12_781_568
    # Llama-3-8B: every tensor a whole number of 2 MiB (qkv 48 MiB, o 32, gate_up 224, down 112, embedding
    # 1,002): nothing, as its logs show (14.9596 GiB against kvplan's 14.959)
    assert loaded_extras(catalog.model("llama3-8b"), Replica(None, 1)) == []
    # Qwen3-235B-A22B-FP8 at TP 8: 4 KV heads, so each rank holds one: 94 x 2 x (8 - 4) x 128 x 4,096 x 1 B / 8
    # = 49,283,072 B; the bf16 router whole: 94 x 128 x 4,096 x 2 B x 7/8 = 86,245,376; norms 663,552
    fp8 = loaded_extras(catalog.model("qwen3-235b-a22b-fp8"), Replica(None, 8))
    assert fp8 == [(49_283_072 + 86_245_376 + (2 * 94 + 1) * 4_096 * 2 * 7 // 8, "tensors TP 8 does not split")]
    for model, tp, gpu, logged in (("qwen2-7b-instruct", 1, "a100-80gb-sxm", 14.2488),
                                   ("qwen2-7b-instruct", 2, "a100-80gb-sxm", 7.1217),
                                   ("qwen3-4b", 1, "h100", 7.5552), ("qwen3-30b-a3b", 2, "h100", 28.4571)):
        b = memory_budget(catalog.model(model), catalog.gpu(gpu), BudgetInputs(tp=tp))
        assert abs(b.weights_bytes - logged * GIB) < MIB // 2, model  # was 12-58 MiB under; the rest: Attention's
        # fp32 scale scalars (7 x 512 B a layer) and the log's 4th decimal


@pytest.mark.parametrize("gpu, padding", [
    # Hopper, Triton kernels: the width 2,880 / 4 = 720 -> 768; 3 x (768 - 720) x 2,880 = 414,720 elements an
    # expert, x 128 experts x 36 layers = 1,911,029,760, x 17/32 B = 1,015,234,560 B
    ("h100", 1_015_234_560),
    # Ampere (Marlin) and Blackwell (FlashInfer): 720 -> 768 and the hidden 2,880 -> 3,072:
    # 3 x (768 x 3,072 - 720 x 2,880) = 857,088 x 128 x 36 = 3,949,461,504 x 17 / 32 = 2,098,151,424 B
    ("a100-80gb-sxm", 2_098_151_424), ("b200", 2_098_151_424),
])
def test_mxfp4_experts_are_padded_for_the_moe_kernel(catalog, gpu, padding):
    b = memory_budget(catalog.model("gpt-oss-120b"), catalog.gpu(gpu), BudgetInputs(tp=4))
    rope = 131_072 * 64 * 2  # and gpt-oss's RoPE table: 131,072 positions x 64 x 2 B
    assert extras(b) == rope + padding


def test_gpt_oss_120b_weights_as_a_0_10_log_counts_them(catalog):
    """vLLM 0.10.1 on A100s at TP 4 logs 'Model loading took 17.2217 GiB': the checkpoint / 4
    (16,312,203,936 B) + the Marlin padding + the RoPE table = 18,427,132,576 B = 17.162 GiB (0.35% under)."""
    b = memory_budget(catalog.model("gpt-oss-120b"), catalog.gpu("a100-80gb-sxm"),
                      BudgetInputs(engine="vllm==0.10.1", tp=4))
    assert b.weights_bytes == 65_248_815_744 // 4 + 2_098_151_424 + 16_777_216 == 18_427_132_576
    assert abs(b.weights_bytes / GIB / 17.2217 - 1) < 0.005


# --- communication buffers and CUDA graphs ---------------------------------------------------------------

def test_nvlink_sharp_buffers_only_for_a_tp_group_on_nvswitch(catalog):
    """NCCL 0.12 GiB (128,849,019 B) where ranks talk; 1.85 GiB in all (1,986,422,374 B) for a TP group on
    NVSwitch of NVLink 4 or later. A pipeline's sends register no NVLink SHARP buffers."""
    h100, pcie, a100 = catalog.gpu("h100"), catalog.gpu("h100-pcie"), catalog.gpu("a100-80gb-sxm")
    assert comm_buffers(Replica(h100, tp=1))[0] == 0
    assert comm_buffers(Replica(h100, tp=2))[0] == round(1.85 * GIB) == 1_986_422_374
    assert comm_buffers(Replica(h100, pp=2))[0] == comm_buffers(Replica(pcie, tp=2))[0] == 128_849_019
    assert comm_buffers(Replica(a100, tp=8))[0] == 128_849_019  # NVSwitch of Ampere's generation: no NVLS


@pytest.mark.parametrize("seqs, tokens, sizes", [
    (1_024, 8_192, (51, 51)),  # up to 512: 1, 2, 4 + 8..248 by 8 (31) + 256..512 by 16 (17) = 51 each
    (256, 2_048, (51, 35)),  # full graphs up to 256: 3 + 31 + 1
    (48, 8_192, (15, 9)),  # piecewise up to 96: 3 + 12; full up to 48: 3 + 6
    (1_024, 64, (11, 11)),  # no graph larger than a step: 3 + 8
])
def test_cuda_graph_capture_sizes(seqs, tokens, sizes):
    assert engine("vllm").cuda_graph_sizes(BatchLimits(tokens, seqs)) == sizes  # type: ignore[attr-defined]


def test_cuda_graphs_join_the_budget_from_0_20(catalog):
    model, h100 = catalog.model("llama3-8b"), catalog.gpu("h100")
    before = memory_budget(model, h100, BudgetInputs(engine="vllm==0.19"))
    after = memory_budget(model, h100, BudgetInputs(engine="vllm==0.20"))
    assert after.overhead_bytes - before.overhead_bytes == 102 * 5 * 2**20  # 51 + 51 sizes x 5 MiB


# --- pages ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, gpu, block", [
    ("vllm==0.10", "h100", 64), ("vllm==0.10", "b200", 128), ("vllm==0.10", "a100", 16),  # FlashMLA, CUTLASS MLA
    ("vllm==0.19", "h100", 16), ("vllm==0.19", "b200", 32), ("vllm", "rtx-5090", 16),  # preferred sizes (0.18 on)
    ("vllm==0.6", "h100", 16),
])
def test_mla_pages_follow_the_kernel_vllm_picks(catalog, spec, gpu, block):
    b = memory_budget(catalog.model("deepseek-v3"), catalog.gpu(gpu), BudgetInputs(engine=spec, tp=8))
    assert b.block_size == block
    dense = memory_budget(catalog.model("llama3-8b"), catalog.gpu(gpu), BudgetInputs(engine=spec))
    assert dense.block_size == 16


def test_the_group_size_ratio_from_0_12():
    """Layer kinds of 10 and 12 layers (12 < 1.25 x 10): to 0.11 groups of 10, 1 + 2 groups and 8 padding
    layers; from 0.12 groups of 12, 1 + 1 groups and 2 padding layers."""
    from kvplan.calc.kv import resolve_kv_format
    from kvplan.calc.kvgroups import kv_groups

    model = make_model(layers=[{"kind": "full", "count": 10, "num_kv_heads": 8, "head_dim": 128},
                               {"kind": "sliding", "count": 12, "num_kv_heads": 8, "head_dim": 128, "window": 4096}])
    fmt = resolve_kv_format(model, "auto")
    old, new = kv_groups(model, fmt, newer_rule=False), kv_groups(model, fmt)
    assert old is not None and (old.group_size, old.groups, old.padding_layers) == (10, 3, 8)
    assert new is not None and (new.group_size, new.groups, new.padding_layers) == (12, 2, 2)
    page = 16 * 2 * 8 * 128 * 2  # one layer's page
    for spec, padding in (("vllm==0.11", 8), ("vllm==0.12", 2)):
        b = memory_budget(model, None, BudgetInputs(engine=spec, gpu_mem_bytes=80 * GIB))
        assert b.padding_layers == padding and b.num_blocks == b.kv_pool_bytes // ((22 + padding) * page)


# --- pipeline stages -------------------------------------------------------------------------------------

def test_the_pipeline_split_is_vllms():
    """get_pp_indices: floor(L / PP) a stage, the remainder one each from the second-last stage back."""
    assert pp_layers(32, 7) == [4, 4, 5, 5, 5, 5, 4]
    assert pp_layers(80, 3) == [27, 27, 26]
    assert pp_layers(61, 4) == [15, 15, 16, 15]
    assert pp_layers(32, 2) == [16, 16]


def test_each_stage_sizes_its_own_pool_and_the_smallest_binds(catalog):
    """Llama-3-8B at PP 2 on an H100: 16 layers each; the first also holds the embedding and the second
    the LM head (128,256 x 4,096 x 2 B = 1,050,673,152 B each), every GPU the RoPE table (2,097,152 B);
    the 32 layers share 16,060,522,496 - 2 x 1,050,673,152 = 13,959,176,192 B: 436,224,256 B a layer.
    The last stage samples (1,380,450,304 B), the first runs the forward pass only (8,192 tokens:
    3 x 8,192 x (4,096 + 14,336) x 2 = 905,969,664 B): the last stage binds."""
    b = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(pp=2))
    stage = 16 * 436_224_256 + 1_050_673_152 + 2_097_152
    assert b.weights_bytes == stage == 8_032_358_400 and b.activation_bytes == 1_380_450_304
    # overhead: non-torch 268,435,456 + NCCL 128,849,019 + CUDA graphs 534,773,760 = 932,058,235
    assert b.kv_pool_bytes == 78_216_094_023 - (stage + 1_380_450_304 + 932_058_235) == 67_871_227_084


# --- SGLang ----------------------------------------------------------------------------------------------

def test_sglang_takes_its_fraction_of_the_memory_free_before_loading(catalog):
    """SGLang's docs log (0.4.1, H100, Llama-3.1-8B): 'avail mem=78.81 GB' before loading, 63.72 after;
    K and V 27.13 GB each. (63.72) - 78.81 x (1 - 0.88) = 54.2628 GB = 27.13 x 2."""
    assert round(63.72 - 78.81 * (1 - 0.88), 2) == round(27.13 * 2, 2)
    b = memory_budget(catalog.model("llama3.1-8b"), catalog.gpu("h100"), BudgetInputs(engine="sglang==0.4.1"))
    # 0.88 x (85,017,493,504 - 554,696,704 CUDA context) - weights (16,060,522,496 + RoPE none in SGLang)
    assert b.util == 0.88 and b.kv_pool_bytes == int(0.88 * (85_017_493_504 - 554_696_704)) - 16_060_522_496
    assert abs(b.token_capacity / 444_500 - 1) < 0.001  # the log's #tokens


def test_a_sparse_attention_latent_in_fp8_carries_its_scales_and_a_bf16_rope(catalog):
    """DeepSeek-V3.2 (DSA) in fp8: 512 latent values + 512 / 128 fp32 scales + 64 RoPE values in bf16 =
    656 B, and the indexer's 128 + 4 = 132 B: 788 B a layer, 61 layers = 48,068 B a token; in bf16 the
    latent stays (512 + 64) x 2 = 1,152 B + 132 = 1,284 B. A dense MLA model's fp8 latent is 576 B."""
    from kvplan.calc.kv import request_bytes, resolve_kv_format

    v32, v3 = catalog.model("deepseek-v3.2-nvfp4"), catalog.model("deepseek-v3")
    assert request_bytes(v32, 1, resolve_kv_format(v32, "fp8")) == 61 * (512 + 16 + 128 + 132) == 48_068
    assert request_bytes(v32, 1, resolve_kv_format(v32, "bf16")) == 61 * (1_152 + 132) == 78_324
    assert request_bytes(v3, 1, resolve_kv_format(v3, "fp8")) == 61 * 576


def test_tensorrt_llm_profiles_max_num_tokens_of_context_requests(catalog):
    """TensorRT-LLM's PyTorch backend: dummy context requests of max_seq_len - 1 tokens fill max_num_tokens
    (8,192): Llama-3.1-8B at 131,072 takes one request: the forward pass 3 x 8,192 x (4,096 + 14,336) x 2 B
    = 905,969,664 B and one row of fp32 logits, 128,256 x 4 B; the pool is 0.9 of what is left."""
    b = memory_budget(catalog.model("llama3.1-8b"), catalog.gpu("h100"), BudgetInputs(engine="trtllm"))
    assert b.activation_bytes == 905_969_664 + 128_256 * 4 == 906_482_688
    assert b.kv_pool_bytes == int(0.9 * (85_017_493_504 - b.weights_bytes - 906_482_688 - b.overhead_bytes))
    short = memory_budget(catalog.model("llama3.1-8b"), catalog.gpu("h100"),
                          BudgetInputs(engine="trtllm", max_model_len=2_049))
    assert short.activation_bytes == 905_969_664 + 4 * 128_256 * 4  # 8,192 / 2,048: four requests


def test_a_hybrid_model_gets_one_page_size(catalog):
    """Qwen3.5-27B: 16 full-attention layers (4 KV heads x 256: 4,096 B a token in bf16) and 48 GDN layers
    whose state, its recurrent part in fp32 as the config's mamba_ssm_dtype says, is 10,240 conv channels
    x 3 x 2 B + 48 x 128 x 128 x 4 B = 61,440 + 3,145,728 = 3,207,168 B. vLLM grows the attention block in
    16s until its page holds the state: 16 x ceil(3,207,168 / (16 x 4,096)) = 16 x 49 = 784 tokens, a page
    of 3,211,264 B, and pads the state's page by 4,096 B (0.13%). In fp8 the attention page halves: 1,568
    tokens. With a bf16 state (1,634,304 B): 16 x ceil(1,634,304 / 65,536) = 400 tokens, 800 in fp8, 0.25%
    padding (a 0.25.1 log of a Qwen3.8-27B sibling says 'Setting attention block size to 800 tokens' and
    'Padding mamba page size by 0.25%'). Releases before the rule (the 0.8 preset) keep 16. vLLM 0.34 on an
    H100 turns prefix caching on ('align') and the GDN layers checkpoint on FlashInfer's prefill, so the
    block is a multiple of 64 (platforms/interface.py _align_hybrid_block_size: lcm(16, 64)):
    64 x ceil(3,207,168 / (64 x 4,096)) = 64 x 13 = 832, and in fp8 64 x ceil(3,207,168 / (64 x 2,048))
    = 64 x 25 = 1,600."""
    model, h100 = catalog.model("qwen3.5-27b"), catalog.gpu("h100")
    bf16 = memory_budget(model, h100, BudgetInputs(engine="vllm==0.25"))
    fp8 = memory_budget(model, h100, BudgetInputs(engine="vllm==0.25", kv_dtype="fp8"))
    assert (bf16.block_size, fp8.block_size) == (784, 1568)
    assert 10_240 * 3 * 2 + 48 * 128 * 128 * 4 == 3_207_168 and 784 * 4_096 - 3_207_168 == 4_096
    assert round(100 * (3_211_264 / 3_207_168 - 1), 2) == 0.13
    gdn = model.layers[1].model_copy(update={"ssm_dtype": "bf16"})
    bf16_state = model.model_copy(update={"layers": [model.layers[0], gdn]})
    assert gdn.kind == "gdn" and [memory_budget(bf16_state, h100, BudgetInputs(engine="vllm==0.25", kv_dtype=kv)
                                                ).block_size for kv in ("auto", "fp8")] == [400, 800]
    assert 400 * 4_096 == 800 * 2_048 == 1_638_400 and round(100 * (1_638_400 / 1_634_304 - 1), 2) == 0.25
    assert memory_budget(model, h100, BudgetInputs(engine="vllm==0.10")).block_size == 16
    newest = [memory_budget(model, h100, BudgetInputs(kv_dtype=kv)).block_size for kv in ("auto", "fp8")]
    assert newest == [832, 1_600] and 13 * 64 * 4_096 >= 3_207_168 > 12 * 64 * 4_096
    off = memory_budget(model, h100, BudgetInputs(prefix_caching=False))  # 'none': no checkpoint, 16s again
    assert off.block_size == 784


# --- TensorRT-LLM's built engines: the C++ runtime's buffers -------------------------------------------

def test_trtllm_runtime_and_decoder_buffers_match_a_logged_pair(catalog):
    """TensorRT-LLM issue #1188 (https://github.com/NVIDIA/TensorRT-LLM/issues/1188, Qwen2.5-Coder-0.5B, an
    engine built with trtllm-build's defaults: max_batch_size 2,048, max_seq_len 32,768) logs 'Allocated
    2.66 GB GPU memory for runtime buffers' and 'Allocated 5.76 GB GPU memory for decoder' ("GB" = GiB):
    runtime 4 x 2,048 x 151,936 (fp32 logits) + 24 x 2,048 x 32,768 = 1,244,659,712 + 1,610,612,736 B
    = 2.659 GiB; decoder 16 x 2,048 x 151,936 + 16 x 2,048 x 32,768 + 65,536 x 2,048 = 4,978,638,848 +
    1,073,741,824 + 134,217,728 B = 5.762 GiB."""
    from kvplan.specs.engines.base import BatchLimits, Replica
    from kvplan.specs.engines.registry import engine

    model = catalog.model("qwen2.5-0.5b")
    trt = engine("trtllm==0.19")
    term = trt.overhead(model, Replica(None, 1, 1, "bf16", 32_768), BatchLimits(8192, 2048))
    buffers = term.value - trt.base_overhead_bytes
    runtime, decoder = 1_244_659_712 + 1_610_612_736, 4_978_638_848 + 1_073_741_824 + 134_217_728
    assert buffers == runtime + decoder
    assert (round(runtime / GIB, 2), round(decoder / GIB, 2)) == (2.66, 5.76)
    # the PyTorch backend (1.0) sizes from a profiling run instead: no such buffers
    assert engine("trtllm").overhead(model, Replica(None, 1, 1, "bf16", 32_768), BatchLimits(8192, 2048)).value \
        == trt.base_overhead_bytes


def test_trtllm_0_12_decoder_also_holds_draft_logits(catalog):
    """0.9 to 0.13's GptDecoderBatch::setup reshapes fp32 draft logits [B, V] whatever the decoding mode; 0.14
    drops them. benchmarks/Suite.md's 0.12.0.dev2024073000 log (GPT-J-6B, V 50,400, B 4,096, S 4,098) prints
    'Allocated 1.14 GB GPU memory for runtime buffers' and '4.35 GB ... for decoder' ("GB" = GiB):
    runtime 4 x 4,096 x 50,400 + 24 x 4,096 x 4,098 = 825,753,600 + 402,849,792 = 1,228,603,392 B = 1.144 GiB;
    decoder 20 x 4,096 x 50,400 + 16 x 4,096 x 4,098 + 65,536 x 4,096 = 4,128,768,000 + 268,566,528 +
    268,435,456 = 4,665,769,984 B = 4.345 GiB. Without the draft logits (0.14 on) the decoder would print 3.58."""
    from kvplan.specs.engines.base import BatchLimits, Replica
    from kvplan.specs.engines.registry import engine

    model = catalog.model("gpt-j-6b")
    replica, limits = Replica(None, 1, 1, "fp16", 4098), BatchLimits(8192, 4096)
    old, new = engine("trtllm==0.12.0"), engine("trtllm==0.14.0")
    assert (old.key, new.key, engine("trtllm==0.13.1").key) == ("trtllm==0.12", "trtllm==0.19", "trtllm==0.12")
    runtime, decoder = 825_753_600 + 402_849_792, 4_128_768_000 + 268_566_528 + 268_435_456
    assert old.overhead(model, replica, limits).value - old.base_overhead_bytes == runtime + decoder
    assert (round(runtime / GIB, 2), round(decoder / GIB, 2)) == (1.14, 4.35)
    assert old.overhead(model, replica, limits).value - new.overhead(model, replica, limits).value == 4 * 4096 * 50_400
    assert round((decoder - 4 * 4096 * 50_400) / GIB, 2) == 3.58


def test_non_torch_memory_by_release():
    """As each release logs it: V0 (0.6.4, an RTX 3090) 'non_torch_memory=0.35GiB'; 0.10.2 on an H100 '0.07 GiB
    for non-torch memory' (0.8 to 0.17); 0.18-0.19 on an H100 'non-torch forward increase memory: 0.25GiB'."""
    from kvplan.specs.engines.registry import engine

    assert [engine(key).base_overhead_bytes for key in ("vllm==0.6", "vllm==0.8", "vllm==0.15", "vllm==0.19")] == [
        round(0.35 * GIB), round(0.07 * GIB), round(0.07 * GIB), GIB // 4]


def test_v0_from_0_7_counts_non_torch_memory_from_a_snapshot(catalog):
    """0.7.0's memory profile (utils.py MemorySnapshot) counts the growth outside torch since the worker
    started: 0.05 GiB on a T4 (0.7.2 and 0.8.2's V0 log it), where 0.6 counted 0.35 GiB. Llama-3.2-3B on a
    T4 (CUDA total 15,095 MiB = 14.74 GiB), fp16, max_model_len 2,048 at 0.8938626 (the 0.8.2 fixture): the
    two rules differ by 0.30 GiB of pool, 0.30 GiB / (28 x 2 x 8 x 128 x 2 B = 114,688 B) = 2,808 tokens."""
    assert engine("vllm==0.7").base_overhead_bytes == round(0.05 * GIB) == 53_687_091
    assert engine("vllm==0.6").base_overhead_bytes == round(0.35 * GIB)
    assert engine("vllm==0.7.3").key == "vllm==0.7"
    t4 = catalog.gpu("t4")
    assert t4.cuda_total_bytes == 15_095 * MIB and round(t4.cuda_total_bytes / GIB, 2) == 14.74
    model = catalog.model("llama3.2-3b")
    inputs = dict(max_model_len=2048, util=0.8938626454842437, max_num_seqs=192, max_num_batched_tokens=2048,
                  weights_dtype="fp16")
    old = memory_budget(model, t4, BudgetInputs(engine="vllm==0.6", **inputs))
    new = memory_budget(model, t4, BudgetInputs(engine="vllm==0.7", **inputs))
    assert new.usable_pool_bytes - old.usable_pool_bytes == round(0.35 * GIB) - round(0.05 * GIB)
    assert (new.usable_pool_bytes - old.usable_pool_bytes) // 114_688 == 2_808


def test_sglang_0_3_keeps_0_83_at_eight_gpus():
    """server_args before 0.4's GPU-memory tiers: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.83 at 8, 0.79 at 16
    (0.3.0 to 0.3.5); 0.3.6 has 0.82 at 8, 0.4 lowered it to 0.81."""
    assert [engine("sglang==0.3.4").default_util(None, tp, 1) for tp in (1, 2, 4, 8, 16)] == [0.88, 0.87, 0.85, 0.83, 0.79]
    assert engine("sglang==0.3.6").default_util(None, 8, 1) == 0.82
    assert engine("sglang==0.4.3").default_util(None, 8, 1) == 0.81


def test_qwen3_5_profiles_its_encoder_over_one_largest_image(catalog):
    """Qwen3.5 ships Qwen3-VL's processor: one image of 4,096^2 pixels = (4,096 / 16)^2 = 65,536 patches of
    16 px, merged 2 x 2 into 16,384 tokens, the budget a 0.19 log states ('budget of 16384 tokens, and
    profiled with 1 image items'). Its tower is 27 blocks of 1,152 (MLP 4,304, not gated), no deepstack."""
    model = catalog.model("qwen3.5-9b")
    assert model.vision is not None and (model.vision.patch_size, model.vision.hidden_size, model.vision.deepstack_layers,
                                         model.vision.out_hidden_size) == (16, 1152, 0, 4096)
    budget = memory_budget(model, catalog.gpu("l40s"), BudgetInputs(engine="vllm==0.19.0"))
    assert budget.activation_source.startswith("multimodal encoder over 1 image of 16,384 tokens")
    assert (4096 // 16) ** 2 == 65_536 and 65_536 // 4 == 16_384
