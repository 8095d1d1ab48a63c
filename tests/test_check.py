"""`kvplan check`: exit codes CI can rely on, hand-derived actuals, vLLM command lines, JUnit output,
and one clear line naming the file and field for every kind of bad check file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kvplan.cli import main
from kvplan.specs.engines.registry import engine

parse_vllm = engine("vllm").read_command

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "capacity.yaml"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_example_file_passes(capsys):
    code, out, _ = run(capsys, "check", str(EXAMPLE), "--json")
    results = {r["name"]: r for r in json.loads(out)["scenarios"]}
    assert code == 0 and all(r["passed"] for r in results.values())
    chat = {o["expectation"]: o for o in results["chat-llama3-8b"]["outcomes"]}
    # vLLM 0.34: pool int(85,017,493,504 x 0.92) - (16,062,619,648 + 1,380,450,304 + 803,209,216) = 59,969,814,855 B;
    # a 4,096-token request pages 512 MiB: 111 fit
    assert chat["min_concurrency"]["actual"] == "111"
    vllm = {o["expectation"]: o for o in results["vllm-command-llama3-8b"]["outcomes"]}
    # its --max-num-seqs 48 shrinks the sampler to 48 x 128,256 x 10 + 8,192 x 4,096 x 2 = 128,671,744 B, below
    # the forward pass of 8,192 tokens, 3 x 8,192 x 4,096 x 2 + 3 x 8,192 x 14,336 x 2 = 905,969,664 B; CUDA graphs
    # of 15 piecewise (to 96) and 9 full (to 48) sizes, 24 x 5 MiB = 125,829,120 B; at --gpu-memory-utilization 0.9:
    # 76,515,744,153 - (16,062,619,648 + 905,969,664 + 268,435,456 + 125,829,120) = 59,152,890,265 B
    # // 1 GiB per 8,192-token request = 55
    assert (vllm["no_preemption"]["expected"], vllm["no_preemption"]["actual"]) == (">= 48 at 8,192", "55")
    assert (vllm["no_preemption"]["bound"], vllm["no_preemption"]["value"]) == (48, 55)  # numbers, not text
    assert results["vllm-command-llama3-8b"]["ignored_flags"] == ["--port"]


def test_a_failing_expectation_exits_1_and_explains_itself(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - name: big\n    model: llama3-70b\n    gpu: h100\n    tp: 2\n"
                    "    ctx: 32768\n    expect: {min_concurrency: 16}\n")
    code, out, _ = run(capsys, "check", str(path))
    assert code == 1
    text = " ".join(out.split())
    assert "min_concurrency >= 16 0 fail" in text
    # TP 8: int(85,017,493,504 x 0.92) - (141,107,412,992 / 8 weights + 1,447,559,168 sampler (1,024 x 128,256 x
    #       10 + 8,192 x 8,192 x 2) + 2,789,631,590 overhead) = 56,338,379,489 B; a 32,768-token request takes
    #       80 x 2 x 1 x 128 x 2 B x 32,768 = 1,342,177,280 B: 41 fit
    assert "big: passes with tp: 8 (41 requests)" in text


def test_inline_form(capsys):
    code, out, _ = run(capsys, "check", "--model", "llama3-70b", "--gpu", "h100", "--tp", "4", "--ctx", "8192",
                       "--min-concurrency", "32", "--json")
    result = json.loads(out)["scenarios"][0]
    assert code == 0 and result["passed"] and result["tp"] == 4


def test_junit_report(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("defaults: {gpu: h100}\nscenarios:\n  - {name: ok, model: llama3-8b, expect: {fits: true}}\n"
                    "  - {name: bad, model: llama3-8b, expect: {min_concurrency: 100000}}\n")
    report = tmp_path / "r.xml"
    assert run(capsys, "check", str(path), "--junit", str(report))[0] == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.find("testcase[@classname='bad']/failure")
    assert failure.get("message").startswith("expected >= 100,000, got ")


def test_preemption_is_checked_only_when_asked_and_fails_with_both_fixes(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    line = "vllm serve meta-llama/Meta-Llama-3-8B --max-model-len 8192 --max-num-seqs 256"
    path.write_text(f"scenarios:\n  - name: v\n    gpu: h100\n    vllm: {line}\n")
    code, out, _ = run(capsys, "check", str(path), "--json")
    assert code == 0 and json.loads(out)["scenarios"][0]["outcomes"] == []  # nothing asked: nothing judged
    path.write_text(f"scenarios:\n  - name: v\n    gpu: h100\n    vllm: {line}\n    expect: {{no_preemption: true}}\n")
    code, out, _ = run(capsys, "check", str(path), "--json")
    result = json.loads(out)["scenarios"][0]
    outcome = result["outcomes"][0]
    # --max-num-seqs 256: the forward pass of 8,192 tokens (905,969,664 B) outgrows the sampler's 256 rows; CUDA
    # graphs of 51 piecewise and 35 full sizes, 86 x 5 MiB = 450,887,680 B: 78,216,094,023 - (16,062,619,648 +
    # 905,969,664 + 268,435,456 + 450,887,680) = 60,528,181,575 B // 1 GiB per 8,192-token request = 56 fit, not
    # 256: vLLM would preempt
    assert code == 1 and outcome["expectation"] == "no_preemption" and outcome["value"] == 56
    assert result["fix"] == {"max_num_seqs": 56}
    assert [fix["settings"] for fix in result["fixes"]][0] == {"max_num_seqs": 56}  # or the shorter max_model_len:
    assert list(result["fixes"][1]["settings"]) == ["max_model_len", "ctx"]  # requests no longer than it


def test_vllm_command_line():
    fields, ignored = parse_vllm("vllm serve meta-llama/Llama-3.1-70B --tensor-parallel-size 4 --max-model-len=32768 "
                                 "--gpu-memory-utilization 0.9 --kv-cache-dtype fp8_e4m3 --max-num-seqs 256 "
                                 "--enable-chunked-prefill --swap-space 4 --quantization awq")
    assert fields == {"model": "meta-llama/Llama-3.1-70B", "tp": 4, "max_model_len": 32768, "util": 0.9,
                      "kv_dtype": "fp8", "max_num_seqs": 256, "weights_dtype": "int4", "chunked_prefill": True}
    assert ignored == ["--swap-space"]  # --enable-chunked-prefill is read now: it moves the profile batch


@pytest.mark.parametrize("content, message", [
    ("scenarios: [\n  {name: x\n", "c.yaml:3: YAML syntax error"),
    ("scenarios:\n  - {name: x, model: llama3-8b, gpu: h100, colour: red}\n",
     "c.yaml:2: scenarios.0.colour: unknown key; remove it or check its spelling"),
    ("scenarios:\n  - {name: x, model: llama3-8b, gpu: h100, tp: many}\n",
     "c.yaml:2: scenarios.0.tp: value 'many' is not a whole number"),
    ("scenarios:\n  - {name: x, model: llama3-8b}\n", "c.yaml:2: scenarios.0: a scenario needs a gpu"),
    ("scenarios:\n  - {name: x, model: lama3-8b, gpu: h100}\n", "c.yaml: scenarios.0 (x): unknown model 'lama3-8b'"),
    ("scenarios: []\n", "c.yaml:1: scenarios: List should have at least 1 item"),
])
def test_bad_check_files_exit_2(capsys, tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--model", "llama3-8b"], "error: a scenario needs a gpu (here or in defaults)"),
    (["--model", "llama3-8b", "--gpu", "h100", "--min-concurrency", "0"], "--min-concurrency 0 is out of range; use 1.."),
    (["--model", "llama3-8b", "--gpu", "h100", "--tp", "0"], "--tp 0 is out of range; use 1..1,024 GPUs"),
])
def test_bad_inline_flags_exit_2(capsys, argv, message):
    code, _, err = run(capsys, "check", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_file_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such check file" in err


def test_each_engines_command_line_is_read_back(capsys, tmp_path):
    """fit and plan write each engine's command; check reads each back, with the engine it names."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "scenarios:\n"
        "  - {name: s, gpu: h100, sglang: 'python -m sglang.launch_server --model-path meta-llama/Meta-Llama-3-8B"
        " --tp-size 2 --context-length 8192 --mem-fraction-static 0.8 --max-running-requests 64 --port 30000'}\n"
        "  - {name: t, gpu: h100, trtllm: 'trtllm-serve meta-llama/Meta-Llama-3-8B --tp_size 2 --max_seq_len 8192"
        " --kv_cache_free_gpu_memory_fraction 0.8 --max_batch_size 64'}\n")
    code, out, _ = run(capsys, "check", str(path), "--json")
    report = json.loads(out)
    assert code == 0 and (report["passed"], report["failed"]) == (2, 0)
    s, t = report["scenarios"]
    assert (s["engine"], s["tp"], s["ignored_flags"]) == ("SGLang", 2, ["--port"])
    assert s["command_settings"] == {"model": "meta-llama/Meta-Llama-3-8B", "tp": 2, "max_model_len": 8192,
                                     "util": 0.8, "max_num_seqs": 64}
    assert t["engine"] == "TensorRT-LLM" and t["command_settings"]["max_num_seqs"] == 64


