"""Will the engine start, the smallest fleet, and the command line that deploys it, derived by hand
and against a brute force written apart from the planner."""

from __future__ import annotations

import json

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
    # full attention only: the longest that starts is what the pool's blocks hold, 16 tokens a block
    # (60,352 tokens on the L40S's NVML total; a little fewer on the CUDA basis, 480 MiB lower)
    longest = s.largest_max_model_len
    assert longest == budget.num_blocks * 16 == budget.token_capacity and 55_000 < longest < 60_352
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
    # another engine's rule counts the request as it is held
    sglang = memory_budget(model, catalog.gpu("h100"), BudgetInputs(engine="sglang", block_size=16))
    assert startup(model, sglang, 131_072).needed_bytes == 11_173_625_856


def test_fit_says_it_will_not_start_and_how_it_would(catalog):
    r = fit(catalog.model("qwen2.5-32b"), catalog.gpu("l40s"), 16_384, BudgetInputs(tp=2), target=3)
    assert not r.fits and r.concurrency == 3  # 3 requests of 16k fit the pool; the engine refuses anyway
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
    assert result["fixes"] == [{"settings": {"max_model_len": longest}, "concurrency": 3}]
    assert result["fix"] == {"max_model_len": longest} and result["fix_concurrency"] == 3  # numbers, not prose


def test_plan_finds_the_24_gpus(catalog):
    """Llama-3.3-70B, 1,000 requests of 8k, fp8 KV: PP 3 makes it 24 H100s (the old search's PP 1, 2, 4,
    8 and 16 found 32)."""
    r = plan(catalog.model("llama3.3-70b"), catalog.gpu("h100"), 1000, 8192, ("fp8",))
    best = r.best[0]
    assert best.gpus == 24 and best.pp == 3 and best.tp * best.pp * best.replicas == 24
    assert all(d.gpus > 24 and d.pp < 3 for d in r.runners_up)


def test_the_command_line_comes_back_through_check(catalog, tmp_path, capsys):
    r = plan(catalog.model("llama3.3-70b"), catalog.gpu("h100"), 1000, 8192, ("fp8",), max_len=8192)
    command = r.best[0].command
    assert command.startswith("vllm serve meta-llama/Llama-3.3-70B-Instruct --tensor-parallel-size 4 "
                              "--pipeline-parallel-size 3 --max-model-len 8192 --gpu-memory-utilization 0.9 "
                              "--kv-cache-dtype fp8 --max-num-seqs ")
    path = tmp_path / "gate.yaml"
    path.write_text(f"scenarios:\n  - name: planned\n    gpu: h100\n    vllm: '{command}'\n")
    assert main(["check", str(path), "--json"]) == 0  # starts, and max_num_seqs requests of max_len fit
    (result,) = json.loads(capsys.readouterr().out)["scenarios"]
    assert result["tp"] == 4 and result["pp"] == 3 and result["passed"]


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
