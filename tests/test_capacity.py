"""Capacity: the memory budget of each engine, the strategies of source note 001, vLLM's own
log reproduced, TP/PP/MoE/MLA cases by hand, and invariants."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.specs.engines.base import forward_pass_peak as activation_estimate
from kvplan.calc.capacity import Workload, batch_capacity, doubling_capacity, max_context, overview
from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.fit import fit
from kvplan.calc.plan import plan
from kvplan.calc.weights import weights_bytes
from kvplan.cli import main
from kvplan.units import GIB, MIB

NOTE_001 = BudgetInputs(engine="raw", gpu_mem_bytes=80 * GIB, weights_bytes=16 * GIB)


# --- source note 001, under its own assumptions ------------------------------------------------

@pytest.mark.parametrize("out, per_request_mib, fits", [
    (1024, 192, 341),  # (1024 + 1024/2) x 128 KiB = 192 MiB; 64 GiB / 192 MiB = 341.3
    (4096, 384, 170),  # (1024 + 4096/2) x 128 KiB = 384 MiB; 64 GiB / 384 MiB = 170.7
])
def test_note_001_llama3_8b_on_80gb(catalog, out, per_request_mib, fits):
    r = batch_capacity(catalog.model("llama3-8b"), catalog.gpu("h100"), Workload(1024, out), NOTE_001)
    assert r.budget.kv_pool_bytes == 64 * GIB
    paged = r.strategies[-1]
    assert paged.bytes_per_request_avg == per_request_mib * MIB
    assert paged.concurrency_avg == fits


def test_note_001_is_one_flag_set_away(capsys):
    argv = ["batch", "llama3-8b", "--gpu", "h100", "--engine", "raw", "--gpu-mem", "80", "--weights-gib", "16",
            "--in", "1024", "--out", "1024", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    paged = data["strategies"][-1]
    assert (paged["strategy"], paged["bytes_per_request_avg"], paged["concurrency_avg"]) == ("paged", 192 * MIB, 341)
    assert data["default_engine_paged"]["concurrency_avg"] < 341  # the realistic default, shown beside it


def test_note_001_compute_bound_batch(catalog):
    # 1000 TFLOPS / 3.0 TB/s with 2 B and 2 FLOPs per parameter: 1e15 x 2 / (2 x 3e12) = 333
    r = batch_capacity(catalog.model("llama3-8b"), catalog.gpu("h100"), Workload(1024, 1024), BudgetInputs(),
                       peak_tflops=1000, hbm_gbps=3000)
    assert r.roofline.compute_bound_batch == 333
    # the datasheet figures: 989.4 TFLOPS / 3,350 GB/s = 295
    r = batch_capacity(catalog.model("llama3-8b"), catalog.gpu("h100"), Workload(1024, 1024))
    assert r.roofline.compute_bound_batch == 295
    assert r.roofline.peak_source == "h100-sxm dense BF16 datasheet peak"


def test_strategies_by_hand(catalog):
    r = batch_capacity(catalog.model("llama3-8b"), catalog.gpu("h100"), Workload(1000, 500, max_len=8192), NOTE_001)
    fixed, doubling, paged = r.strategies
    # average 1,250 tokens, peak 1,500
    assert fixed.bytes_per_request_avg == 8192 * 131_072 and fixed.concurrency_avg == 64
    assert doubling.reserved_tokens_avg == 2048 and doubling.reserved_tokens_peak == 2048  # 16 -> ... -> 2048
    assert paged.reserved_tokens_avg == 1264 and paged.reserved_tokens_peak == 1504  # ceil to 16
    assert paged.concurrency_avg == 64 * GIB // (79 * 16 * 131_072)  # 79 pages of 2 MiB: 414


@pytest.mark.parametrize("tokens, capacity", [(1, 16), (16, 16), (17, 32), (1536, 2048), (2048, 2048), (2049, 4096)])
def test_doubling_capacity(tokens, capacity):
    assert doubling_capacity(tokens, 16) == capacity


# --- vLLM's own log, reproduced --------------------------------------------------------------------

LOGGED = dict(total=79.19, util=0.95, weights=14.99, activation=1.89, non_torch=0.25)  # GiB, 2 decimals


def _vllm_from_log(catalog, delta: float):
    """The budget with every logged figure moved by `delta` GiB in the direction that grows the pool."""
    inputs = BudgetInputs(util=LOGGED["util"], gpu_mem_bytes=round((LOGGED["total"] + delta) * GIB),
                          weights_bytes=round((LOGGED["weights"] - delta) * GIB),
                          activation_bytes=round((LOGGED["activation"] - delta) * GIB),
                          overhead_bytes=round((LOGGED["non_torch"] - delta) * GIB))
    return batch_capacity(catalog.model("llama3.1-8b"), catalog.gpu("h100"), Workload(8192, 0, 8192), inputs)


def test_vllm_log_reproduced_within_its_rounding(catalog):
    exact, low, high = (_vllm_from_log(catalog, d) for d in (0.0, -0.005, 0.005))
    # pool = 79.19 x 0.95 - (14.99 + 1.89 + 0.25) = 58.1005 GiB; the log prints 58.11
    assert round(exact.budget.kv_pool_bytes / GIB, 2) == 58.10
    assert low.budget.kv_pool_bytes / GIB <= 58.11 <= high.budget.kv_pool_bytes / GIB
    # 16-token pages of 32 x 2 x 8 x 128 x 2 B = 2 MiB: 58.1005 GiB holds 29,747 pages = 475,952 tokens
    assert exact.budget.page_bytes == 2 * MIB
    assert exact.budget.token_capacity == 29_747 * 16 == 475_952
    assert low.budget.token_capacity <= 476_016 <= high.budget.token_capacity
    # max concurrency at 8,192 tokens: 476,016 / 8,192 = 58.11x
    assert low.max_concurrency_at_max_len <= 58.11 <= high.max_concurrency_at_max_len


def test_vllm_defaults_land_within_5_percent_of_the_log(catalog):
    r = batch_capacity(catalog.model("llama3.1-8b"), catalog.gpu("h100"), Workload(8192, 0, 8192),
                       BudgetInputs(util=0.95))
    assert abs(r.budget.token_capacity / 476_016 - 1) < 0.05
    assert r.budget.total_bytes == 85_017_493_504  # the H100's CUDA total, measured: 79.18 GiB


def test_vllm_tp2_log_reproduced(catalog):
    """vLLM 0.19, 2 x H100, Llama-3.3-70B FP8, util 0.95: weights 33.88, activation 1.96, non-torch
    2.1 GiB -> 37.28 GiB, 244,304 tokens, 29.82x at 8,192 (examples/engine_logs.md, section 2)."""
    model, gpu = catalog.model("llama3.3-70b"), catalog.gpu("h100")
    logged = BudgetInputs(tp=2, util=0.95, gpu_mem_bytes=round(79.19 * GIB), weights_bytes=round(33.88 * GIB),
                          activation_bytes=round(1.96 * GIB), overhead_bytes=round(2.1 * GIB))
    r = batch_capacity(model, gpu, Workload(8192, 0, 8192), logged)
    # 79.19 x 0.95 - (33.88 + 1.96 + 2.1) = 37.2905 GiB; pages of 16 x 80 x 2 x 4 x 128 x 2 B = 2.5 MiB
    assert r.budget.page_bytes == 16 * 163_840
    # int(85,029,615,043 x 0.95) - (36,378,372,997 + 2,104,533,975 + 2,254,857,830) = 40,040,369,488 B
    assert r.budget.kv_pool_bytes == 80_778_134_290 - (36_378_372_997 + 2_104_533_975 + 2_254_857_830)
    assert r.budget.token_capacity == 40_040_369_488 // 2_621_440 * 16 == 244_384  # 15,274 pages
    # each of the 4 figures is rounded to 0.005 GiB: 0.02 GiB = 131 tokens of 163,840 B; 244,384 - 244,304 = 80
    assert abs(r.budget.token_capacity - 244_304) <= 0.02 * GIB / 163_840
    # from defaults (fp8 weights, estimated activation, 2.1 GiB non-torch at TP 2): within 5%
    defaults = batch_capacity(model, gpu, Workload(8192, 0, 8192), BudgetInputs(tp=2, util=0.95, weights_dtype="fp8"))
    assert abs(defaults.budget.token_capacity / 244_304 - 1) < 0.05


def test_activation_estimate_by_hand(catalog):
    value, _ = activation_estimate(catalog.model("llama3.1-8b"), 1, 8192, 1024)
    # 3 x 8192 x 4096 x 2 + 3 x 8192 x 14336 x 2 + 2 x 1024 x 128256 x 4
    assert value == 201_326_592 + 704_643_072 + 1_050_673_152 == 1_956_642_816  # 1.82 GiB; the log: 1.89


def test_activation_estimate_counts_the_shared_experts(catalog):
    """MoE: every expert a token runs is in the MLP's transient, the 2 shared beside the top-6 routed
    (DeepSeek-V2-Lite: experts of 1,408), as the probe's recompute counts them (one active width)."""
    value, _ = activation_estimate(catalog.model("deepseek-v2-lite"), 1, 8192, 1024)
    # 3 x 8192 x 2048 x 2 + 3 x 8192 x (6 + 2) x 1408 x 2 + 2 x 1024 x 102400 x 4
    assert value == 100_663_296 + 553_648_128 + 838_860_800 == 1_493_172_224


