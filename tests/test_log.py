"""`kvplan log` and `--from-log`: the start-up logs of tests/fixtures/engine_logs read back through the
command's calculator, each logged token capacity reproduced from the log's own terms, a check file
that guards it, and plans on the measured terms."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.check import evaluate
from kvplan.calc.fromlog import plan_from_log
from kvplan.calc.logfit import LogSettings, explain_log
from kvplan.cli import main
from kvplan.render.log import check_file_text
from kvplan.specs.checkfile import load_check_file
from kvplan.specs.engines.logs import load_log, read_log

sys.path.insert(0, str(Path(__file__).parent))
from engine_fixtures import LOGS, PLANNED, as_served

ROOT = Path(__file__).parent.parent
QWEN3_4B_LOG = ROOT / "examples" / "logs" / "vllm-qwen3-4b-h100.log"


def known(planned: dict) -> LogSettings:
    """What the mapping knows beside the log (kvplan.yaml): the release where the log's is cut, the
    TP/PP and KV dtype where a line does not say them, the speculative tokens."""
    return LogSettings(engine=f"{planned['engine']}=={planned['release']}", tp=planned.get("tp"), pp=planned.get("pp"),
                       kv_dtype=planned.get("kv_dtype"), num_speculative_tokens=planned.get("num_speculative_tokens"),
                       speculative_method=planned.get("speculative_method"))


def report(catalog, planned: dict, target: int | None = None):
    startup = load_log(LOGS / planned["file"])
    if "max_num_batched_tokens" in planned or "prefix_caching" in planned:  # the log's own raised value
        startup = startup.__class__(**{**startup.__dict__, "max_num_batched_tokens": planned.get(
            "max_num_batched_tokens", startup.max_num_batched_tokens), "enable_prefix_caching": planned.get(
            "prefix_caching", startup.enable_prefix_caching)})
    # the recurrent state's dtype the checkpoint's config sets; the MTP drafter is the log's own (explain_log)
    model = as_served(catalog.model(planned["model"]), {**planned, "speculative_method": None})
    gpu = catalog.gpu(planned["gpu"]) if planned.get("gpu") else None
    return explain_log(startup, model, gpu, given=known(planned), target=target)


@pytest.mark.parametrize("planned", PLANNED, ids=lambda p: p["file"])
def test_every_fixture_log_reproduces_its_token_capacity_from_its_own_terms(catalog, planned):
    """The KV memory each log states, laid out by its release's rules, holds the tokens it logs at one
    end or the other of the log's rounding; the three the mapping names (two workers' lines, blocks
    of 7/8 of the tokens) stay off, and this says so."""
    tokens = next(f for f in report(catalog, planned).figures if f.name == "token capacity")
    assert tokens.reproduced is not bool(planned.get("unexplained")), (tokens.reproduced_low, tokens.logged,
                                                                      tokens.reproduced_high)


def test_a_log_explained_figure_by_figure(catalog):
    """vLLM 0.10.2, Qwen3-4B on an H100: 36 layers x 2 x 8 KV heads x 128 x 2 B = 147,456 B a token;
    58.05 +- 0.005 GiB holds floor(62,325,...) // 2,359,296 B pages: 26,416 to 26,421 pages of 16
    tokens = 422,656 to 422,736 tokens, and the log says 422,672."""
    r = explain_log(load_log(QWEN3_4B_LOG), catalog.model("qwen3-4b"), catalog.gpu("h100"), target=8)
    tokens = {f.name: f for f in r.figures}["token capacity"]
    assert (tokens.reproduced_low, tokens.logged, tokens.reproduced_high) == (422_656, 422_672, 422_736)
    assert int((58.05 - 0.005) * 2**30) // (16 * 147_456) * 16 == 422_656
    assert int((58.05 + 0.005) * 2**30) // (16 * 147_456) * 16 == 422_736
    assert {f.name: f for f in r.figures}["non-torch"].rule == "vLLM non-torch, as 0.10.2 logs it on an H100"
    # 1,024 sequences share 422,672 tokens: 412 each
    assert r.tokens_per_request_at_max_num_seqs == 422_672 // 1_024 == 412
    # --target 8 of 40,960 tokens: 8 x 40,960 x 147,456 B = 48,318,382,080 B = 45.0 GiB of pool; the log's
    # terms leave 79.18 u - 7.5552 - 5.6568 GiB (5.6568 = 79.18 x 0.9 - 7.5552 - 58.05), so
    # u >= (45.0 + 13.212) / 79.18 = 0.7352: 0.736 to the thousandth
    assert r.target_util == 0.736 and (45.0 + 7.5552 + 5.6568) / 79.18 == pytest.approx(0.73519, abs=1e-5)
    assert r.target_max_model_len == 40_960  # 8 x 40,960 = 327,680 tokens fit in 422,704


def test_the_check_file_passes_as_written_and_is_what_the_command_writes(catalog, tmp_path):
    written = tmp_path / "guard.yaml"
    assert main(["log", str(QWEN3_4B_LOG), "--gpu", "h100", "--to-check", str(written)]) == 0
    committed = ROOT / "examples" / "logs" / "qwen3-4b-as-logged.yaml"
    assert written.read_text() == committed.read_text()
    for scenario in load_check_file(written):
        result = evaluate(catalog.model(scenario.model), catalog.gpu(scenario.gpu), scenario)
        assert result.passed
        smaller = scenario.model_copy(update={"util": 0.85})  # a change that shrinks the pool fails
        assert not evaluate(catalog.model(scenario.model), catalog.gpu(scenario.gpu), smaller).passed


@pytest.mark.parametrize("planned", [p for p in PLANNED if p.get("gpu") and not p.get("unexplained")
                                     and p["engine"] == "vllm"], ids=lambda p: p["file"])
def test_to_check_passes_as_written_for_every_fixture_with_a_gpu(catalog, planned, tmp_path):
    r = report(catalog, planned)
    if r.guarded_kv_tokens is None:
        pytest.skip("the log states too few terms to guard (no weights line)")
    path = tmp_path / "guard.yaml"
    path.write_text(check_file_text(r))
    model = as_served(catalog.model(planned["model"]), planned)
    assert all(evaluate(model, catalog.gpu(s.gpu), s).passed for s in load_check_file(path))
    # the guard asks no more than the engine logged, though kvplan's 4-decimal terms may hold a few tokens more
    assert r.guarded_kv_tokens <= r.kv_tokens


def test_a_log_cut_after_its_kv_memory_line_still_answers_preemption(catalog, tmp_path):
    """vLLM 0.11.2, Llama-3-8B on an H200, cut after 'Available KV cache memory: 105.97 GiB': no token line,
    so the 1,024 sequences share the tokens that memory holds (it said 'share 0 tokens'): 105.97 GiB //
    (16 x 131,072 B a page) = 54,256 pages of 16 = 868,096 tokens, 847 each."""
    lines = (LOGS / "vllm-0.11.2-llama3-8b-h200-1.log").read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.log"
    cut.write_text("".join(lines[:next(i for i, line in enumerate(lines) if "Available KV cache memory" in line) + 1]))
    r = explain_log(load_log(cut), catalog.model("llama3-8b"), catalog.gpu("h200"))
    assert int(105.97 * 2**30) // (16 * 131_072) * 16 == 868_096 and 868_096 // 1_024 == 847
    assert r.preempts_at.startswith("1,024 running requests share 868,096 tokens (the logged KV cache memory's): "
                                    "past 847 tokens each")


def test_from_log_reproduces_the_logged_capacity_and_answers_a_what_if(catalog):
    """On the log's measured terms the pool is the logged 58.05 GiB again; fp8 KV doubles the tokens."""
    startup, model, h100 = load_log(QWEN3_4B_LOG), catalog.model("qwen3-4b"), catalog.gpu("h100")
    inputs, notes = plan_from_log(startup, BudgetInputs(engine="vllm"))
    budget = memory_budget(model, h100, inputs)
    assert budget.engine_release == "0.8" and budget.util == 0.9 and notes == ()  # the log's release: 0.10.2
    assert 422_656 <= budget.token_capacity <= 422_736 and budget.token_capacity == 422_704
    fp8, _ = plan_from_log(startup, BudgetInputs(engine="vllm", kv_dtype="fp8"))
    assert memory_budget(model, h100, fp8).token_capacity == 2 * 422_704  # 73,728 B a token: twice the pages
    tp2, notes = plan_from_log(startup, BudgetInputs(engine="vllm", tp=2))
    halved = memory_budget(model, h100, tp2)
    assert halved.weights_bytes == int(7.5552 * 2**30) // 2 and "rescaled from the log's TP 1 to TP 2" in notes[0]


