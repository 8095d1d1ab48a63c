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
    code, out, _ = run(capsys, "sweep", "llama3.1-8b", "--gpu", "h100,h200,b200", "--ctx", "1k..16k", "--json")
    assert code == 0
    for p in json.loads(out)["points"]:
        single = batch_capacity(catalog.model("llama3.1-8b"), catalog.gpu(p["series"]), Workload(p["x"], 0))
        paged = single.strategies[-1].concurrency_peak  # paged, a request of x tokens
        assert p["value"] == min(paged, single.budget.max_num_seqs)  # the engine runs at most max_num_seqs


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
    assert "x: context (tokens, log scale)\n" in out
    assert "y: max concurrency, paged, capped at max_num_seqs 1,024 (requests)\n" in out


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
                       "--max-len", "8k", "--metric", "tokens_per_s", "--json")
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
    if p.value is not None:  # shown: it starts at the model's context, its requests are no longer, the batch runs
        assert p.fits and p.metrics["starts"] is True and ctx <= cat.model(model).max_context
        assert p.metrics["fitting"] >= p.metrics["concurrency"] >= batch and p.metrics["max_num_seqs"] >= batch


# Llama-3.1-8B, bf16 KV: 32 layers x 8 KV heads x 128 dims x 2 (K, V) x 2 B = 131,072 B per token, so a
# request of 1,024 tokens pages into 1,024 x 131,072 = 134,217,728 B and one of 8,192 into 1 GiB.
KV_1K, KV_8K = 1024 * 131_072, 8192 * 131_072