# --- engines ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine, expected", [
    # vllm: 100 x 0.9 - (20 + 2 + 1) = 67
    ("vllm", 67),
    # sglang: 0.9 x (100 - 1) - 20 - 2 = 67.1 (the fraction of the memory free before loading)
    ("sglang", 67.1),
    # trtllm: 0.9 x (100 - 20 - 2 - 1) = 69.3
    ("trtllm", 69.3),
    # raw: 100 x 0.9 - (20 + 2 + 1) = 67 when every term is given
    ("raw", 67),
])
def test_engine_formulas(catalog, engine, expected):
    inputs = BudgetInputs(engine=engine, util=0.9, gpu_mem_bytes=100 * GIB, weights_bytes=20 * GIB,
                          activation_bytes=2 * GIB, overhead_bytes=1 * GIB)
    budget = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), inputs)
    assert budget.kv_pool_bytes == pytest.approx(expected * GIB, abs=1)


def test_sglang_ignores_activation_by_default(catalog):
    """SGLang 0.5.15 (the newest preset) on an H100 (nvidia-smi: 81,559 MiB): chunked_prefill_size 8,192 and
    cuda_graph_max_bs 256 reserve 512 + 1.5 x 8,192 + 2 x 256 + 1,024 / 8 + 58 prefill graph sizes x 8 =
    13,904 MiB (above the 10 GiB floor): mem_fraction_static = round((81,559 - 13,904) / 81,559, 3) = 0.830;
    0.5.5 to 0.5.14 had no prefill graphs' term: 13,440 MiB, 0.835; 0.4.10 to 0.5.4 reserved
    9.5 + 1 / 2 = 10 GiB of 79.65: round(69.65 / 79.65, 3) = 0.874."""
    b = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(engine="sglang"))
    assert b.activation_bytes == 0 and b.block_size == 1 and b.util == round((81_559 - 13_904) / 81_559, 3) == 0.830
    mid = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(engine="sglang==0.5.5"))
    assert mid.util == round((81_559 - 13_440) / 81_559, 3) == 0.835
    older = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(engine="sglang==0.5.0"))
    assert older.util == 0.874
    assert memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(engine="sglang==0.4.1")).util == 0.88