def test_a_log_is_planned_by_its_own_engine_and_refused_for_another(catalog, capsys):
    """An SGLang log planned without --engine takes SGLang's rules (it took vLLM's default preset with the log's
    mem_fraction_static 0.2 as a gpu_memory_utilization); a vLLM log checked as SGLang is one line, exit 2."""
    log = LOGS / "sglang-unknown-llama3.2-3b-48gb-1.log"
    inputs, _ = plan_from_log(load_log(log), BudgetInputs(engine="vllm"))
    assert inputs.engine == "sglang" and inputs.util == 0.2
    other, _ = plan_from_log(load_log(QWEN3_4B_LOG), BudgetInputs(engine="vllm==0.19"))
    assert other.engine == "vllm==0.19"  # another release of the logged engine: the upgrade's what-if
    code = main(["check", "--from-log", str(QWEN3_4B_LOG), "--engine", "sglang", "--model", "qwen3-4b", "--gpu",
                 "h100", "--min-concurrency", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "vllm-qwen3-4b-h100.log is a vLLM log: its measured terms are vLLM's, not SGLang's; give --engine vllm" in err


def test_from_log_keeps_the_quantization_the_engine_cast_to_at_load(catalog, capsys):
    """vLLM 0.22.1 served the bf16 Qwen3-30B-A3B with quantization=fp8: fit on that log deploys it so again
    (its deploy line dropped --quantization fp8, which would load 2 B weights where the log measured ~1 B)."""
    log = LOGS / "vllm-0.22.1-qwen3-30b-a3b-fp8-h100-1.log"
    total = catalog.gpu("h100").cuda_memory()[0]  # the log states no total: the GPU's, as with_log passes it
    inputs, _ = plan_from_log(load_log(log), BudgetInputs(), total, model=catalog.model("qwen3-30b-a3b"))
    assert inputs.weights_dtype == "fp8"
    # an fp8 checkpoint needs no cast: its quantization is the checkpoint's own
    fp8_checkpoint = catalog.model("qwen3-30b-a3b").model_copy(update={"quantization": "fp8"})
    assert plan_from_log(load_log(log), BudgetInputs(), total, model=fp8_checkpoint)[0].weights_dtype == "auto"
    assert main(["fit", "qwen3-30b-a3b", "--gpu", "h100", "--from-log", str(log)]) == 0
    assert capsys.readouterr().out.split("Deploy with:")[1].split("\n")[1].rstrip().endswith("--quantization fp8")


def test_a_log_of_another_model_or_no_log_is_one_line(capsys, tmp_path):
    assert main(["batch", "qwen3-8b", "--gpu", "h100", "--from-log", str(QWEN3_4B_LOG)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a log of Qwen/Qwen3-4B (qwen3-4b), not of qwen3-8b" in err
    foreign = tmp_path / "pytest.log"
    foreign.write_text("============ test session starts ============\ncollected 3 items\n")
    assert main(["log", str(foreign), "--model", "qwen3-4b", "--gpu", "h100"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["log", str(tmp_path / "missing.log")]) == 2
    assert "missing.log: cannot read start-up log (No such file or directory)" in capsys.readouterr().err


def test_stdin_and_json(monkeypatch, capsys):
    import io
    import json

    monkeypatch.setattr(sys, "stdin", io.StringIO(QWEN3_4B_LOG.read_text()))
    assert main(["log", "-", "--gpu", "h100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "stdin" and data["kv_tokens"] == 422_672 and data["model"] == "qwen3-4b"


def test_the_log_names_its_gpu_and_model(catalog):
    startup = read_log((LOGS / "vllm-0.19.1-phi-3-mini-4k-rtx3090-1.log").read_text(), "phi.log")
    from kvplan.specs.logmatch import log_gpu, log_model

    assert log_model(catalog, startup, None).name == "phi3-mini-4k"
    assert log_gpu(catalog, startup, None) is None or log_gpu(catalog, startup, None).name == "rtx-3090"


@pytest.mark.parametrize("planned", [p for p in PLANNED if p.get("gpu") and not p.get("unexplained")],
                         ids=lambda p: p["file"])
def test_from_log_reproduces_each_fixture_capacity(catalog, planned):
    """Planned on its own measured terms (and the settings the mapping knows beside the log), each
    fixture's pool holds the tokens the log states, within the log's rounding."""
    r = report(catalog, planned)
    if r.guarded_kv_tokens is None:
        pytest.skip("the log states too few terms to plan from (no weights line)")
    tokens = {f.name: f for f in r.figures}["token capacity"]
    assert tokens.reproduced_low <= r.guarded_kv_tokens <= tokens.reproduced_high


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(QWEN3_4B_LOG.read_text())), shuffle=st.randoms())
def test_a_cut_or_shuffled_log_is_read_or_refused_in_one_line(tmp_path_factory, cut, shuffle):
    """Never a traceback: a log cut anywhere, or with its lines shuffled, is explained or refused (exit 2)."""
    import contextlib
    import io

    lines = QWEN3_4B_LOG.read_text()[:cut].splitlines()
    shuffle.shuffle(lines) if cut % 2 else None
    path = tmp_path_factory.mktemp("log") / "cut.log"
    path.write_text("\n".join(lines))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["log", str(path), "--gpu", "h100", "--model", "qwen3-4b"])
    assert code in (0, 2) and "Traceback" not in err.getvalue()


def test_a_hugging_face_cache_path_names_its_repo(catalog):
    """SGLang logs the snapshot folder it loaded: .../models--Qwen--Qwen3-30B-A3B-FP8/snapshots/<sha> is
    the repo Qwen/Qwen3-30B-A3B-FP8, served as qwen3-30b-a3b with fp8 weights, even where --model names
    the base model."""
    from kvplan.specs.logmatch import log_model

    startup = load_log(LOGS / "sglang-unknown-qwen3-30b-a3b-fp8-h100-1.log")
    assert "models--Qwen--Qwen3-30B-A3B-FP8/snapshots/" in (startup.model or "")
    for asked in (None, "qwen3-30b-a3b"):
        model = log_model(catalog, startup, asked)
        assert (model.name, model.quantization) == ("qwen3-30b-a3b", "fp8")


@pytest.mark.parametrize("planned", PLANNED, ids=lambda p: p["file"])
def test_every_fixture_log_goes_through_the_command(planned, capsys):
    """`kvplan log` on each fixture, with what its mapping knows beside the log on the command line:
    exit 0, the token capacity row, and its JSON equal to the calculator's."""
    import json

    extra = [flag for key, flag in (("gpu", "--gpu"), ("tp", "--tp"), ("pp", "--pp"), ("kv_dtype", "--kv-dtype"))
             for flag in ((flag, str(planned[key])) if key in planned else ())]
    line = ["log", str(LOGS / planned["file"]), "--model", planned["model"],
            "--engine", f"{planned['engine']}=={planned['release']}", *extra]
    assert main(line) == 0
    assert "token capacity" in capsys.readouterr().out
    assert main([*line, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_tokens"] == load_log(LOGS / planned["file"]).kv_tokens


def test_from_log_lays_out_the_mtp_drafter_the_log_names(catalog, capsys):
    """vLLM 0.25.1, Qwen3.6-35B-A3B NVFP4 on a GB10 with MTP x 3: --from-log carries the log's method
    (logfit.speculative_method, which needs the model: cli/app.py with_log passes it), so the MTP layer
    joins the KV layout, as the log's 'Add 3 padding layers' shows, and the tokens come near the logged
    3,366,051; without it, 10% over."""
    from kvplan.calc.logfit import speculative_method
    from kvplan.units import GIB

    startup = load_log(LOGS / "vllm-0.25.1-qwen3.6-35b-a3b-nvfp4-gb10-1.log")
    model = catalog.model("qwen3.6-35b-a3b")
    method, note = speculative_method(startup, model)
    assert (method, note) == ("mtp", "")
    total = int(119.7 * GIB)  # the log's excerpt states no total: a GB10's, as the fixtures' mapping has it
    drafted = memory_budget(model, None, plan_from_log(startup, BudgetInputs(), total, method=method)[0])
    bare = memory_budget(model, None, plan_from_log(startup, BudgetInputs(), total)[0])
    # 10 full-attention layers x 2 (K,V) x 2 KV heads x 256 x 2 B = 20,480 B a token; the MTP layer: + 2,048
    assert (bare.kv_bytes_per_token, drafted.kv_bytes_per_token) == (10 * 2_048, 11 * 2_048) == (20_480, 22_528)
    assert (drafted.speculative_method, drafted.draft_kv_layers, drafted.padding_layers) == ("mtp", 1, 3)
    assert drafted.weights_bytes == bare.weights_bytes  # 'Model loading took' holds the drafter already
    assert drafted.token_capacity == 3_365_031 and bare.token_capacity == 3_701_636
    assert abs(drafted.token_capacity / 3_366_051 - 1) < 0.001  # -0.03%; without the drafter +9.97%
    code = main(["batch", "qwen3.6-35b-a3b", "--gpu", "h100", "--gpu-mem", "119.7", "--from-log",
                 str(LOGS / "vllm-0.25.1-qwen3.6-35b-a3b-nvfp4-gb10-1.log"), "--ctx", "8192", "--json"])
    out = capsys.readouterr().out
    assert code == 0 and '"speculative_method": "mtp"' in out and '"draft_kv_layers": 1' in out
    assert '"token_capacity": 3365031' in out  # --gpu-mem is the total a log that states none is planned on


def test_check_from_log_lays_out_the_mtp_drafter_the_log_names(catalog, capsys, tmp_path):
    """`kvplan check --from-log` takes the log's speculative method as --from-log on batch does
    (scenario_from_log, given the scenario's model): the MTP layer joins the pool, 22,528 B a token
    (11 x 2,048), so the guard of the drafted capacity (3,365,031 tokens, the test above) passes and one
    token more fails; without the method the pool would hold 3,701,636 and both would pass."""
    log = str(LOGS / "vllm-0.25.1-qwen3.6-35b-a3b-nvfp4-gb10-1.log")
    for tokens, code in ((3_365_031, 0), (3_365_032, 1)):
        path = tmp_path / f"guard-{tokens}.yaml"
        path.write_text("scenarios:\n  - name: mtp\n    model: qwen3.6-35b-a3b\n    gpu: h100\n"
                        f"    gpu_mem_gib: 119.7\n    expect: {{min_kv_tokens: {tokens}}}\n")
        assert main(["check", str(path), "--from-log", log, "--json"]) == code
        assert '"passed": ' + ("true" if code == 0 else "false") in capsys.readouterr().out


def test_a_tensorrt_llm_pytorch_backend_log_is_read_and_planned_with_its_rules(catalog):
    """TensorRT-LLM 0.20.0 run with --backend pytorch (issue #6294): no built engine, so the 1.0 preset's
    rules (the KvCacheCreator's profiling run) apply, not the 0.19 preset's; the log's limits, fraction,
    weights and the model (from the Hugging Face cache path) are read. From its own terms: KV = 0.8 x
    (total - 8.46 GiB - rest), so the rest is total - 8.46 - 52.51 / 0.8 and the pool holds 860,320
    tokens of 65,536 B (fp8, 32 x 2 x 8 x 128 x 1 B) again."""
    from kvplan.calc.logfit import preset_key

    startup = load_log(LOGS / "trtllm-0.20.0-llama3.1-8b-fp8-h100-pcie-1.log")
    assert (startup.release, startup.trtllm_backend, startup.model) == ("0.20.0", "pytorch",
                                                                        "nvidia/Llama-3.1-8B-Instruct-FP8")
    assert (startup.max_model_len, startup.max_num_seqs, startup.max_num_batched_tokens) == (157, 4096, 23552)
    assert startup.kv_memory_fraction == 0.8 and startup.memory.weights_gib == 8.46 and startup.kv_tokens == 860_320
    key, note = preset_key(startup)
    assert key == "trtllm==1.0" and "PyTorch backend" in note
    r = explain_log(startup, catalog.model("llama3.1-8b"), catalog.gpu("h100-pcie"), given=LogSettings(kv_dtype="fp8"))
    tokens = {f.name: f for f in r.figures}["token capacity"]
    assert tokens.reproduced_low <= 860_320 <= tokens.reproduced_high
    assert tokens.reproduced_low <= r.guarded_kv_tokens <= tokens.reproduced_high  # the measured terms' own plan
    # "Both free_gpu_memory_fraction and max_tokens are set (to 0.8 and 860308)" names the KvCacheCreator's own
    # estimate, passed as max_tokens before the served cache is built: no cap of the user's, and none is said
    assert startup.kv_max_tokens is None and not any("capped by max_tokens" in n for n in r.notes)
    assert -(-860_308 // 32) * 32 == 860_320  # the estimate, rounded up to whole 32-token blocks, is the pool
    assert "never preempts" in r.preempts_at  # 4,096 requests of at most 157 tokens fit in 860,320


def test_a_tensorrt_llm_log_is_read_past_its_estimation_pass():
    """TensorRT-LLM 1.1.0rc3 (gpt-oss-120b on a DGX Spark) allocates two KV caches: the KvCacheCreator's
    estimation pool (8,224 tokens, 0.56 GiB, max_seq_len capped to it), then, after 'Peak memory during
    memory usage profiling ... 113.65 GiB', the served one: (119.70 - 113.65 + 0.56) x 0.9 = 5.95 GiB,
    86,720 tokens of 73,728 B (36 layers x 2 x 8 KV heads x 64 x 2 B). The log is read as the served pool."""
    startup = load_log(LOGS / "trtllm-1.1.0rc3-gpt-oss-120b-gb10-1.log")
    assert (startup.kv_tokens, startup.memory.kv_cache_gib, startup.max_model_len) == (86_720, 5.95, 86_720)
    assert [pool.tokens for pool in startup.pools] == [86_720] and startup.kv_max_tokens is None
    assert round((119.70 - 113.65 + 0.56) * 0.9, 2) == 5.95 and 36 * 2 * 8 * 64 * 2 == 73_728
    # 5.95 +- 0.005 GiB in whole 32-token blocks: 86,560 to 86,720 tokens, the logged 86,720 at the top
    assert int(5.945 * 2**30) // (32 * 73_728) * 32 == 86_560 and int(5.955 * 2**30) // (32 * 73_728) * 32 == 86_720


FIXTURES = Path(__file__).parent / "fixtures" / "engine_logs"


def test_a_v0_log_names_no_release_and_is_planned_with_v0s_rules(catalog, capsys):
    """vllm-0.6.4 on an RTX 3090 prints no release; its '# GPU blocks: 1952' and one-line memory profile are
    V0's. 1,952 blocks x 16 tokens = 31,232 tokens (/ 20,000 = 1.56x, as logged). V0's rules from defaults:
    23.58 GiB x 0.9 - 14.99 weights - 0.35 non-torch - the profile peak leaves 3.82 GiB (logged 3.81)."""
    startup = load_log(FIXTURES / "vllm-0.6.4-llama3.1-8b-rtx3090-1.log")
    assert (startup.release, startup.engine_generation) == (None, "V0") and startup.kv_tokens == 1952 * 16 == 31_232
    r = explain_log(startup, catalog.model("llama3.1-8b"), None)
    assert r.engine == "vllm==0.6" and "the log is vLLM's V0 engine: planned with vllm==0.6, its rules" in r.notes
    kv = next(f for f in r.figures if f.name == "KV cache")
    assert kv.logged == 3.81 and abs(kv.predicted - 3.81) / 3.81 < 0.005  # within 0.5%, not the 0.34 preset's +37%


def test_a_tensorrt_llm_1_2_autodeploy_log(capsys):
    """'TensorRT LLM version: 1.2.0rc5' (no hyphen from 1.2) names the release; trtllm-serve's 'Overriding
    max_batch_size / max_seq_len from build_config' lines are the limits in force; AutoDeploy's placeholder
    'Allocated 0.00 GiB for max tokens in paged KV cache (3958272)' is no pool size."""
    text = "\n".join([
        "[TensorRT-LLM] TensorRT LLM version: 1.2.0rc5",
        "[12/20/2025-03:35:50] [TRT-LLM] [I] Overriding max_batch_size from build_config to 64",
        "[12/20/2025-03:35:50] [TRT-LLM] [I] Overriding max_seq_len from build_config to 16384",
        "[12/20/2025-03:35:50] [TRT-LLM] [I] Using LLM with AutoDeploy backend",
        "[TensorRT-LLM][INFO] Number of tokens per block: 64.",
        "[TensorRT-LLM][INFO] [MemUsageChange] Allocated 0.00 GiB for max tokens in paged KV cache (3958272)."])
    startup = read_log(text, "autodeploy.log")
    assert (startup.release, startup.max_num_seqs, startup.max_model_len) == ("1.2.0rc5", 64, 16384)
    assert (startup.trtllm_backend, startup.kv_tokens, startup.memory.kv_cache_gib) == ("autodeploy", 3958272, None)


def test_sglang_free_memory_before_loading_from_the_load_end_line():
    """'Load weight end. ... avail mem=131.08 GB, mem usage=8.13 GB': mem usage is before - after, so
    131.08 + 8.13 = 139.21 GiB were free before loading where the begin line is not in the paste."""
    startup = load_log(FIXTURES / "sglang-0.4.4-gemma-3-4b-it-h200-1.log")
    assert (startup.memory.free_at_start_gib, startup.memory.weights_gib) == (round(131.08 + 8.13, 2), 8.13)


def test_sglang_0_4_cuts_the_fraction_for_a_multimodal_model(catalog):
    """SGLang 0.4 ModelRunner: 'if self.is_multimodal: mem_fraction_static *= 0.95'. Gemma-3-4B-it (a
    vision tower) on the PR #4826 log: 0.88 x 0.95 = 0.836 of the 139.21 GiB free before loading, less
    8.13 GiB of weights = 108.25 GiB, 108.24 logged; a text model keeps 0.88."""
    gemma, llama = catalog.model("gemma-3-4b"), catalog.model("llama3.1-8b")
    inputs = BudgetInputs(engine="sglang==0.4.4", gpu_mem_bytes=int(139.21 * 2**30), weights_bytes=int(8.13 * 2**30),
                          overhead_bytes=0)
    assert memory_budget(gemma, None, inputs).util == round(0.88 * 0.95, 6) == 0.836
    assert memory_budget(llama, None, inputs).util == 0.88
    pool = memory_budget(gemma, None, inputs).kv_pool_bytes / 2**30
    assert abs(pool - (0.836 * 139.21 - 8.13)) < 0.01 and abs(pool - 108.24) < 0.02
    measured, _ = plan_from_log(load_log(FIXTURES / "sglang-0.4.4-gemma-3-4b-it-h200-1.log"),
                                BudgetInputs(engine="sglang==0.4.4"))
    assert abs(memory_budget(gemma, catalog.gpu("h200"), measured).token_capacity - 834_615) <= 2  # 834,616


def test_a_log_without_tp_takes_the_tp_asked():
    """An abridged SGLang paste states no TP; with --tp 4 its 7.08 GiB of weights are TP 4's, not TP 1's
    divided by 4 (which the what-if rule would do to a log that says TP 1)."""
    text = ("Load weight end. type=Qwen3ForCausalLM, dtype=torch.bfloat16, avail mem=16.00 GB, mem usage=7.08 GB.\n"
            "KV Cache is allocated. #tokens: 298447, K size: 5.69 GB, V size: 5.69 GB\n")
    from kvplan.calc.logfit import measured_inputs
    inputs, notes = measured_inputs(read_log(text, "q.log"), BudgetInputs(engine="sglang", tp=4))
    assert inputs.weights_bytes == int(7.08 * 2**30) and inputs.weights_tp == 4
    assert "the log states no TP: its weights are taken as TP 4's, the TP asked" in notes


def test_sweep_from_a_log_runs_at_the_logs_max_model_len(capsys):
    """SGLang's Llama-3.2-3B log serves context_length 35,000 (the model's is 131,072): a sweep on it refuses
    64k requests as longer than that, and SGLang starts on its 25,203-token pool though it is below 35,000."""
    import json

    log = LOGS / "sglang-unknown-llama3.2-3b-48gb-1.log"
    assert main(["sweep", "llama3.2-3b", "--gpu", "l40s", "--from-log", str(log), "--ctx", "4k,64k", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["marks"]["llama3.2-3b"]["max_len"] == 35_000
    four, sixty_four = result["points"]
    assert four["metrics"]["starts"] and four["value"] == 6  # the logged 25,169 tokens // 4,096 = 6
    assert sixty_four["why"] == "its requests are longer than max_len 35,000 (the engine refuses them)"


def test_a_log_whose_header_names_another_model_is_planned_as_its_memory_lines_show(capsys):
    """benchmarks/Suite.md's 0.12 sample names Llama-2-7B, but its 62.99 GiB hold 294,848 tokens: 229,388 B a
    token, GPT-J-6B's 28 x 2 x 4,096 x 1 B = 229,376 in FP8: floor((62.99 -+ 0.005) GiB / (64 x 229,376 B))
    = 4,606 and 4,607 blocks of 64, 294,784 to 294,848 tokens, where Llama-2-7B's 262,144 would hold only
    floor(62.99 GiB / (64 x 262,144 B)) x 64 = 257,984. --model gpt-j-6b is taken, and said; a model whose
    layout does not hold the tokens either is still refused."""
    log = str(LOGS / "trtllm-0.12.0.dev2024073000-gpt-j-6b-fp8-h100-1.log")
    assert main(["log", log, "--model", "gpt-j-6b"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "294,784-294,848 ok" in out
    assert "but its 62.99 GiB hold its 294,848 tokens in gpt-j-6b's layout, not llama2-7b's" in out
    assert main(["log", log]) == 0 and "257,984 off" in capsys.readouterr().out  # the named model's layout
    assert main(["log", log, "--model", "qwen3-8b"]) == 2
    assert "is a log of meta-llama/Llama-2-7b-hf (llama2-7b), not of qwen3-8b" in capsys.readouterr().err