def sweep_json(capsys, *argv) -> dict:
    code, out, err = run(capsys, "sweep", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_concurrency_is_capped_at_max_num_seqs_as_plan_caps_it(capsys):
    """B200 (vLLM 0.34: 191,762,530,304 B total; 16,384 batched tokens and 1,024 sequences on a GPU of
    160 GiB or more): pool = floor(0.92 x 191,762,530,304) = 176,421,527,879 - 16,093,976,928 weights (16,060,522,496 and the
    RoPE table, 131,072 x 128 x 2 = 33,554,432)
    - 1,811,939,328 activation (the forward pass of 16,384 tokens, 3 x 16,384 x (4,096 + 14,336) x 2 B,
    above the sampler's 1,447,559,168) - 803,209,216 non-torch and CUDA graphs = 157,712,302,407 B."""
    r = sweep_json(capsys, "llama3.1-8b", "--gpu", "b200", "--ctx", "1k")
    (p,) = r["points"]
    assert p["metrics"]["fitting"] == 157_712_302_407 // KV_1K == 1175  # what the pool holds
    assert p["value"] == p["metrics"]["concurrency"] == min(1175, 1024) == 1024  # what the engine runs
    assert r["metric_label"] == "max concurrency, paged, capped at max_num_seqs 1,024 (requests)"
    raised = sweep_json(capsys, "llama3.1-8b", "--gpu", "b200", "--ctx", "1k", "--max-num-seqs", "2000")
    # 2,000 sequences make the sampler the peak: 2,000 x 128,256 x 10 + 16,384 x 4,096 x 2 = 2,699,337,728 B,
    # 887,398,400 B more: the pool is 156,824,904,007 B, 1,168 requests, now all run
    pool = 157_712_302_407 - (2_699_337_728 - 1_811_939_328)
    assert raised["points"][0]["value"] == min(pool // KV_1K, 2000) == 1168
    assert raised["metric_label"] == "max concurrency, paged, capped at max_num_seqs 2,000 (requests)"


def test_the_cap_is_said_in_the_table(capsys):
    code, out, _ = run(capsys, "sweep", "llama3.1-8b", "--gpu", "l4,b200", "--ctx", "1k,2k")
    assert code == 0 and "capped at max_num_seqs 256 / 1,024 (requests)" in out  # L4: 256, B200: 1,024
    assert "Capped: 1 point(s) hold more requests" in out and "b200 at ctx 1,024, 1,175 fit, 1,024 run" in out
    assert "--max-num-seqs raises the cap" in out


@pytest.mark.parametrize("argv, pool", [
    # H100: floor(0.8 x 85,017,493,504) = 68,013,994,803 - 16,093,976,928 - 1,380,450,304 - 803,209,216
    (["--util", "0.8"], 49_736_258_355),
    # fp8 weights, 9,080,934,400 B + RoPE 33,554,432: floor(0.92 x 85,017,493,504) = 78,216,094,023 - ...
    (["--weights-dtype", "fp8"], 66_917_945_671),
])
def test_sweep_takes_the_budget_options(capsys, argv, pool):
    (p,) = sweep_json(capsys, "llama3.1-8b", "--gpu", "h100", "--ctx", "1k", *argv)["points"]
    assert p["metrics"]["kv_pool_gib"] == pool / 2**30
    assert p["value"] == pool // KV_1K  # 370 at util 0.8, 498 with fp8 weights: under the 1,024 cap


def test_a_point_where_the_engine_does_not_start_at_max_len_is_a_gap(capsys):
    """L4: pool = floor(0.92 x 23,649,583,104) - 16,093,976,928 - 345,112,576 (256 x 128,256 x 10 + 2,048 x
    4,096 x 2) - 719,323,136 (268,435,456 + 86 CUDA graph sizes x 5 MiB) = 4,599,103,815 B.
    The default max_len, the model's 131,072-token context, needs 16 GiB at start-up: vLLM does not start.
    --max-len 8k needs 1 GiB: it starts, and 4,599,103,815 // 1 GiB = 4 requests of 8k fit."""
    default = sweep_json(capsys, "llama3.1-8b", "--gpu", "l4", "--batch", "1,2", "--ctx", "8k")
    assert all(p["value"] is None and not p["fits"] for p in default["points"])
    assert default["points"][0]["why"] == ("the engine does not start at max_len 131,072 (one request of it "
                                           "does not fit the pool)")
    assert default["marks"]["llama3.1-8b"]["max_len"] == 131_072
    given = sweep_json(capsys, "llama3.1-8b", "--gpu", "l4", "--batch", "1,2", "--ctx", "8k", "--max-len", "8k")
    assert all(p["fits"] and p["metrics"]["starts"] is True for p in given["points"])
    assert given["points"][0]["value"] == 4_599_103_815 // KV_8K == 4


def test_requests_longer_than_max_len_are_a_gap(capsys):
    """Llama-3-8B's context is 8,192 tokens: a request of 16,384 is refused by an engine run at it."""
    points = sweep_json(capsys, "llama3-8b", "--gpu", "h100", "--ctx", "8k,16k")["points"]
    assert points[0]["fits"] and points[0]["value"] == 59_969_814_855 // KV_8K == 55  # the H100 pool (test_engines)
    assert points[1]["value"] is None and points[1]["why"] == ("its requests are longer than max_len 8,192 "
                                                               "(the engine refuses them)")
    refused = sweep_json(capsys, "llama3-8b", "--gpu", "h100", "--ctx", "16k", "--max-len", "16k")["points"]
    assert refused[0]["value"] is None  # max_len 16,384 is past the model's 8,192: the engine refuses it
    longer = sweep_json(capsys, "llama3-8b", "--gpu", "h100", "--ctx", "16k", "--max-len", "16k",
                        "--allow-long-max-len")["points"]  # as VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
    assert longer[0]["value"] == 59_969_814_855 // (2 * KV_8K) == 27


def test_json_counts_are_integers_and_gaps_are_null(capsys):
    r = sweep_json(capsys, "llama3.1-8b", "--gpu", "l4", "--batch", "2,8", "--ctx", "8k", "--max-len", "8k",
                   "--metric", "tokens_per_s")
    shown, gap = r["points"]
    for key in ("concurrency", "fitting", "max_num_seqs", "max_len", "compute_bound_batch"):
        assert type(shown["metrics"][key]) is int, key
    assert shown["metrics"]["starts"] is True and shown["fits"] is True and type(shown["value"]) is float
    assert gap["fits"] is False and gap["value"] is None and gap["metrics"]["tokens_per_s"] is None  # 8 > 4 fit
    assert gap["why"] == "a batch above 4 requests does not fit"
    counted = sweep_json(capsys, "llama3.1-8b", "--gpu", "l4", "--ctx", "8k", "--max-len", "8k")["points"][0]
    assert type(counted["value"]) is int and counted["value"] == 4  # not 4.0


def test_csv_counts_are_integers_booleans_words_and_gaps_empty(capsys):
    import csv
    import io

    code, out, _ = run(capsys, "sweep", "llama3.1-8b", "--gpu", "l4", "--batch", "2,8", "--ctx", "8k",
                       "--max-len", "8k", "--metric", "tokens_per_s", "--csv")
    shown, gap = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and shown["concurrency"] == "4" and shown["max_len"] == "8192"  # not 4.0, 8192.0
    assert shown["fits"] == shown["starts"] == "true" and gap["fits"] == "false"
    assert gap["tokens_per_s"] == "" and gap["why"] == "a batch above 4 requests does not fit"


def test_releases_side_by_side_show_an_upgrade(capsys):
    """From 0.19 to 0.26 the H100 pool grows from 58,278,902,169 to 59,969,814,855 B (test_engines: 0.92 of
    the memory, FlashInfer's sampler, CUDA graphs counted): 54 -> 55 requests of 8,192 tokens (1 GiB each)."""
    data = sweep_json(capsys, "llama3.1-8b", "--gpu", "h100", "--ctx", "8k", "--engine", "vllm==0.19,vllm==0.26")
    values = {p["series"]: p["value"] for p in data["points"]}
    assert values == {"vllm==0.19": 54, "vllm==0.26": 55}
    assert (58_278_902_169 // 2**30, 59_969_814_855 // 2**30) == (54, 55)


@pytest.mark.parametrize("model, argv, inputs", [
    ("llama3.1-8b", ["--enable-lora", "--max-loras", "4", "--max-lora-rank", "64"],
     {"enable_lora": True, "max_loras": 4, "max_lora_rank": 64}),
    ("llama3.1-8b", ["--speculative-method", "eagle", "--num-speculative-tokens", "3"],
     {"speculative_method": "eagle", "num_speculative_tokens": 3}),
    ("qwen3-vl-30b-a3b-instruct", ["--limit-mm-per-prompt", '{"image": 0, "video": 0}'],
     {"limit_mm_per_prompt": (("image", 0), ("video", 0))}),
    ("llama3.1-8b", ["--kv-offload-gib", "64"], {"kv_offload_gib": 64.0}),
])
def test_sweep_takes_the_terms_batch_takes(capsys, catalog, model, argv, inputs):
    """LoRA, a drafter, the multimodal limits and a KV tier reach each sweep point as they reach batch:
    the point equals batch's figure with the same inputs, and (but for the KV tier, beside the pool)
    differs from the point without the option."""
    code, out, _ = run(capsys, "sweep", model, "--ctx", "8k", "--json", *argv)
    plain_code, plain, _ = run(capsys, "sweep", model, "--ctx", "8k", "--json")
    assert code == plain_code == 0
    point, bare = json.loads(out)["points"][0]["metrics"], json.loads(plain)["points"][0]["metrics"]
    single = batch_capacity(catalog.model(model), catalog.gpu("h100"), Workload(8192, 0), BudgetInputs(**inputs))
    assert point["kv_pool_gib"] * 2**30 == pytest.approx(single.budget.usable_pool_bytes, abs=1)
    assert point["fitting"] == single.strategies[-1].concurrency_peak
    if "kv_offload_gib" in inputs:
        assert point == bare  # a host tier leaves the GPU pool as it is
    else:
        assert point["kv_pool_gib"] != bare["kv_pool_gib"]