def test_raw_uses_nominal_memory(catalog):
    b = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(engine="raw"))
    assert b.kv_pool_bytes == 80 * GIB - 16_060_522_496  # nominal 80 GiB - the checkpoint's bytes


# --- weights, TP, PP, MoE, MLA -------------------------------------------------------------------

def test_weights_formats(catalog):
    model = catalog.model("llama3-8b")
    embed = 2 * 128_256 * 4096  # untied embedding + LM head stay 16-bit
    linear = 8_030_261_248 - embed
    assert weights_bytes(model, "bf16")[0] == 8_030_261_248 * 2
    assert weights_bytes(model, "fp8")[0] == linear + 2 * embed
    assert weights_bytes(model, "int4")[0] == -(-linear * 133 // 256) + 2 * embed  # 4 + 20/128 bits = 133/256 B
    assert weights_bytes(model, "auto")[0] == 16_060_522_496  # the checkpoint's total_size


def test_moe_holds_every_expert(catalog):
    model = catalog.model("mixtral-8x7b")
    assert weights_bytes(model, "bf16")[0] == 46_702_792_704 * 2  # not the 12.9B active


def test_tp_and_pp_split_weights_and_kv(catalog):
    model = catalog.model("llama3.1-405b")
    b = memory_budget(model, catalog.gpu("h200"), BudgetInputs(tp=8, pp=2, weights_dtype="bf16"))
    # each GPU also holds the RoPE cos/sin table: 131,072 positions x 128 x 2 B = 33,554,432 B, and its
    # stage's norms whole (vllm_alloc.py): (2 x 63 + 1) x 16,384 x 2 B x 7/8 = 3,641,344 B; every large
    # tensor is a whole number of 2 MiB (qkv 72 MiB, o 64, gate_up 416, down 208): no block tails
    assert b.weights_bytes == -(-405_853_388_800 * 2 // 16) + 131_072 * 128 * 2 + 3_641_344
    # 126 layers / 2 stages = 63 per GPU; 8 KV heads / TP 8 = 1: 63 x 2 x 1 x 128 x 2 B per token
    assert b.kv_bytes_per_token == 63 * 512 == 32_256
    assert b.page_bytes == 16 * 32_256


def test_mla_is_replicated_under_tp(catalog):
    b = memory_budget(catalog.model("deepseek-v3"), catalog.gpu("h200"), BudgetInputs(tp=8))
    assert b.kv_bytes_per_token == 61 * 576 * 2 == 70_272  # the whole latent on every rank
    # fp8 checkpoint, 1 B per parameter; the RoPE table: 163,840 positions x 64 (qk_rope_head_dim) x 2 B; and
    # 7/8 of what every rank holds whole (vllm_alloc.py): a layer's a-projections 7,168 x (1,536 + 512 + 64) x 1 B
    # = 15,138,816, their norms (1,536 + 512) x 2 B = 4,096, its router 256 x (7,168 x 2 + 4) = 3,671,040:
    # 18,813,952 x 61 = 1,147,651,072; the decoder's norms (2 x 61 + 1) x 7,168 x 2 = 1,763,328
    replicated = (1_147_651_072 + 1_763_328) * 7 // 8
    assert replicated == 1_005_737_600
    assert b.weights_bytes == -(-671_026_419_200 // 8) + 163_840 * 64 * 2 + replicated


def test_max_context_for_a_batch(catalog):
    model = catalog.model("llama3-8b")
    r = batch_capacity(model, catalog.gpu("h100"), Workload(1024, 0), NOTE_001, longest_ctx_requests=4)
    # 64 GiB / 4 requests = 16 GiB each = 131,072 tokens of 128 KiB
    assert r.longest_ctx_tokens == 131_072
    fmt = resolve_kv_format(model, "auto")
    assert max_context(model, fmt, r.budget, 10**9) == 0


# --- fit and plan ----------------------------------------------------------------------------------

def test_fit_llama3_70b_one_h100_does_not_fit_and_says_what_would(catalog):
    r = fit(catalog.model("llama3-70b"), catalog.gpu("h100"), 8192)
    assert not r.fits and r.concurrency == 0
    assert r.verdict.startswith("does not fit: weights alone take 131.42 GiB")  # 141,107,412,992 B
    knobs = {tuple(k.fix.items()): k for k in r.knobs}  # fixes are fields and values, not flags
    assert knobs[("tp", 4),].fits and knobs[("weights_dtype", "int4"),].fits
    assert (("kv_dtype", "fp8"),) not in knobs  # KV is not the problem: only changes that help are listed
    assert r.command == ""  # no deploy line for what does not fit; the first change that fits has one
    assert knobs[("tp", 4),].command.startswith("vllm serve meta-llama/Meta-Llama-3-70B --tensor-parallel-size 4 ")


def test_fit_verdict_when_it_fits(catalog):
    r = fit(catalog.model("llama3-8b"), catalog.gpu("h100"), 4096, NOTE_001)
    assert r.fits and r.concurrency == 128  # 64 GiB / (4096 x 128 KiB = 512 MiB)
    assert r.kv_used_bytes == 64 * GIB and r.free_bytes == 0


def test_plan_llama3_8b(catalog):
    r = plan(catalog.model("llama3-8b"), catalog.gpu("h100"), 1000, 4096)
    best = r.best[0]
    by_tp = {d.tp: d for d in r.candidates if d.pp == 1}
    # vLLM 0.34 (the default). TP 1: int(85,017,493,504 x 0.92) = 78,216,094,023
    #   - (16,062,619,648 weights (with the RoPE table, 8,192 x 128 x 2 B) + 1,380,450,304 sampler + 803,209,216 non-torch and CUDA graphs)
    #   = 59,969,814,855 B / (4096 x 131,072 B = 512 MiB) = 111 per GPU -> 10 replicas, 10 GPUs
    assert (by_tp[1].concurrency_per_replica, by_tp[1].gpus) == (111, 10)
    # TP 4: weights / 4 = 4,015,130,624; the sampler is not divided by TP: 1,024 x 128,256 x 10 + 8,192 x
    #       4,096 x 2 = 1,380,450,304 (the forward pass, 3x8192x4096x2 + 3x8192x3584x2 = 377,487,360, is less);
    #       overhead 0.25 GiB + 1.85 GiB NCCL with NVLink SHARP + 102 CUDA graph sizes x 5 MiB
    #       = 268,435,456 + 1,986,422,374 + 534,773,760 = 2,789,631,590;
    #       the RoPE table on every GPU, 8,192 x 128 x 2 = 2,097,152; the norms whole on every GPU,
    #       (2 x 32 + 1) x 4,096 x 2 B x 3/4 = 399,360 (vllm_alloc.py; no block tails: qkv 12 MiB, o 8,
    #       gate_up 56, down 28, the embedding's 1.5 MiB tail is split off);
    #       pool 78,216,094,023 - those = 70,028,384,993 B / (4096 x 32,768 B) = 521 per replica
    #       -> 2 replicas, 8 GPUs: the fewest (TP 8 ties at 8; the smaller replica wins)
    assert (best.tp, best.pp, best.concurrency_per_replica, best.replicas, best.gpus, best.nodes) == (4, 1, 521, 2, 8, 1)
    assert best.kv_pool_bytes_per_gpu == 78_216_094_023 - (4_015_130_624 + 2_097_152 + 399_360 + 1_380_450_304
                                                           + 2_789_631_590) == 70_028_384_993
    steps = {step.label: step for step in r.explain}
    assert steps["bf16 TP4 x PP1: replicas"].formula == "ceil(1,000 / 521)"
    assert all(d.gpus >= best.gpus for d in r.candidates)


def test_plan_fleet_and_infeasible(catalog):
    r = plan(catalog.model("llama3.1-405b"), catalog.gpu("h100"), 1000, 32768, ("bf16", "fp8"))
    bf16, fp8 = r.best
    assert fp8.gpus <= bf16.gpus
    for d in r.best:
        assert d.concurrency_per_replica * d.replicas >= 1000 and d.gpus == d.replicas * d.tp * d.pp
    # one GPU per node, so no TP: a T4 (16 GiB) holds 405B only spread over enough pipeline stages
    deep = plan(catalog.model("llama3.1-405b"), catalog.gpu("t4"), 1, 4096, gpus_per_node=1)
    assert deep.best[0].tp == 1 and deep.best[0].pp > 16  # beyond the old search's PP 1, 2, 4, 8, 16
    # 1 GiB a GPU cannot hold one of its 126 layers (about 3.2 GB of weights each): infeasible at any PP
    tiny = plan(catalog.model("llama3.1-405b"), catalog.gpu("t4"), 1, 4096, inputs=BudgetInputs(gpu_mem_bytes=GIB),
                gpus_per_node=1)
    assert tiny.best == () and "no TP <= 1 x PP <= 126" in tiny.infeasible[0]


def test_overview_lists_every_model(catalog):
    rows = overview(list(catalog.models.specs.values()), catalog.gpu("h100"), Workload(1024, 1024))
    by_name = {r.model: r for r in rows}
    assert len(rows) == len(catalog.models.specs)
    assert by_name["llama3-8b"].tp == 1 and by_name["llama3-70b"].tp == 2
    assert by_name["deepseek-v3"].tp is None and by_name["deepseek-v3"].note == "> 8 GPUs"


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["batch", "llama3-8b", "--gpu", "h100", "--util", "0"], "--util 0 is outside (0, 1]"),
    (["batch", "llama3-8b", "--gpu", "h100", "--util", "1.5"], "--util 1.5 is outside (0, 1]"),
    (["batch", "llama3-8b", "--gpu", "h100", "--in", "-1"], "--in -1 is out of range; use 1..1,073,741,824 tokens"),
    (["batch", "llama3-8b", "--gpu", "h100", "--tp", "3"], "--tp 3 does not divide"),
    (["batch", "llama3-8b", "--gpu", "h1000"], "unknown GPU 'h1000'"),
    (["batch", "llama3-8b", "--gpu", "h100", "--engine", "tgi"], "unknown engine 'tgi'"),
    (["batch", "llama3-8b", "--gpu", "h100", "--weights-gib", "-1"], "--weights-gib -1 is outside [0, 16,384] GiB"),
    (["fit", "llama3-8b", "--gpu", "h100", "--weights-dtype", "int3"], "unknown weights dtype 'int3'"),
    (["plan", "llama3-8b", "--gpu", "h100", "--concurrency", "0"], "--concurrency 0 is out of range; use 1..16,777,216 requests"),
    (["plan", "llama3-8b", "--gpu", "h100", "--kv-dtype", "bf16,fp9"], "unknown KV dtype 'fp9'"),
    (["plan", "llama3-8b", "--gpu", "h100", "--weights-dtype", "int3"], "unknown weights dtype 'int3'"),
    (["plan", "llama3-8b", "--gpu", "h100", "--engine", "foo"], "unknown engine 'foo'"),
    (["batch", "--gpu", "h100", "--kv-dtype", "fp9"], "unknown KV dtype 'fp9'"),
    # 0 read as "not given" and silently became the default: 16-token pages, vLLM's max_num_seqs, --ctx
    (["batch", "llama3-8b", "--gpu", "h100", "--block-size", "0"], "--block-size 0 is out of range; use 1..65,536 tokens"),
    (["fit", "llama3-8b", "--gpu", "h100", "--max-num-seqs", "0"], "--max-num-seqs 0 is out of range; use 1..16,777,216"),
    (["plan", "llama3-8b", "--gpu", "h100", "--max-num-seqs", "-2"], "--max-num-seqs -2 is out of range; use 1..16,777,216"),
    (["plan", "llama3-8b", "--gpu", "h100", "--max-len", "0"], "--max-len 0 is out of range; use 1..1,073,741,824 tokens"),
])
def test_bad_input_exits_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_does_not_fit_is_a_result_not_an_error(capsys):
    assert main(["fit", "llama3-70b", "--gpu", "l4"]) == 0
    assert "does not fit: weights alone take" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["batch", "fit", "plan"])
