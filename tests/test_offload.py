"""Offload vs recompute: source note 001's A100 example, hand-computed MLA, fp8 and window cases,
break-even points, and monotonicity invariants."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.calc.offload import OffloadInputs, offload, prefill_flops
from kvplan.cli import main

NOTE_001 = OffloadInputs(link_gbps=30, tflops=300, mfu=1.0, params=8_000_000_000, attention=False, latency_us=0)


def test_note_001_a100_ratio(catalog):
    r = offload(catalog.model("llama3-8b"), catalog.gpu("a100"), 1024, NOTE_001)
    # T_recompute / T_load = (2 x 8e9 / 300e12) / (2 x 2 B x 1024 x 32 layers / 30e9) = 4.8e20 / 3.93216e19
    assert r.tiers[0].ratio == pytest.approx(12.20703125, rel=1e-12)
    assert r.kv_bytes == 2 * 2 * 1024 * 32 * 1024  # KV width 1024 = hidden 4096 / GQA 4


def test_note_001_is_one_flag_set_away(capsys):
    argv = ["offload", "llama3-8b", "--gpu", "a100", "--prefix", "1024", "--link-gbps", "30", "--tflops", "300",
            "--mfu", "1", "--params", "8e9", "--no-attention", "--latency-us", "0", "--json"]
    assert main(argv) == 0
    tier = json.loads(capsys.readouterr().out)["tiers"][0]
    assert round(tier["ratio"], 1) == 12.2 and tier["verdict"] == "load, 12.2x faster"


def test_attention_term_by_hand(catalog):
    model = catalog.model("llama3-8b")
    linear, attention = prefill_flops(model, 1000, 8_030_261_248)
    assert linear == 2 * 1000 * 8_030_261_248
    # 32 layers x (2 FLOPs x 32 heads x (128 + 128)) x 1000 x 1001 / 2 pairs
    assert attention == 32 * 16_384 * 500_500 == 262_406_144_000


def test_sliding_window_caps_the_attention_term(catalog):
    _, attention = prefill_flops(catalog.model("mistral-7b-v0.1"), 10_000, 1)
    # window 4096: 4096 x 4097 / 2 pairs, then 4096 for each of the other 5,904 tokens
    assert attention == 32 * 16_384 * (4096 * 4097 // 2 + 5904 * 4096)


def test_realistic_default_beside_the_note(catalog):
    r = offload(catalog.model("llama3-8b"), catalog.gpu("a100"), 1024, OffloadInputs(links=("pcie4",)))
    tier = r.tiers[0]
    # 312 TFLOPS x 0.5 MFU, attention included; 32 GB/s + 10 us
    recompute = (2 * 1024 * 8_030_261_248 + 32 * 16_384 * (1024 * 1025 // 2)) / (312e12 * 0.5)
    load = 134_217_728 / 32e9 + 10e-6
    assert tier.ratio == pytest.approx(recompute / load, rel=1e-12)
    assert round(tier.ratio, 1) == 25.5


def test_mla_makes_loading_far_cheaper_than_recompute(catalog):
    h100 = catalog.gpu("h100")
    mla = offload(catalog.model("deepseek-v3"), h100, 4096, OffloadInputs(links=("pcie5",)))
    gqa = offload(catalog.model("llama3-70b"), h100, 4096, OffloadInputs(links=("pcie5",)))
    assert mla.kv_bytes == 61 * 576 * 2 * 4096 == 287_834_112  # a 576-wide latent per layer
    assert gqa.kv_bytes == 80 * 2 * 8 * 128 * 2 * 4096 == 1_342_177_280
    # prefill runs MLA decompressed: 2 x 128 heads x (192 + 128) per pair
    linear, attention = prefill_flops(catalog.model("deepseek-v3"), 4096, 37_552_297_472)
    assert attention == 61 * 81_920 * (4096 * 4097 // 2)
    assert mla.tiers[0].ratio > 2 * gqa.tiers[0].ratio


def test_fp8_kv_halves_the_bytes_to_load(catalog):
    inputs = dict(links=("pcie4",), latency_us=0)
    bf16 = offload(catalog.model("llama3-8b"), catalog.gpu("h100"), 4096, OffloadInputs(**inputs))
    fp8 = offload(catalog.model("llama3-8b"), catalog.gpu("h100"), 4096, OffloadInputs(kv_dtype="fp8", **inputs))
    assert fp8.kv_bytes * 2 == bf16.kv_bytes == 536_870_912
    assert fp8.tiers[0].ratio == pytest.approx(2 * bf16.tiers[0].ratio)


def test_break_even_bandwidth_and_prefix(catalog):
    r = offload(catalog.model("llama3-8b"), catalog.gpu("h100"), 4096, OffloadInputs(links=("pcie4",), latency_us=20_000))
    tier = r.tiers[0]
    # the bandwidth at which loading takes exactly as long as recomputing
    assert tier.breakeven_gbps == pytest.approx(r.kv_bytes / (r.recompute_s - 0.02) / 1e9)
    # with 20 ms per transfer, short prefixes are cheaper to recompute
    p = tier.breakeven_prefix_tokens
    assert p > 1
    short = offload(catalog.model("llama3-8b"), catalog.gpu("h100"), p - 1, OffloadInputs(links=("pcie4",), latency_us=20_000))
    at = offload(catalog.model("llama3-8b"), catalog.gpu("h100"), p, OffloadInputs(links=("pcie4",), latency_us=20_000))
    assert short.tiers[0].ratio < 1 <= at.tiers[0].ratio


def test_tp_shares_the_prefill_and_shards_the_load(catalog):
    one = offload(catalog.model("llama3-70b"), catalog.gpu("h100"), 4096, OffloadInputs(links=("pcie5",)))
    eight = offload(catalog.model("llama3-70b"), catalog.gpu("h100"), 4096, OffloadInputs(links=("pcie5",), tp=8))
    assert eight.recompute_s == pytest.approx(one.recompute_s / 8)
    assert eight.kv_bytes * 8 == one.kv_bytes  # one KV head of 8 per GPU
    mla = offload(catalog.model("deepseek-v3"), catalog.gpu("h200"), 4096, OffloadInputs(links=("pcie5",), tp=8))
    assert mla.kv_bytes == 61 * 576 * 2 * 4096  # the latent is whole on every GPU
    assert mla.gpu_kv_tokens > 0


def test_offload_tier_capacity(catalog):
    r = offload(catalog.model("llama3-8b"), catalog.gpu("h100"), 4096, OffloadInputs(host_gib=512, nvme_gib=4096))
    host, nvme = r.capacity
    assert host.tokens == 512 * 2**30 // 131_072 == 4_194_304 and host.requests == 512 * 2**30 // 2**29 == 1024
    assert nvme.tokens == 8 * host.tokens
    assert r.gpu_kv_tokens > 0


def test_sweep_flips_where_the_break_even_says(catalog):
    inputs = OffloadInputs(links=("nvme",), latency_us=50_000, sweep=True)
    r = offload(catalog.model("llama3-8b"), catalog.gpu("h100"), 4096, inputs)
    first = r.tiers[0].breakeven_prefix_tokens
    for row in r.sweep:
        assert row.winner["nvme"] == ("load" if row.prefix_tokens >= first else "recompute")


@pytest.mark.parametrize("argv, message", [
    (["--link-gbps", "0"], "--link-gbps 0 is outside (0, 100,000] GB/s"),
    (["--link-gbps", "-5"], "--link-gbps -5 is outside (0, 100,000] GB/s"),
    (["--mfu", "0"], "--mfu 0 is outside (0, 1]"),
    (["--mfu", "1.5"], "--mfu 1.5 is outside (0, 1]"),
    (["--link", "pcie9"], "unknown link 'pcie9'"),
    (["--prefix", "0"], "--prefix 0 is out of range; use 1.."),
    (["--tp", "0"], "--tp 0 is out of range; use 1..1,024 GPUs"),  # it divided by zero
])
def test_bad_input(capsys, argv, message):
    assert main(["offload", "llama3-8b", "--gpu", "h100", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_json_and_help(capsys):
    assert main(["offload", "llama3-8b", "--gpu", "h100", "--json", "--explain"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"tiers", "recompute_s", "recompute_linear_s", "recompute_attention_s", "kv_bytes", "explain",
            "capacity", "sweep", "gpu_kv_tokens"} <= set(data)
    assert main(["offload", "-h"]) == 0 and "Example: kvplan offload" in capsys.readouterr().out


MODELS = ["llama3-8b", "deepseek-v3", "mistral-7b-v0.1", "jamba-v0.1", "qwen3-30b-a3b"]


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(MODELS), p=st.integers(1, 200_000), gbps=st.floats(1, 1000), more=st.floats(1.01, 10))
def test_faster_links_always_favour_loading(catalog, name, p, gbps, more):
    model, gpu = catalog.model(name), catalog.gpu("h100")
    slow = offload(model, gpu, p, OffloadInputs(link_gbps=gbps))
    fast = offload(model, gpu, p, OffloadInputs(link_gbps=gbps * more))
    assert fast.tiers[0].ratio > slow.tiers[0].ratio


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(MODELS), p=st.integers(1, 200_000), extra=st.integers(1, 50_000))
def test_longer_prefixes_cost_more_both_ways(catalog, name, p, extra):
    model, gpu = catalog.model(name), catalog.gpu("h100")
    a = offload(model, gpu, p, OffloadInputs(links=("pcie5",)))
    b = offload(model, gpu, p + extra, OffloadInputs(links=("pcie5",)))
    assert b.recompute_s > a.recompute_s and b.tiers[0].load_s >= a.tiers[0].load_s


def test_replicated_latent_turns_the_advantage_around_under_tp(catalog):
    h200, pcie5 = catalog.gpu("h200"), OffloadInputs(links=("pcie5",))
    mla_1 = offload(catalog.model("deepseek-v3"), h200, 4096, pcie5).tiers[0].ratio
    gqa_1 = offload(catalog.model("llama3-70b"), h200, 4096, pcie5).tiers[0].ratio
    mla_8 = offload(catalog.model("deepseek-v3"), h200, 4096, OffloadInputs(links=("pcie5",), tp=8)).tiers[0].ratio
    gqa_8 = offload(catalog.model("llama3-70b"), h200, 4096, OffloadInputs(links=("pcie5",), tp=8)).tiers[0].ratio
    assert mla_1 > gqa_1 and mla_8 < gqa_8
    assert mla_8 == pytest.approx(mla_1 / 8, rel=0.01)  # recompute shared by 8, latent loaded whole


def test_a_cpu_probe_applied_to_a_gpu_is_flagged(capsys):
    from pathlib import Path

    from kvplan.cli import main

    probe = Path(__file__).parents[1] / "examples" / "cpu_offload" / "probe_offload_llama3-8b.json"
    assert main(["offload", "llama3-8b", "--gpu", "h100", "--measured", str(probe)]) == 0
    err = capsys.readouterr().err
    assert "ran on the CPU" in err and "not h100-sxm's link and tensor cores" in " ".join(err.split())


def test_a_link_whose_latency_outlasts_recompute_has_no_breakeven_bandwidth(capsys):
    """A 1-token prefix of Llama-3-8B recomputes in 2 x 8.03e9 FLOPs / (989.4 TFLOPS x 0.5) = 0.032 ms; NVMe's
    0.1 ms latency alone is longer, so no bandwidth makes loading win: null in JSON (not Infinity, which
    is not JSON), 'never' in the table (the link's latency alone is longer)."""
    from kvplan.cli import main

    assert main(["offload", "llama3-8b", "--gpu", "h100", "--prefix", "1", "--json"]) == 0
    tiers = {t["tier"]: t for t in json.loads(capsys.readouterr().out)["tiers"]}
    assert tiers["nvme"]["breakeven_gbps"] is None and tiers["pcie4"]["breakeven_gbps"] > 0
    assert main(["offload", "llama3-8b", "--gpu", "h100", "--prefix", "1"]) == 0
    assert "never" in capsys.readouterr().out