def test_two_engine_lines_in_one_scenario_are_refused(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - {name: x, gpu: h100, vllm: 'vllm serve m', sglang: 'sglang serve m'}\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and "vllm and sglang: give one engine's command line per scenario" in err


def test_every_unknown_model_of_a_file_is_reported_in_one_run(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("defaults: {gpu: h100}\nscenarios:\n  - {name: a, model: lama3-8b}\n  - {name: b, model: qwen9}\n")
    code, _, err = run(capsys, "check", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2 and "(a): unknown model 'lama3-8b'" in lines[0] and "(b)" in lines[1]


def test_the_markdown_summary_names_the_ignored_flags(capsys, tmp_path):
    path, summary = tmp_path / "c.yaml", tmp_path / "summary.md"
    path.write_text("scenarios:\n  - {name: v, gpu: h100, vllm: 'vllm serve meta-llama/Meta-Llama-3-8B --port 8000"
                    " --max-model-len 8192'}\n")
    assert run(capsys, "check", str(path), "--markdown", str(summary))[0] == 0
    assert "- v: ignored vLLM flags --port" in summary.read_text()


def test_concurrency_is_capped_at_max_num_seqs_and_the_fix_raises_it(capsys, tmp_path):
    """The pool of llama3-8b on an H100 holds ~450 requests of 1,024 tokens (128 MiB each), but the engine runs
    max_num_seqs at most: 32 concurrent, as plan and sweep count; the fix raises max_num_seqs, not the GPUs."""
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - name: capped\n    model: llama3-8b\n    gpu: h100\n    ctx: 1024\n"
                    "    max_num_seqs: 32\n    expect: {min_concurrency: 33}\n")
    code, out, _ = run(capsys, "check", str(path), "--json")
    result = json.loads(out)["scenarios"][0]
    assert code == 1 and result["outcomes"][0]["value"] == 32  # min(pool // 128 MiB, 32)
    assert result["fix"] == {"max_num_seqs": 33} and result["fix_concurrency"] == 33
    path.write_text(path.read_text().replace("33}", "32}"))
    assert run(capsys, "check", str(path))[0] == 0