def test_help_has_example(capsys, command):
    assert main([command, "-h"]) == 0
    assert f"Example: kvplan {command}" in capsys.readouterr().out


# --- invariants ------------------------------------------------------------------------------------

MODELS = ["llama3-8b", "mistral-7b-v0.1", "gemma3-27b", "qwen3-30b-a3b", "deepseek-v2-lite", "jamba-v0.1"]


@settings(max_examples=50, deadline=None)
@given(name=st.sampled_from(MODELS), mem=st.integers(40, 200), extra=st.integers(0, 100),
       inp=st.integers(1, 20_000), out=st.integers(0, 20_000))
def test_more_memory_never_lowers_concurrency(catalog, name, mem, extra, inp, out):
    model, gpu = catalog.model(name), catalog.gpu("h100")
    small = batch_capacity(model, gpu, Workload(inp, out), BudgetInputs(gpu_mem_bytes=mem * GIB))
    large = batch_capacity(model, gpu, Workload(inp, out), BudgetInputs(gpu_mem_bytes=(mem + extra) * GIB))
    for a, b in zip(small.strategies, large.strategies):
        assert b.concurrency_avg >= a.concurrency_avg and b.concurrency_peak >= a.concurrency_peak


@settings(max_examples=50, deadline=None)
@given(name=st.sampled_from(MODELS), inp=st.integers(1, 30_000), out=st.integers(0, 30_000),
       block=st.sampled_from([1, 8, 16, 32]))
