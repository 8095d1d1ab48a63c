"""Bad input of every kind: one line, exit 2, the same bounds in every command; and the three
cases a fuzzer found that lied (a dropped check scenario, a sweep of unknown names, valid frag
input that crashed)."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan import bounds
from kvplan.cli import main
from kvplan.errors import InputError
from kvplan.specs.engines.registry import engine

parse_vllm = engine("vllm").read_command


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the three that lied ------------------------------------------------------------------------

def test_a_check_scenario_that_cannot_be_read_fails_the_gate(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - {name: good, model: llama3-8b, gpu: h100}\n"
                    "  - name: bad\n    gpu: h100\n    vllm: \"vllm serve meta-llama/Meta-Llama-3-8B --max-model-len '4096\"\n")
    code, out, err = run(capsys, "check", str(path))
    assert (code, out) == (2, "")  # it printed "1 passed, 0 failed" and exited 0
    assert err == (f"error: {path}:3: scenarios.1: cannot read the vllm command line (No closing quotation); "
                   "balance its quotes\n")


@pytest.mark.parametrize("option, value, message", [
    ("--kv-dtype", "garbage", "unknown KV dtype 'garbage'"),
    ("--kv-dtype", "../../etc/passwd", "unknown KV dtype '../../etc/passwd'"),
    ("--engine", "garbage", "unknown engine 'garbage'"),
])
def test_a_sweep_of_an_unknown_name_is_an_error_not_a_row_of_dashes(capsys, option, value, message):
    code, out, err = run(capsys, "sweep", "llama3-8b", "--gpu", "h100", option, value)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [
    ["--workload", "fixed:100,0"],  # every output empty: the 'exact' expectation divided by zero
    ["--max-len", "1"],  # every request cut to one prompt token
    ["--shared-prefix", "8191"],  # the prefix leaves one token of llama3-8b's 8,192
])
def test_valid_frag_input_runs(capsys, argv):
    code, out, _ = run(capsys, "frag", "llama3-8b", "--gpu", "h100", "--requests", "50", "--json", *argv)
    rows = json.loads(out)["rows"]
    assert code == 0 and all(math.isfinite(r["expected_value"]) and 0 <= r["live_share"] <= 1 for r in rows)


def test_a_prefix_as_long_as_the_max_length_is_named(capsys):
    code, _, err = run(capsys, "frag", "llama3-8b", "--gpu", "h100", "--requests", "5", "--shared-prefix", "9000")
    assert code == 2 and "--shared-prefix 9,000 leaves no room in --max-len 8,192" in err


# --- one reader per kind of value, the same bounds everywhere -----------------------------------

@pytest.mark.parametrize("argv, message", [
    (["size", "llama3-8b", "--ctx", "1e30"], "--ctx: cannot read '1e30' as a token count"),
    (["batch", "llama3-8b", "--gpu", "h100", "--max-len", "2g"], "--max-len: cannot read '2g'"),
    (["plan", "llama3-8b", "--gpu", "h100", "--ctx", "2000000000"], "--ctx 2,000,000,000 is out of range"),
    (["check", "--model", "llama3-8b", "--gpu", "h100", "--ctx", "2000000000"], "--ctx 2,000,000,000 is out of range"),
    (["frag", "llama3-8b", "--gpu", "h100", "--max-len", "2000000000"], "--max-len 2,000,000,000 is out of range"),
    (["batch", "llama3-8b", "--gpu", "h100", "--gpu-mem", "1e30"], "--gpu-mem 1e+30 is outside (0, 16,384] GiB"),
    (["fit", "llama3-70b", "--gpu", "h100", "--pp", "81"], "--pp 81 is more stages than llama3-70b's 80 layers"),
    (["fit", "llama3-70b", "--gpu", "h100", "--tp", "2000"], "--tp 2,000 is out of range; use 1..1,024 GPUs"),
    (["offload", "llama3-8b", "--gpu", "h100", "--link-gbps", "nan"], "--link-gbps nan is not a number"),
    (["offload", "llama3-8b", "--gpu", "h100", "--link", ","], "--link ',' has an empty item"),
    (["offload", "llama3-8b", "--gpu", "h100", "--link", "pcie4,,nvme"], "--link 'pcie4,,nvme' has an empty item"),
    (["sweep", "llama3-8b", "--ctx", "1k..32k", "--gpu", ""], "--gpu '' has an empty item"),  # StopIteration
    (["sweep", "llama3-8b", "--ctx", "", "--gpu", "h100"], "--ctx '' has an empty item"),  # it swept the default
    (["plan", "llama3-8b", "--gpu", "h100", "--kv-dtype", "bf16,"], "--kv-dtype 'bf16,' has an empty item"),
    (["frag", "llama3-8b", "--gpu", "h100", "--requests", "100000000"], "--requests 100,000,000 is out of range"),
    (["probe", "llama3.2-1b", "--device", "cpu", "--ctx", "0"], "--ctx 0 is out of range"),  # it exited 0
    (["probe", "llama3.2-1b", "--device", "cpu", "--batch", "100000000"], "--batch 100,000,000 is out of range"),
])
def test_every_number_is_checked_where_it_enters(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_token_suffixes_work_in_every_command(capsys):
    # frag's --max-len was an int option: "8k" was a usage error there and a token count in batch
    code, out, _ = run(capsys, "frag", "llama3-8b", "--gpu", "h100", "--requests", "20", "--max-len", "8k", "--json")
    assert code == 0 and json.loads(out)["max_len"] == 8192
    code, out, _ = run(capsys, "size", "llama3-8b", "--ctx", "1m", "--json")
    assert code == 0 and json.loads(out)["ctx_tokens"] == 1_048_576


@given(st.integers(min_value=1, max_value=bounds.MAX_TOKENS))
def test_token_counts_read_back_in_every_spelling(n):
    assert bounds.tokens(str(n), "--ctx") == n
    if n % 1024 == 0:
        assert bounds.tokens(f"{n // 1024}k", "--ctx") == n
    if n % 1024**2 == 0:
        assert bounds.tokens(f"{n // 1024**2}M", "--ctx") == n


@settings(max_examples=200)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.booleans()))
def test_a_decimal_is_finite_and_in_range_or_refused(value):
    try:
        got = bounds.gib(value, "--gpu-mem")
    except InputError as err:
        assert str(err).startswith("--gpu-mem ") and "\n" not in str(err)
    else:
        assert math.isfinite(got) and 0 < got <= bounds.MAX_GIB


def test_a_bool_is_not_a_count():
    with pytest.raises(InputError, match="is not a whole number"):
        bounds.integer(True, "tp", 1, 8)
    with pytest.raises(InputError, match="is not a token count"):
        bounds.tokens(True, "ctx")


# --- check: vLLM command lines, keys, numbers, markdown ------------------------------------------

@pytest.mark.parametrize("command", [
    "vllm serve meta-llama/Meta-Llama-3-8B --max-model-len 32k -tp 2",
    "python -m vllm.entrypoints.openai.api_server --model meta-llama/Meta-Llama-3-8B --max-model-len 32768 -tp 2",
    "python3 -m vllm.entrypoints.openai.api_server --model=meta-llama/Meta-Llama-3-8B --max-model-len=32k "
    "--tensor-parallel-size=2",
    "CUDA_VISIBLE_DEVICES=0,1 VLLM_USE_V1=1 vllm serve meta-llama/Meta-Llama-3-8B \\\n  --max-model-len 32768 \\\n  -tp 2",
])
def test_vllm_command_lines_in_their_usual_forms(command):
    fields, ignored = parse_vllm(command)
    assert fields == {"model": "meta-llama/Meta-Llama-3-8B", "max_model_len": 32768, "tp": 2} and ignored == []


@pytest.mark.parametrize("command, message", [
    ("vllm serve m --max-model-len", "vllm flag --max-model-len has no value"),
    ("vllm serve m --max-model-len 1e30", "vllm flag --max-model-len: cannot read '1e30'"),
    ("vllm serve m --gpu-memory-utilization 1.5", "vllm flag --gpu-memory-utilization 1.5 is outside (0, 1]"),
    ("vllm bench m", "'vllm bench m' is not a vLLM server command"),
])
def test_bad_vllm_command_lines_are_named(command, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_vllm(command)


def test_memory_flags_of_a_vllm_line_are_counted(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    base = "vllm serve meta-llama/Meta-Llama-3-8B --max-model-len 4096"
    path.write_text("scenarios:\n" + "".join(
        f"  - {{name: {name}, gpu: h100, vllm: '{base}{flags}', expect: {{min_concurrency: 1}}}}\n"
        for name, flags in (("base", ""), ("offload", " --cpu-offload-gb 10"),
                            ("chunk", " --max-num-batched-tokens 16384"))))
    code, out, _ = run(capsys, "check", str(path), "--json")
    got = {r["name"]: r["outcomes"][0]["value"] for r in json.loads(out)["scenarios"]}
    # base (vLLM 0.34): 59,969,814,855 B of pool // 536,870,912 B per 4,096-token request = 111
    # offload: 10 GiB of weights on the host: (59,969,814,855 + 10,737,418,240) // 536,870,912 = 131
    # chunk: 16,384 batched tokens, not 8,192: the forward pass, 3 x 16,384 x (4,096 + 14,336) x 2 B =
    #        1,811,939,328 B, outgrows the sampler's 1,380,450,304: (59,969,814,855 - 431,489,024) // 536,870,912 = 110
    assert code == 0 and got == {"base": 111, "offload": 131, "chunk": 110}


def test_a_misspelt_key_gets_its_line_and_a_suggestion(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("defaults: {gpu: h100, engin: vllm}\nscenarios:\n  - name: a\n    model: llama3-8b\n"
                    "    expect:\n      min_concurency: 5\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and err.splitlines() == [
        f"error: {path}:1: defaults.engin: unknown key; did you mean 'engine'?",
        f"error: {path}:6: scenarios.0.expect.min_concurency: unknown key; did you mean 'min_concurrency'?"]


def test_a_null_name_is_named(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - name: null\n    model: llama3-8b\n    gpu: h100\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and err == f"error: {path}:2: scenarios.0.name: Input should be a valid string\n"


def test_markdown_summary_for_a_ci_job(capsys, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    code, _, _ = run(capsys, "check", "--model", "llama3-8b", "--gpu", "h100", "--min-concurrency", "500",
                     "--markdown", str(summary))
    text = summary.read_text()
    assert code == 1 and text.startswith("# earlier step\n\n### kvplan check: 0 passed, 1 failed\n")
    assert "| llama3-8b on h100 | min_concurrency | >= 500 | 111 | **fail** |" in text  # see test_check


# --- output paths --------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "f").write_text("x") and d / "f" / "out.png", "is a file, not a folder"),
    (lambda d: d / "missing" / "out.png", "does not exist; create it first"),
    (lambda d: d / ("x" * 300 + ".png"), "longer than 255 bytes"),
    (lambda d: d, "is a folder; give a file name inside it"),
])
@pytest.mark.parametrize("argv", [
    ["fit", "llama3-8b", "--gpu", "h100", "--plot"],
    ["check", "--model", "llama3-8b", "--gpu", "h100", "--junit"],
    ["check", "--model", "llama3-8b", "--gpu", "h100", "--markdown"],
])
def test_unwritable_outputs_are_one_line_and_nothing_is_written(capsys, tmp_path, make, message, argv):
    target = make(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run(capsys, *argv, str(target))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_import_out_under_a_file(capsys, tmp_path):
    (tmp_path / "afile.txt").write_text("x")
    config = tmp_path / "config.json"
    config.write_text("{}")
    code, _, err = run(capsys, "import", str(config), "--out", str(tmp_path / "afile.txt"))
    assert code == 2 and "afile.txt is a file, not a folder" in err


def test_an_internal_error_is_one_line_and_exit_3(capsys, monkeypatch):
    import kvplan.calc.kv as kv

    monkeypatch.setattr(kv, "kv_size", lambda *a, **k: 1 / 0)
    code, out, err = run(capsys, "size", "llama3-8b")
    assert code == 3 and out == "" and err == (
        "error: internal error (ZeroDivisionError: division by zero); rerun with --debug and report it with "
        "the command line\n")


# --- spec files: strict types, bounds, sizes ----------------------------------------------------

GOOD_SPEC = (Path(__file__).parents[1] / "examples" / "specs" / "models" / "llama3-8b-32k.yaml").read_text()


def spec_folder(tmp_path, text: str) -> Path:
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "x.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("old, new, message", [
    ("num_layers: 32", "num_layers: true", "num_layers: Input should be a valid integer"),  # it was 1 layer
    ("vocab_size: 128256", "vocab_size: true", "vocab_size: Input should be a valid integer"),
    ("num_attention_heads: 32", "num_attention_heads: 1000000000000000000000000000000",
     "num_attention_heads: Input should be less than or equal to 65536"),
    ("num_kv_heads: 8", "num_kv_heads: 64", "num_kv_heads 64 does not divide num_attention_heads 32"),
    ("num_kv_heads: 8", "num_kv_heads: 6", "num_kv_heads 6 does not divide num_attention_heads 32"),
    ("hidden_size: 4096", "hidden_size: '4096'", "hidden_size: Input should be a valid integer"),
    ("max_context: 32768", "max_context: 2000000000", "max_context: Input should be less than or equal to 1073741824"),
])
def test_spec_values_are_strict_and_bounded(capsys, tmp_path, old, new, message):
    assert old in GOOD_SPEC
    folder = spec_folder(tmp_path, GOOD_SPEC.replace("name: llama3-8b-32k", "name: x").replace(old, new))
    code, out, err = run(capsys, "size", "x", "--specs", str(folder))
    assert code == 2 and out == "" and message in err


def test_the_example_spec_is_valid_as_it_stands(capsys, tmp_path):
    folder = spec_folder(tmp_path, GOOD_SPEC.replace("name: llama3-8b-32k", "name: x"))
    assert run(capsys, "size", "x", "--specs", str(folder))[0] == 0


def test_spec_files_are_regular_and_small(capsys, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "z.yaml").symlink_to("/dev/zero")  # was read until memory ran out
    code, _, err = run(capsys, "size", "llama3-8b", "--specs", str(tmp_path))
    assert code == 2 and "z.yaml: not a regular file" in err
    (tmp_path / "models" / "z.yaml").unlink()
    (tmp_path / "models" / "big.yaml").write_text("x" * (2**20 + 1))  # 1 MiB + 1 B
    code, _, err = run(capsys, "size", "llama3-8b", "--specs", str(tmp_path))
    assert code == 2 and "big.yaml: over 1 MiB, too large for a spec file" in err


def test_an_alias_bomb_is_refused_before_it_expands(capsys, tmp_path):
    lines = ["a: &a [" + ", ".join(["lol"] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):  # 9 levels of 9: 9^9 = 387,420,489 values
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    folder = spec_folder(tmp_path, "\n".join(lines) + "\n")
    code, _, err = run(capsys, "size", "llama3-8b", "--specs", str(folder))
    assert code == 2 and "its aliases expand to over 1,000,000 values" in err


def test_thousands_of_unknown_keys_are_reported_in_twenty_lines(capsys, tmp_path):
    # every problem line walked the file's nodes: 8,000 unknown keys took 29 s to report
    folder = spec_folder(tmp_path, "".join(f"key{i}: {i}\n" for i in range(8000)))
    code, _, err = run(capsys, "size", "llama3-8b", "--specs", str(folder))
    assert code == 2 and len(err.splitlines()) == 21 and err.splitlines()[-1].endswith("and more problems; fix these first")


def test_a_trace_row_is_read_as_the_command_line_reads_tokens(capsys, tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"input_tokens": 10, "output_tokens": 5}\n{"input_tokens": true, "output_tokens": 5}\n')
    code, _, err = run(capsys, "frag", "llama3-8b", "--kv-gib", "1", "--workload", str(trace))
    assert code == 2 and err == f"error: {trace}:2: input_tokens True is not a token count; write e.g. 4096, 32k or 1m\n"


# --- frag: the deployment options of the capacity commands --------------------------------------

def test_frag_takes_tp_like_the_capacity_commands(capsys):
    # a 70B model on one H100 leaves no pool: named, with the fix (it said "the budget holds no token")
    code, _, err = run(capsys, "frag", "llama3-70b", "--gpu", "h100", "--requests", "10")
    assert code == 2 and "leaves no KV pool on h100-sxm at TP 1 x PP 1" in err and "raise --tp or --pp" in err
    code, out, _ = run(capsys, "frag", "llama3-70b", "--gpu", "h100", "--tp", "4", "--requests", "50", "--json")
    r = json.loads(out)
    # per GPU at TP 4: 80 layers x 2 x (8 / 4) KV heads x 128 x 2 B = 81,920 B a token; the pool is batch's
    assert code == 0 and (r["tp"], r["kv_bytes_per_token"]) == (4, 81_920)
    code, out, _ = run(capsys, "batch", "llama3-70b", "--gpu", "h100", "--tp", "4", "--json")
    assert r["budget_bytes"] == json.loads(out)["budget"]["kv_pool_bytes"] // 81_920 * 81_920


def test_the_papers_column_only_in_the_papers_setting(capsys):
    code, out, _ = run(capsys, "frag", "opt-13b", "--gpu", "a100-40gb", "--requests", "100")
    assert code == 0 and "vLLM paper," in out and "shown only in its setting" not in out
    code, out, _ = run(capsys, "frag", "llama3-8b", "--gpu", "h100", "--requests", "100")
    assert code == 0 and "shown only in its setting" in out and "96.3%" not in out
    code, out, _ = run(capsys, "frag", "opt-13b", "--gpu", "a100-40gb", "--requests", "100", "--block-size", "32",
                       "--json")
    assert json.loads(out)["paper_setting"] is False


def test_frag_progress_ticks_with_finished_requests():
    from kvplan.calc.frag import make_strategy, simulate
    from kvplan.specs.workloads import generate

    seen = []
    simulate(make_strategy("paged", 5_000, 2048, 16), generate("chat", 20_000, 0, 2048), tick=seen.append)
    assert seen and seen == sorted(seen) and 0 <= seen[-1] <= 20_000


def test_the_probe_refuses_a_pool_beyond_the_free_memory_before_allocating(capsys):
    pytest.importorskip("torch")
    # 16,000 GiB on the CPU: more than any host has free; it allocated until the machine swapped
    code, out, err = run(capsys, "probe", "llama3.2-1b", "--device", "cpu", "--max-gib", "16000")
    assert code == 2 and out == "" and "--max-gib 16000 is more than CPU (host memory) can spare" in err


# --- 80 columns ----------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [40, 80, 200])
def test_show_writes_valid_yaml_at_any_width(capsys, monkeypatch, width):
    import yaml

    monkeypatch.setenv("COLUMNS", str(width))
    cli_app = importlib.import_module("kvplan.cli.app")

    monkeypatch.setattr(cli_app.console, "_width", width)
    code, out, _ = run(capsys, "show", "deepseek-v3")
    assert code == 0 and yaml.safe_load(out)["name"] == "deepseek-v3"


def test_fit_legend_wraps_between_terms_never_inside_one(capsys, monkeypatch):
    cli_app = importlib.import_module("kvplan.cli.app")

    monkeypatch.setattr(cli_app.console, "_width", 50)
    code, out, _ = run(capsys, "fit", "llama3-8b", "--gpu", "h100")
    legend = [line for line in out.splitlines() if "■" in line]
    assert code == 0 and len(legend) >= 2 and all(not line.rstrip().endswith(("14.96", "54.00")) for line in legend)
    assert all(part.strip().endswith("GiB") for line in legend for part in line.split("■")[1:])


def test_prose_never_breaks_a_number_from_its_unit():
    from kvplan.render.base import wrap_prose

    text = "Decode step at batch 108 (context 2,048): 22.16 ms, memory-bound (memory 22.16 ms: 14.96 GiB weights)"
    for width in range(20, 90):
        lines = wrap_prose(text, width).splitlines()
        assert not any(line.rstrip().endswith(("22.16", "14.96")) for line in lines), width


# --- plots a person would show on a slide ---------------------------------------------------------

@pytest.mark.parametrize("value, label", [(512, "512"), (1024, "1K"), (32768, "32K"), (131072, "128K"),
                                          (1_048_576, "1M"), (1536, "1.5K"), (1000, "1,000")])
def test_context_ticks_read_as_people_write_them(value, label):
    from kvplan.render.plot import token_label

    assert token_label(value) == label


def captured_figure(monkeypatch):
    pytest.importorskip("matplotlib")
    import kvplan.render.plot as plot

    figures = []
    monkeypatch.setattr(plot, "_save", lambda fig, path: figures.append(fig))
    return figures


def test_the_sweep_plot_has_k_ticks_a_log_axis_and_a_title_that_fits(capsys, monkeypatch, tmp_path):
    figures = captured_figure(monkeypatch)
    code, _, _ = run(capsys, "sweep", "llama3-8b", "--gpu", "h100", "--ctx", "1k..128k", "--log-y",
                     "--plot", str(tmp_path / "s.png"))
    ax = figures[0].axes[0]
    assert code == 0 and [t.get_text() for t in ax.get_xticklabels()] == [
        "1K", "2K", "4K", "8K", "16K", "32K", "64K", "128K"]
    assert ax.get_yscale() == "log" and "h100" in ax.get_title() and "(vllm, KV auto)" in ax.get_title()
    assert all(len(line) <= 64 for line in ax.get_title().splitlines())


def test_the_fit_plot_shows_the_gpu_total_headroom_and_values(capsys, monkeypatch, tmp_path):
    figures = captured_figure(monkeypatch)
    code, _, _ = run(capsys, "fit", "llama3-8b", "--gpu", "h100", "--plot", str(tmp_path / "f.png"))
    ax = figures[0].axes[0]
    texts = [t.get_text() for t in ax.texts]
    # 85,017,493,504 B of CUDA total on an H100 SXM = 79.2 GiB; weights 16,060,522,496 B = 15.0 GiB
    assert code == 0 and "GPU total 79.2 GiB" in texts and "15.0 GiB" in texts
    assert "KV free (headroom)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert "h100-sxm" in ax.get_title() and "vllm" in ax.get_title() and "4,096-token" in ax.get_title()


def test_a_specs_path_too_long_for_the_file_system(capsys):
    code, _, err = run(capsys, "size", "llama3-8b", "--specs", "d" * 5000)  # OSError: File name too long
    assert code == 2 and "cannot look at it (File name too long)" in err


@pytest.mark.parametrize("entry", [{"dtype": "BF16", "shape": "abc"}, {"dtype": "BF16", "shape": [True, 2]},
                                   {"dtype": 3, "shape": [2]}, "garbage"])
def test_a_safetensors_header_of_the_wrong_types_is_named(capsys, tmp_path, entry):
    import struct

    (tmp_path / "config.json").write_text((Path(__file__).parent / "fixtures" / "hf_configs" / "llama3-8b" /
                                           "config.json").read_text())
    header = json.dumps({"model.embed_tokens.weight": entry}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    code, _, err = run(capsys, "import", str(tmp_path))
    assert code == 2 and "model.safetensors: tensor 'model.embed_tokens.weight' is not {dtype, shape" in err


def test_fit_says_what_util_keeps_back(capsys):
    code, out, _ = run(capsys, "fit", "llama3-8b", "--gpu", "h100", "--json")
    # total 85,017,493,504 B less the engine's int(85,017,493,504 x 0.92) = 78,216,094,023 B (vLLM 0.34)
    assert code == 0 and json.loads(out)["held_back_bytes"] == 85_017_493_504 - 78_216_094_023 == 6_801_399_481
