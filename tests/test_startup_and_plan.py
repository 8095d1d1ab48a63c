"""Will the engine start, the smallest fleet, and the command line that deploys it, derived by hand
and against a brute force written apart from the planner."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.specs.engines.base import vllm_batch_limits
from kvplan.calc.fit import fit
from kvplan.calc.kv import kv_size, paged_request_bytes, resolve_kv_format
from kvplan.calc.plan import plan
from kvplan.calc.startup import startup
from kvplan.cli import main
from kvplan.errors import KvplanError
from kvplan.units import GIB, ceil_div

# Qwen2.5-32B: 64 layers x 2 (K, V) x 8 KV heads x 128 x 2 B = 262,144 B per token; at TP 2, 131,072
QWEN32_PER_TOKEN_TP2 = 64 * 2 * 8 * 128 * 2 // 2


def test_a_max_model_len_that_does_not_fit_will_not_start(catalog):
    model, gpu = catalog.model("qwen2.5-32b"), catalog.gpu("l40s")
    budget = memory_budget(model, gpu, BudgetInputs(tp=2))
    s = startup(model, budget, model.max_context)
    assert not s.starts and s.needed_bytes == 131_072 * QWEN32_PER_TOKEN_TP2 == 16 * GIB
    # full attention only: the longest that starts is what the pool's blocks hold, 16 tokens a block.
    # vLLM 0.34 on the L40S (2,048 batched tokens, 256 sequences; no NVSwitch, so NCCL alone at TP 2):
    # int(47,803,531,264 x 0.92) = 43,979,248,762 - (32,763,876,352 weights + 131,072 x 128 x 2 = 33,554,432
    # RoPE table + 64 x 3 MiB = 201,326,592 of block tails (qkv 35 MiB, o 25 and down 135 keep a 1 MiB tail
    # each) + (2 x 64 + 1) x 5,120 x 2 B / 2 = 660,480 of norms whole on both GPUs + 256 x 152,064 x 10 +
    # 2,048 x 5,120 x 2 = 410,255,360 sampler + 268,435,456 + 128,849,019 NCCL + 86 CUDA graph sizes x 5 MiB
    # = 848,172,155) = 9,721,403,391 B = 4,635 pages of 2 MiB: 74,160 tokens
    longest = s.largest_max_model_len
    assert budget.kv_pool_bytes == 43_979_248_762 - (32_763_876_352 + 33_554_432 + 201_326_592 + 660_480
                                                     + 410_255_360 + 848_172_155) == 9_721_403_391
    assert longest == budget.num_blocks * 16 == budget.token_capacity == 9_721_403_391 // 2_097_152 * 16 == 74_160
    assert startup(model, budget, longest).starts and not startup(model, budget, longest + 16).starts
    assert not s.no_pool and s.engine == "vLLM" and s.engine_max_len_flag == "--max-model-len"


def test_a_sliding_window_counts_its_window_plus_a_chunk_at_start_up(catalog):
    """vLLM's SlidingWindowSpec.max_memory_usage_bytes: min(window - 1 + max_num_batched_tokens,
    max_model_len) tokens, in pages, plus one page (the window need not start on a page boundary)."""
    model = catalog.model("mistral-7b-v0.1")  # 32 layers, every one windowed at 4,096 tokens, 8 KV x 128
    budget = memory_budget(model, catalog.gpu("l4"), BudgetInputs())
    assert budget.max_num_batched_tokens == 2048  # an L4 (24 GB) is under vLLM's 70 GiB line
    page = 16 * 2 * 8 * 128 * 2  # 65,536 B: 16 tokens x K,V x 8 heads x 128 x 2 B, one layer
    # 32,768: min(4,095 + 2,048, 32,768) = 6,143 tokens -> ceil(6,143 / 16) + 1 = 385 pages per layer
    assert startup(model, budget, 32_768).needed_bytes == 32 * 385 * page == 807_403_520
    # 4,096: min(6,143, 4,096) = 4,096 tokens -> 256 + 1 = 257 pages per layer
    assert startup(model, budget, 4_096).needed_bytes == 32 * 257 * page == 538_968_064
    # past window - 1 + the chunk, a longer max_model_len needs nothing more
    assert startup(model, budget, 8_192).needed_bytes == startup(model, budget, 131_072).needed_bytes


def test_gemma3_27b_at_128k_needs_what_vllm_counts(catalog):
    """The house issue's case: 52 sliding (window 1,024) and 10 full layers, 16 KV heads x 128, bf16.
    One layer's page: 16 tokens x 2 x 16 x 128 x 2 B = 131,072 B."""
    model, page = catalog.model("gemma3-27b"), 16 * 2 * 16 * 128 * 2
    budget = memory_budget(model, catalog.gpu("h100"), BudgetInputs())
    assert budget.max_num_batched_tokens == 8192
    full = 10 * (131_072 // 16) * page  # 10 x 8,192 pages x 131,072 B = 10,737,418,240 B
    sliding = 52 * ((1_023 + 8_192 + 15) // 16 + 1) * page  # 52 x (576 + 1) pages x 131,072 B = 3,932,684,288 B
    assert startup(model, budget, 131_072).needed_bytes == full + sliding == 14_670_102_528  # 14.67 GB
    # what the request holds once running (min(ctx, window) tokens a sliding layer) is less: 11.17 GB
    fmt = resolve_kv_format(model, "auto")
    assert paged_request_bytes(model, 131_072, fmt, 1, 16) == full + 52 * (1_024 // 16) * page == 11_173_625_856
    # V0's rule counts the request as it is held
    v0 = memory_budget(model, catalog.gpu("h100"), BudgetInputs(engine="vllm==0.6", block_size=16))
    assert startup(model, v0, 131_072).needed_bytes == 11_173_625_856
    # SGLang needs a pool of 7 tokens, whatever max_model_len (tp_worker.py max_req_input_len = pool - 1 - 5 > 0):
    # 7 tokens take one 16-token page in each of the 62 layers, 62 x 131,072 B = 8,126,464 B
    sglang = memory_budget(model, catalog.gpu("h100"), BudgetInputs(engine="sglang", block_size=16))
    start = startup(model, sglang, 131_072)
    assert start.needed_bytes == 62 * page == 8_126_464 and start.starts
    # its pool holds fewer than 131,072 tokens: requests are cut to the pool, max_req_len = pool - 1
    assert start.cut_at == sglang.token_capacity - 1 < 131_072


def test_fit_says_it_will_not_start_and_how_it_would(catalog):
    r = fit(catalog.model("qwen2.5-32b"), catalog.gpu("l40s"), 16_384, BudgetInputs(tp=2), target=3)
    # 9,923,390,463 B of pool // (16,384 x 131,072 B = 2 GiB) = 4 requests of 16k fit; the engine refuses anyway
    assert not r.fits and r.concurrency == 4
    assert r.verdict.startswith("will not start: vLLM refuses it, one request of max_model_len 131,072 needs 16 GiB")
    knobs = {tuple(k.fix.items()): k for k in r.knobs}
    assert knobs[("max_model_len", r.start.largest_max_model_len),].fits and knobs[("tp", 4),].fits
    assert r.command == ""  # it does not start: no deploy line for it, but one for the change that fits
    assert f"--max-model-len {r.start.largest_max_model_len} " in r.knobs[0].command
    ok = fit(catalog.model("qwen2.5-32b"), catalog.gpu("l40s"), 16_384, BudgetInputs(tp=2), max_len=32_768, target=3)
    assert ok.fits and ok.start.starts and "--max-model-len 32768" in ok.command


def test_fit_asks_for_replicas_to_reach_a_concurrency(catalog):
    r = fit(catalog.model("llama3-8b"), catalog.gpu("h100"), 8192, target=200)
    per_gpu = r.concurrency  # 8,192 x 131,072 B = 1 GiB a request
    assert not r.fits and per_gpu < 200
    replicas = next(k for k in r.knobs if "replicas" in k.change)
    assert replicas.change.startswith(f"{ceil_div(200, per_gpu)} replicas") and replicas.concurrency >= 200


def test_an_inline_check_that_would_not_start_fails_with_the_fix(catalog, capsys):
    code = main(["check", "--model", "qwen2.5-32b", "--gpu", "l40s", "--tp", "2", "--ctx", "16k",
                 "--min-concurrency", "3", "--json"])
    (result,) = json.loads(capsys.readouterr().out)["scenarios"]
    assert code == 1 and not result["passed"]
    assert [o["expectation"] for o in result["outcomes"] if not o["passed"]] == ["starts"]
    model = catalog.model("qwen2.5-32b")
    longest = startup(model, memory_budget(model, catalog.gpu("l40s"), BudgetInputs(tp=2)), 131_072).largest_max_model_len
    assert result["fixes"] == [{"settings": {"max_model_len": longest}, "concurrency": 4}]
    assert result["fix"] == {"max_model_len": longest} and result["fix_concurrency"] == 4  # numbers, not prose


def test_plan_finds_the_fewest_gpus_in_a_pipeline(catalog):
    """Llama-3.3-70B, 1,000 requests of 8k, fp8 KV: a pipeline of 21 H100s holds them (1,022), where a TP
    group spends 1.85 GiB a GPU on NCCL's NVLink SHARP buffers and a pipeline 0.12 GiB; 20 stages hold
    fewer, as the first and last also carry the embedding and the LM head (2.1 GB each). TP 2 x PP 11
    needs 22, TP 8 x 3 replicas 24 (the old search's PP 1, 2, 4, 8 and 16 found 32)."""
    r = plan(catalog.model("llama3.3-70b"), catalog.gpu("h100"), 1000, 8192, ("fp8",))
    best = r.best[0]
    assert (best.gpus, best.tp, best.pp, best.replicas, best.concurrency_per_replica) == (21, 1, 21, 1, 1022)
    assert [(d.tp, d.pp, d.gpus) for d in r.runners_up] == [(2, 11, 22), (8, 1, 24)]


def test_the_command_line_comes_back_through_check(catalog, tmp_path, capsys):
    r = plan(catalog.model("llama3.3-70b"), catalog.gpu("h100"), 1000, 8192, ("fp8",), max_len=8192)
    command = r.best[0].command
    assert command.startswith("vllm serve meta-llama/Llama-3.3-70B-Instruct --tensor-parallel-size 1 "
                              "--pipeline-parallel-size 21 --max-model-len 8192 --gpu-memory-utilization 0.92 "
                              "--kv-cache-dtype fp8 --max-num-seqs ")
    path = tmp_path / "gate.yaml"
    path.write_text(f"scenarios:\n  - name: planned\n    gpu: h100\n    vllm: '{command}'\n")
    assert main(["check", str(path), "--json"]) == 0  # starts, and max_num_seqs requests of max_len fit
    (result,) = json.loads(capsys.readouterr().out)["scenarios"]
    assert result["tp"] == 1 and result["pp"] == 21 and result["passed"]


def test_plan_starts_at_the_models_context_unless_told(catalog):
    """The one max_len default: the model's context, as the engine's (Llama-3.3-70B: 131,072)."""
    model, h100 = catalog.model("llama3.3-70b"), catalog.gpu("h100")
    default, short = plan(model, h100, 1000, 8192, ("fp8",)), plan(model, h100, 1000, 8192, ("fp8",), max_len=8192)
    assert default.max_len == 131_072 and "--max-model-len 131072 " in default.best[0].command
    # starting at 131,072 needs one request of it in every pool: 80 layers x 2 x 8 x 128 x 1 B (fp8) x 131,072
    # = 20 GiB on one GPU, / TP: a shape can only be as small as that allows, never smaller than at 8,192
    assert default.best[0].gpus >= short.best[0].gpus


def brute_force_gpus(model, gpu, n: int, ctx: int, max_len: int, kv_dtype: str) -> int | None:
    """The fewest GPUs over TP (divisors of the heads, <= 8) x PP (1..layers) x replicas, computed from
    kv_size and the budget alone, apart from the planner's own code."""
    best = None
    for tp in [t for t in range(1, 9) if model.num_attention_heads % t == 0]:
        for pp in range(1, model.num_layers + 1):
            try:
                budget = memory_budget(model, gpu, BudgetInputs(tp=tp, pp=pp, kv_dtype=kv_dtype))
                per_request = kv_size(model, ctx, tp=tp, kv_dtype=kv_dtype).paged_bytes_per_request_per_gpu
                at_max = kv_size(model, max_len, tp=tp, kv_dtype=kv_dtype).paged_bytes_per_request_per_gpu
            except KvplanError:  # a TP the heads or layers do not split into, a PP beyond the layers
                continue
            if max_len > model.max_context:  # vLLM refuses a max_model_len past the model's context
                continue
            stage = lambda b: ceil_div(b * ceil_div(model.num_layers, pp), model.num_layers)  # noqa: E731
            pool = max(budget.kv_pool_bytes, 0)
            if not budget.weights_fit or stage(at_max) > pool or pool // stage(per_request) < 1:
                continue
            per_replica = min(pool // stage(per_request), vllm_batch_limits(gpu, budget.total_bytes).max_num_seqs)
            gpus = ceil_div(n, per_replica) * tp * pp
            best = gpus if best is None else min(best, gpus)
    return best


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["llama3-8b", "qwen2.5-7b", "llama3-70b", "mistral-7b-v0.3"]),
       gpu_name=st.sampled_from(["h100", "l40s", "a100"]), n=st.integers(1, 3000),
       ctx=st.sampled_from([1024, 4096, 16384]), kv_dtype=st.sampled_from(["auto", "fp8"]))
def test_a_plan_never_uses_more_gpus_than_brute_force(catalog, name, gpu_name, n, ctx, kv_dtype):
    model, gpu = catalog.model(name), catalog.gpu(gpu_name)
    r = plan(model, gpu, n, ctx, (kv_dtype,), max_len=ctx)
    brute = brute_force_gpus(model, gpu, n, ctx, ctx, kv_dtype)
    assert (r.best[0].gpus if r.best else None) == brute


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["llama3-8b", "qwen2.5-32b", "llama3-70b", "gemma2-27b", "deepseek-v2-lite"]),
       gpu_name=st.sampled_from(["h100", "l40s", "l4", "a10g"]), tp=st.sampled_from([1, 2, 4]),
       ctx=st.integers(1, 200_000), target=st.integers(1, 500))
