"""`kvplan sweep` and the plots: the numbers behind every chart equal single-point calls; files are
written in the right format; the terminal chart fits 80 columns; bad ranges are one line, exit 2."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.calc.budget import BudgetInputs
from kvplan.calc.capacity import Workload, batch_capacity
from kvplan.bounds import axis as parse_axis
from kvplan.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("text, values", [
    ("1k..8k", (1024, 2048, 4096, 8192)),  # powers of two from low to high
    ("1000..5000", (1000, 2000, 4000, 5000)),  # the high end included
    ("4k,32k", (4096, 32768)),
])
def test_parse_axis(text, values):
    assert parse_axis(text, "ctx") == values


@pytest.mark.parametrize("argv, message", [
    (["--ctx", "0..5"], "--ctx 0 is out of range; use 1.."),
    (["--ctx", "8k..1k"], "a range goes from low to high"),
    (["--ctx", "1x..2x"], "cannot read '1x' as a token count"),
    (["--tp", "two"], "'two' is not a whole number"),
    (["--metric", "speed"], "unknown metric 'speed'"),
])
def test_bad_ranges(capsys, argv, message):
    code, _, err = run(capsys, "sweep", "llama3-8b", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_sweep_equals_single_point_calls(capsys, catalog):
    code, out, _ = run(capsys, "sweep", "llama3-8b", "--gpu", "h100,h200", "--ctx", "1k..16k", "--json")
    assert code == 0
    for p in json.loads(out)["points"]:
        single = batch_capacity(catalog.model("llama3-8b"), catalog.gpu(p["series"]), Workload(p["x"], 0))
        if p["x"] > 8192:  # past Llama-3-8B's context of 8,192: vLLM refuses max_model_len = x, a gap
            assert p["value"] is None
        else:
            assert p["value"] == single.strategies[-1].concurrency_peak  # paged, a request of x tokens


def test_sweep_over_tp_leaves_gaps_where_heads_forbid(capsys):
    code, out, _ = run(capsys, "sweep", "llama3-70b", "--tp", "1,2,3,4", "--sweep-tp", "--ctx", "4k", "--json")
    points = {p["x"]: p for p in json.loads(out)["points"]}
    values = {x: p["value"] for x, p in points.items()}
    assert code == 0 and values[3] is None  # null (NaN inside): 64 heads do not split 3 ways
    assert values[4] > values[2] >= 1  # requests of 4k on 2 and 4 H100s
    assert values[1] is None and not points[1]["fits"]  # 70B does not fit one H100: not shown
    assert points[1]["why"].startswith("the engine does not start")


def test_terminal_chart_fits_80_columns(capsys):
    code, out, _ = run(capsys, "sweep", "llama3-8b", "--gpu", "h100,h200,b200", "--kv-dtype", "bf16,fp8")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    assert "x: context (tokens, log scale); y: max concurrency, paged (requests)" in out


def test_csv(capsys):
    code, out, _ = run(capsys, "sweep", "llama3-8b", "--ctx", "1k,2k", "--csv")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("series,ctx,") and len(lines) == 3


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_files(capsys, tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    for argv in (["sweep", "llama3-8b", "--ctx", "1k..8k"], ["fit", "llama3-8b", "--gpu", "h100"],
                 ["frag", "llama3-8b", "--kv-gib", "1", "--requests", "200", "--max-len", "2048"]):
        path = tmp_path / f"{argv[0]}{suffix}"
        assert main([*argv, "--plot", str(path)]) == 0
        assert path.stat().st_size > 1000 and path.read_bytes().startswith(magic)
    capsys.readouterr()


def test_plot_needs_a_known_format(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, _, err = run(capsys, "sweep", "llama3-8b", "--plot", str(tmp_path / "x.jpg"))
    assert code == 2 and "write a .png or .svg file" in err


def test_plot_without_matplotlib_says_how_to_install(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(capsys, "sweep", "llama3-8b", "--plot", str(tmp_path / "x.png"))
    assert code == 2 and err == ("error: --plot needs matplotlib: pip install matplotlib (or, in a kvplan checkout, "
                                   "pip install '.[plot]')\n")


def test_waste_metric_equals_a_frag_run(capsys):
    code, out, _ = run(capsys, "sweep", "llama3-8b", "--ctx", "2k", "--metric", "waste_exact", "--json")
    value = json.loads(out)["points"][0]["value"]
    code2, out2, _ = run(capsys, "frag", "llama3-8b", "--gpu", "h100", "--max-len", "2048", "--requests", "500",
                         "--json")
    exact = next(r for r in json.loads(out2)["rows"] if r["strategy"] == "exact")
    assert code == code2 == 0 and value == pytest.approx(100 * (1 - exact["live_share"]))


def test_a_batch_sweep_shows_only_what_fits(capsys):
    """Llama-3.1-8B on an L4 at 8k: a few requests fit; the larger batches are marked, not priced."""
    code, out, _ = run(capsys, "sweep", "llama3.1-8b", "--gpu", "l4", "--batch", "1..1024", "--ctx", "8k",
                       "--metric", "tokens_per_s", "--json")
    r = json.loads(out)
    fitting = int(r["points"][0]["metrics"]["concurrency"])
    assert code == 0 and r["ctx_tokens"] == 8192 and 1 <= fitting < 8
    for p in r["points"]:
        assert p["fits"] == (p["x"] <= fitting)
        assert (p["value"] is not None) == p["fits"]  # shown exactly where it fits


def test_a_batch_sweep_names_its_context(capsys):
    code, out, _ = run(capsys, "sweep", "llama3-8b", "--batch", "1..64")
    assert code == 0 and "requests of 4,096 tokens" in out and "at 4,096 tokens" in out  # the default, said
    code, _, err = run(capsys, "sweep", "llama3-8b", "--batch", "1..64", "--ctx", "1k..8k")
    assert code == 2 and "a batch or TP sweep runs at one context" in err


@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from(["llama3-8b", "qwen2.5-32b", "mistral-7b-v0.1", "gemma2-27b"]),
       gpu=st.sampled_from(["l4", "h100", "a10g"]), ctx=st.integers(256, 131072), batch=st.integers(1, 2048))
def test_every_point_shown_fits(model, gpu, ctx, batch):
    from kvplan.calc.sweep import sweep
    from kvplan.specs.catalog import load_catalog

    cat = load_catalog()
    r = sweep([("s", cat.model(model), cat.gpu(gpu), BudgetInputs())], "batch", (batch,), ctx, None, "tokens_per_s")
    (p,) = r.points
    if p.value == p.value:  # shown
        assert p.fits and p.metrics["starts"] and p.metrics["concurrency"] >= batch