def test_paged_never_below_contiguous_and_never_overfills(catalog, name, inp, out, block):
    model = catalog.model(name)
    # a max_len that is a whole number of pages, as deployed ones are: a contiguous slot of exactly
    # 9 tokens beats two 8-token pages, so the invariant needs max_len page-aligned
    workload = Workload(inp, out, max_len=-(-(inp + out) // block) * block)
    r = batch_capacity(model, catalog.gpu("h100"), workload, BudgetInputs(block_size=block))
    fixed, doubling, paged = r.strategies
    for strategy in (fixed, doubling):
        assert paged.concurrency_avg >= strategy.concurrency_avg
        assert paged.concurrency_peak >= strategy.concurrency_peak
    for s in r.strategies:
        assert s.concurrency_avg * s.bytes_per_request_avg <= max(r.budget.kv_pool_bytes, 0)
        assert s.concurrency_peak * s.bytes_per_request_peak <= max(r.budget.kv_pool_bytes, 0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5000), ctx=st.integers(1, 65_536))
def test_plan_serves_the_load(catalog, n, ctx):
    r = plan(catalog.model("llama3-70b"), catalog.gpu("h100"), n, ctx, ("bf16", "fp8"),
             BudgetInputs(allow_long_max_len=True), max_len=ctx)  # past the 8,192 context with the switch set
    assert r.best  # some fleet serves it: TP 8 and deep pipelines leave room for 64k requests
    for d in r.best:
        assert d.concurrency_per_replica * d.replicas >= n
        assert d.gpus == d.replicas * d.tp * d.pp and d.tp <= 8


BUDGET_KEYS = {
    "engine", "engine_release", "engine_formula", "engine_source", "model", "gpu", "tp", "pp", "dtype", "dtype_source", "dtype_cast",
    "kv_dtype", "block_size", "util",
    "max_num_batched_tokens", "max_num_seqs", "chunked_prefill", "max_model_len", "padding_layers", "weights_dtype",
    "default_batched_tokens", "default_chunked_prefill", "sampler", "allow_long_max_len", "start_refusal",
    "num_speculative_tokens", "prefix_caching", "state_pages", "speculative_method", "draft_model",
    "draft_weights_bytes", "draft_weights_source", "draft_kv_layers", "lookahead_tokens",
    "lora_bytes", "lora_source", "lora_formula", "kv_offload", "cpu_offload_bytes",
    "enable_lora", "max_loras", "max_lora_rank", "max_cpu_loras", "draft_model_repo", "limit_mm_per_prompt",
    "mm_encoder_tp_mode", "hicache_ratio", "hicache_size_gb", "disaggregation_mode",
    "util_name", "util_source", "util_cut", "total_bytes", "total_source", "weights_bytes", "weights_source",
    "activation_bytes", "activation_source", "overhead_bytes", "overhead_source", "kv_pool_bytes",
    "weights_fit", "page_bytes", "kv_bytes_per_token", "num_blocks", "token_capacity", "explain"}


@pytest.mark.parametrize("argv, keys", [
    (["batch", "llama3-8b", "--gpu", "h100"],
     {"model", "model_origin", "start", "gpu", "in_tokens", "out_tokens", "avg_tokens", "peak_tokens", "max_len", "budget", "strategies",
      "max_concurrency_at_max_len", "roofline", "longest_ctx_tokens", "longest_ctx_requests", "default_engine_kv_pool_bytes",
      "default_engine_paged"}),
    (["fit", "llama3-8b", "--gpu", "h100"],
     {"model", "model_origin", "gpu", "ctx_tokens", "max_len", "target_concurrency", "budget", "bytes_per_request",
      "concurrency", "kv_used_bytes", "free_bytes", "held_back_bytes", "start", "fits", "verdict", "knobs", "command",
      "command_note"}),
    (["plan", "llama3-8b", "--gpu", "h100"],
     {"model", "model_origin", "gpu", "concurrency", "ctx_tokens", "max_len", "gpus_per_node", "cross_node_tp", "searched",
      "best", "runners_up", "candidates", "infeasible", "smaller", "explain"}),
])
def test_json_schemas_are_stable(capsys, argv, keys):
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == keys
    if "budget" in data:
        assert set(data["budget"]) == BUDGET_KEYS


def test_the_roofline_runs_at_the_batch_the_engine_runs(catalog):
    """The pool of llama3-8b on an H100 holds hundreds of 1,536-token requests (paged: 1,536 / 16 = 96 pages
    of 2 MiB, 192 MiB each), but with --max-num-seqs 64 the engine decodes 64 at once: the roofline is at 64."""
    r = batch_capacity(catalog.model("llama3-8b"), catalog.gpu("h100"), Workload(1024, 1024),
                       BudgetInputs(max_num_seqs=64))
    paged = r.strategies[-1]
    assert paged.bytes_per_request_avg == 96 * 16 * 131_072 and paged.concurrency_avg > 64
    assert r.roofline.batch == 64