def test_what_does_not_start_is_never_reported_as_fitting(catalog, name, gpu_name, tp, ctx, target):
    try:
        r = fit(catalog.model(name), catalog.gpu(gpu_name), ctx, BudgetInputs(tp=tp), target=target)
    except KvplanError as err:  # only a TP the model's heads do not allow is an error here
        assert "does not divide" in str(err) or "neither divides" in str(err), err
        return
    if not r.start.starts:
        assert not r.fits and not r.verdict.startswith("fits")
    if r.fits:
        assert r.start.starts and r.concurrency >= target


def test_plan_shows_why_8_gpus_is_the_least(catalog):
    """Llama-3-8B, 1,000 requests of 4k on H100s: TP 4 x 2 replicas = 8 GPUs (test_plan_llama3_8b).
    Below 8 GPUs: TP 1 with PP 1..7, TP 2 with PP 1..3, TP 4 with PP 1 = 7 + 3 + 1 = 11 shapes."""
    model, gpu = catalog.model("llama3-8b"), catalog.gpu("h100")
    (fleets,) = plan(model, gpu, 1000, 4096).smaller
    assert fleets.best_gpus == 8 and fleets.shapes == 7 + 3 + 1 == 11 and fleets.not_serving == 0
    rows = [(f.tp, f.pp, f.gpus, f.replicas, f.concurrency_per_replica, f.concurrency) for f in fleets.nearest]
    pool = lambda tp, pp: memory_budget(model, gpu, BudgetInputs(tp=tp, pp=pp)).kv_pool_bytes  # noqa: E731
    # a request of 4,096 tokens per GPU: ceil(32 / PP) layers x 8 / TP KV heads x 128 x 2 (K, V) x 2 B x 4,096
    assert rows[0] == (4, 1, 4, 1, 521, 521)  # the best's shape, one replica fewer: (8 - 1) // 4 = 1
    # PP 7 splits 32 layers 4, 4, 5, 5, 5, 5, 4 (vLLM get_pp_indices): a middle stage of 5 layers binds,
    # 74,194,847,692 B / 80 MiB; PP 3 splits 11, 11, 10: the first (11 layers and the embedding) binds
    assert rows[1] == (1, 7, 7, 1, pool(1, 7) // (5 * 8 * 128 * 2 * 2 * 4096), 884)
    assert rows[2] == (2, 3, 6, 1, pool(2, 3) // (11 * 4 * 128 * 2 * 2 * 4096), 779)  # 71,946,147,169 B / 88 MiB
    assert fleets.most_held == 884 < 1000  # TP 1 x 7 replicas holds 7 x 111 = 777, fewer still


def test_plan_says_which_smaller_shapes_do_not_start(catalog):
    """Qwen2.5-32B at --max-len 128k on L40S: one request of 131,072 tokens at TP 2 needs
    131,072 x 131,072 B = 16 GiB at start-up, more than the pool; PP 3 (3 GPUs, NCCL alone) serves 50."""
    model, gpu = catalog.model("qwen2.5-32b"), catalog.gpu("l40s")
    r = plan(model, gpu, 50, 4096, max_len=131_072)
    (fleets,) = r.smaller
    assert (r.best[0].gpus, r.best[0].pp) == (3, 3) and fleets.shapes == 3  # TP 1 x PP 1..2, TP 2 x PP 1
    by_shape = {(f.tp, f.pp): f for f in fleets.nearest}
    tp2 = by_shape[(2, 1)]
    assert not tp2.starts and tp2.concurrency == 0 and tp2.needed_bytes == 131_072 * QWEN32_PER_TOKEN_TP2 == 16 * GIB
    assert tp2.kv_pool_bytes == memory_budget(model, gpu, BudgetInputs(tp=2)).kv_pool_bytes < 16 * GIB
    assert all(not f.starts or f.concurrency < 50 for f in fleets.nearest)


def independent_fleet(model, gpu, f, n: int, ctx: int, max_len: int) -> tuple[bool, int]:
    """(starts, requests held at once) for f.replicas of f.tp x f.pp, from kv_size and the budget alone."""
    budget = memory_budget(model, gpu, BudgetInputs(tp=f.tp, pp=f.pp, kv_dtype=f.kv_dtype))
    stage = lambda b: ceil_div(b * ceil_div(model.num_layers, f.pp), model.num_layers)  # noqa: E731
    per_request = stage(kv_size(model, ctx, tp=f.tp, kv_dtype=f.kv_dtype).paged_bytes_per_request_per_gpu)
    at_max = stage(kv_size(model, max_len, tp=f.tp, kv_dtype=f.kv_dtype).paged_bytes_per_request_per_gpu)
    pool = max(budget.kv_pool_bytes, 0)
    starts = budget.weights_fit and at_max <= pool
    per_replica = min(pool // per_request, vllm_batch_limits(gpu, budget.total_bytes).max_num_seqs)
    return starts, f.replicas * per_replica if starts else 0


@pytest.mark.parametrize("name, gpu_name, n, ctx, kv_dtypes", [
    ("llama3.3-70b", "h100", 1000, 8192, ("fp8",)),
    ("llama3-70b", "l40s", 100, 32768, ("auto",)),
    ("qwen2.5-7b", "a100", 3000, 16384, ("auto", "fp8")),
    ("mistral-7b-v0.3", "l40s", 200, 4096, ("auto",)),
])
def test_every_smaller_fleet_listed_holds_fewer_or_does_not_start(catalog, name, gpu_name, n, ctx, kv_dtypes):
    model, gpu = catalog.model(name), catalog.gpu(gpu_name)
    # max_len = ctx, past Llama-3-70B's 8,192 with the engine's switch set (as the independent count assumes)
    r = plan(model, gpu, n, ctx, kv_dtypes, BudgetInputs(allow_long_max_len=True), max_len=ctx)
    for best, fleets in zip(r.best, r.smaller):
        assert fleets.kv_dtype == best.kv_dtype and fleets.best_gpus == best.gpus and fleets.most_held < n
        assert fleets.nearest or best.gpus == 1
        for f in fleets.nearest:
            assert f.replicas == (best.gpus - 1) // (f.tp * f.pp) >= 1 and f.gpus == f.replicas * f.tp * f.pp < best.gpus
            starts, held = independent_fleet(model, gpu, f, n, ctx, ctx)
            assert (f.starts, f.concurrency) == (starts, held)
            assert not starts or held < n  # fewer GPUs: it does not start, or it holds fewer than asked


def test_plan_prints_the_smaller_fleets_in_80_columns(capsys):
    assert main(["plan", "llama3-8b", "--gpu", "h100", "--concurrency", "1000"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines() if not line.startswith("  vllm serve")) <= 80
    assert "Fewer GPUs: replicas x each = what they hold" in out
    rows = [line.split() for line in out.splitlines() if line.rstrip().endswith("holds < 1,000")]
    assert rows == [["bf16", "4", "1", "4", "1", "521", "521", "holds", "<", "1,000"],  # KV TP PP GPUs replicas each
                    ["bf16", "1", "7", "7", "1", "884", "884", "holds", "<", "1,000"],
                    ["bf16", "2", "3", "6", "1", "779", "779", "holds", "<", "1,000"]]
    assert ("bf16 KV, below 8 GPUs: 11 shapes (TP x PP); 11 start and hold at most 884 of the 1,000 asked."
            in " ".join(out.split()))
    assert main(["plan", "llama3-8b", "--gpu", "h100", "--concurrency", "1000", "--json"]) == 0
    (smaller,) = json.loads(capsys.readouterr().out)["smaller"]
    assert (smaller["best_gpus"], smaller["shapes"], smaller["most_held"]) == (8, 11, 884)
    assert [(f["tp"], f["pp"], f["concurrency"]) for f in smaller["nearest"]] == [(4, 1, 521), (1, 7, 884), (2, 3, 779)]
