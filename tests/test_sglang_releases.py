"""SGLang's memory fraction release by release, as read from each wheel's server_args.py and
model_runner.py (docs/engine-rules/README.md): the default by TP size or GPU class, and the cut for a
multimodal model, on any fraction (ModelRunner, 0.3 to 0.4.8) or on the default only (server_args,
0.4.9 on), by a fixed factor or by the vision tower's size (adjust_mem_fraction_for_vlm, 0.4.9.post3 on).
Every figure below is worked by hand from nvidia-smi's totals in the GPU database (H100 SXM 81,559 MiB,
A100 80GB 81,920, H200 143,771, B200 183,359, MI300X 196,592)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.specs.catalog import load_catalog
from kvplan.specs.engines.registry import engine, release_text, release_tuple
from kvplan.specs.engines.sglang import vlm_factor

CATALOG = load_catalog()


def util(spec: str, model: str, gpu: str, fraction: float | None = None, tp: int = 1, pp: int = 1) -> float:
    return memory_budget(CATALOG.model(model), CATALOG.gpu(gpu),
                         BudgetInputs(engine=spec, util=fraction, tp=tp, pp=pp)).util


@pytest.mark.parametrize("model, factor", [
    # 0.95 x clamp(1 - 0.1 x (L x H^2 / (24 x 1,024^2) - 1), 0.8, 1.05)
    ("gemma-3-4b", 0.95 * (1 - 0.1 * (27 * 1152 ** 2 / (24 * 1024 ** 2) - 1))),  # r 1.423828: 0.909736
    ("qwen2.5-vl-7b", 0.95 * (1 - 0.1 * 0.5625)),  # no num_hidden_layers ("depth"): 24 x 1,280^2, r 1.5625: 0.896563
    ("llama4-scout", 0.95 * (1 - 0.1 * (34 * 1408 ** 2 / (24 * 1024 ** 2) - 1))),  # r 2.678385: 0.790553
    ("mistral-small-3.1-24b", 0.95),  # Pixtral's 24 x 1,024 is the ViT-L/14 baseline: r 1
    ("qwen3-vl-2b-instruct", 0.95),  # 24 (absent) x 1,024
    ("exaone-4.5-33b", 0.95 * 0.8),  # 24 x 2,048^2: r 4, 1 - 0.3 = 0.7, clamped to 0.8: 0.76
])
def test_the_vlm_factor_follows_the_towers_size(model, factor):
    assert vlm_factor(CATALOG.model(model)) == pytest.approx(factor, rel=1e-12)


def test_gemma3s_factor_by_hand():
    # 27 x 1,152^2 = 35,831,808; 24 x 1,024^2 = 25,165,824; r = 1.423828125; 1 - 0.0423828125 = 0.9576171875
    assert vlm_factor(CATALOG.model("gemma-3-4b")) == pytest.approx(0.95 * 0.9576171875, abs=1e-15)


def test_the_newer_releases_scale_a_default_by_the_tower_and_keep_a_given_fraction():
    # 0.5 on an H100: reserve 9.5 + 1/2 = 10 GiB of 81,559 MiB (79.647 GiB): round(69.647 / 79.647, 3) = 0.874
    assert util("sglang==0.5", "llama3-8b", "h100-sxm") == 0.874
    assert util("sglang==0.5", "gemma-3-4b", "h100-sxm") == round(0.874 * 0.95 * 0.9576171875, 6)  # 0.795109
    assert util("sglang==0.5", "gemma-3-4b", "h100-sxm", 0.8) == 0.8  # a given fraction is not adjusted
    assert util("sglang==0.5.15", "gemma-3-4b", "h100-sxm", 0.8) == 0.8
    # 0.4.9 to 0.4.9.post2: the default times 0.90, a given fraction kept
    assert util("sglang==0.4.9.post2", "gemma-3-4b", "h100-sxm") == round(0.874 * 0.9, 6)
    assert util("sglang==0.4.9", "gemma-3-4b", "h100-sxm", 0.8) == 0.8
    assert util("sglang==0.4.9.post3", "gemma-3-4b", "h100-sxm") == round(0.874 * 0.95 * 0.9576171875, 6)


def test_the_older_releases_cut_any_fraction_in_the_model_runner():
    assert util("sglang==0.4.4", "gemma-3-4b", "h100-sxm", 0.8) == 0.76  # 0.8 x 0.95
    assert util("sglang==0.4.5", "gemma-3-4b", "h100-sxm", 0.8) == 0.72  # 0.8 x 0.90
    assert util("sglang==0.4.8", "gemma-3-4b", "h100-sxm", 0.8) == 0.72
    assert util("sglang==0.4.8", "gemma-3-4b", "h100-sxm") == round(0.874 * 0.9, 6)  # 0.4.8 has 0.5's reserve
    assert util("sglang==0.3.4", "gemma-3-4b", "h100-sxm") == round(0.88 * 0.95, 6)
    assert util("sglang==0.4.5", "llama3-8b", "h100-sxm", 0.8) == 0.8  # a text model is not cut


def test_the_tp_table_reads_tp_alone_to_0_4_6_and_tp_x_pp_in_0_4_7():
    assert util("sglang==0.4", "llama3-8b", "h100-sxm", tp=2, pp=4) == 0.87  # tp_size 2
    assert util("sglang==0.4.6", "llama3-8b", "h100-sxm", tp=2, pp=4) == 0.87
    assert util("sglang==0.4.7", "llama3-8b", "h100-sxm", tp=2, pp=4) == 0.81  # parallel_size 8
    assert util("sglang==0.3.5", "llama3-8b", "h100-sxm", tp=8) == 0.83
    assert util("sglang==0.3.6", "llama3-8b", "h100-sxm", tp=8) == 0.82
    assert util("sglang==0.4", "llama3-8b", "h100-sxm", tp=8) == 0.81


def test_0_4_6_leaves_13_gib_above_80_gib_unrounded():
    assert util("sglang==0.4.6", "llama3-8b", "h200") == pytest.approx(1 - 13 * 1024 / 143_771, abs=1e-12)  # 0.907408
    assert util("sglang==0.4.6", "llama3-8b", "a100-80gb") == 0.88  # 81,920 MiB is not above 81,920


def test_0_4_7s_large_gpu_rules():
    # H200: f 0.88 (above 81,920 MiB); min(0.88 + 49,152 x 0.12 / 143,771, (143,771 - 18,432) / 143,771)
    assert util("sglang==0.4.7", "llama3-8b", "h200") == pytest.approx(min(0.88 + 49152 * 0.12 / 143_771,
                                                                          125_339 / 143_771), abs=1e-12)  # 0.871795
    assert util("sglang==0.4.7", "llama3-8b", "b200") == 0.79  # 183,359 MiB > 180,000 on CUDA
    # MI300X is not CUDA: min(0.88 + 49,152 x 0.12 / 196,592 = 0.910003, 178,160 / 196,592 = 0.906242)
    assert util("sglang==0.4.7", "llama3-8b", "mi300x") == pytest.approx(178_160 / 196_592, abs=1e-12)
    assert util("sglang==0.4.7", "llama3-8b", "h100-sxm", tp=4) == 0.85  # 81,559 MiB: the table


def test_a_log_naming_a_post_release_is_planned_with_its_preset():
    from dataclasses import replace

    from kvplan.calc.logfit import preset_key
    from kvplan.specs.engines.logs import read_log
    startup = read_log(LOG)
    keys = [preset_key(replace(startup, release=r))[0] for r in ("0.4.9.post2", "0.4.9.post3", "0.4.10.post1")]
    assert keys == ["sglang==0.4.9.post2", "sglang==0.4.9.post3", "sglang==0.4.10.post1"]  # the post tail kept
    assert [engine(key).key for key in keys] == ["sglang==0.4.9", "sglang==0.4.9.post3", "sglang==0.4.9.post3"]


LOG = "KV Cache is allocated. #tokens: 444500, K size: 27.13 GB, V size: 27.13 GB\n"


@given(st.lists(st.integers(0, 30), min_size=1, max_size=4), st.integers(1, 9))
def test_post_releases_sort_between_their_release_and_the_next(numbers, post):
    text = ".".join(map(str, numbers))
    version, after = release_tuple(text, f".post{post}"), release_tuple(text, "")
    pad = lambda v: v + (0,) * (6 - len(v))  # noqa: E731
    following = numbers[:-1] + [numbers[-1] + 1]  # the next release of the same length
    assert pad(after) < pad(version) < pad(release_tuple(".".join(map(str, following))))
    assert release_tuple(release_text(version).partition(".post")[0], f".post{post}") == version


@pytest.mark.parametrize("spec, refuses", [
    ("sglang==0.3.4", False),  # configs/model_config.py compares no context_length to the model's
    ("sglang==0.3.5", True), ("sglang==0.4.3", True),  # refused unless the switch is set
    ("sglang==0.4.4", False), ("sglang==0.4.9.post3", False), ("sglang==0.4.10", False),  # default True: a warning
    ("sglang==0.5.1", True), ("sglang==0.5.15", True),
])
def test_a_long_context_is_refused_by_release(spec, refuses):
    assert bool(engine(spec).long_context_switch) is refuses


@pytest.mark.parametrize("spec, table", [
    # server_args' mem_fraction_static at TP 1, 2, 4, 8 and 16, each release's own table
    ("sglang==0.1.10", [0.90, 0.85, 0.82, 0.80, 0.80]), ("sglang==0.1.19", [0.90, 0.85, 0.82, 0.80, 0.80]),
    ("sglang==0.1.20", [0.88, 0.85, 0.80, 0.78, 0.78]), ("sglang==0.1.22", [0.88, 0.85, 0.82, 0.78, 0.74]),
    ("sglang==0.1.24", [0.89, 0.88, 0.86, 0.84, 0.80]),  # 0.1.24 to 0.1.26 came out with 0.2's table
    ("sglang==0.2.6", [0.89, 0.88, 0.86, 0.84, 0.80]), ("sglang==0.2.7", [0.88, 0.87, 0.85, 0.83, 0.79]),
    ("sglang==0.2.15", [0.88, 0.87, 0.85, 0.83, 0.79]), ("sglang==0.3.6", [0.88, 0.87, 0.85, 0.82, 0.79]),
])
def test_the_tp_tables_before_0_4(spec, table):
    assert [engine(spec).default_util(None, tp, 1) for tp in (1, 2, 4, 8, 16)] == table


def test_no_multimodal_cut_before_0_2_15():
    assert util("sglang==0.2.14", "gemma-3-4b", "h100-sxm") == 0.88  # 0.2.7's table, TP 1, uncut
    assert util("sglang==0.2.15", "gemma-3-4b", "h100-sxm") == round(0.88 * 0.95, 6)  # ModelRunner's x 0.95


def test_aiter_cuts_the_fraction_on_amd_past_8192_tokens():
    """ROCm's aiter backend, SGLang's default on AMD, x 0.85 for a context past 8,192 (0.4.7 on). MI300X:
    196,592 MiB; 0.5's reserve above 160 GiB is 32 GiB: round((191.984375 - 32) / 191.984375, 3) = 0.833."""
    assert util("sglang==0.5", "llama3-8b", "mi300x") == 0.833  # Llama-3's 8,192 tokens: not past it
    assert util("sglang==0.5", "llama3.1-8b", "mi300x") == round(0.833 * 0.85, 6)  # 131,072: 0.70805
    assert util("sglang==0.5", "llama3.1-8b", "mi300x", 0.8) == 0.68  # a given fraction too
    assert util("sglang==0.5", "llama3.1-8b", "h100-sxm", 0.8) == 0.8  # CUDA: no aiter
    assert util("sglang==0.4.6", "llama3.1-8b", "mi300x", 0.8) == 0.8  # before 0.4.7
    assert util("sglang==0.4.7", "llama3.1-8b", "mi300x", 0.8) == 0.68


@pytest.mark.parametrize("model, tp, cut", [
    ("deepseek-v3", 8, True),  # 128 KV heads (num_key_value_heads = the head count) / 8 = 16: aiter
    ("deepseek-v3", 4, False),  # 32 a rank: triton
    ("deepseek-v2-lite", 1, True),  # 16
    ("kimi-k2", 8, False),  # 64 / 8 = 8: triton
])
def test_aiter_takes_mla_at_16_or_128_heads_a_rank(model, tp, cut):
    assert util("sglang==0.5.5", model, "mi300x", 0.8, tp=tp) == (0.68 if cut else 0.8)


def test_a_log_of_0_5_5_prints_the_fraction_after_aiters_cut():
    """0.5.5 cuts in ServerArgs.__post_init__, so its server_args line prints 0.8 x 0.85 = 0.68 for a given
    0.8; 0.5 cuts in ModelRunner, after the line, which prints 0.8. Both size with 0.68."""
    from kvplan.specs.engines.base import Replica
    model = CATALOG.model("llama3.1-8b")
    replica = Replica(CATALOG.gpu("mi300x"), max_model_len=131_072)
    new, old = engine("sglang==0.5.5"), engine("sglang==0.5")
    assert new.logged_fraction(0.68, model, replica) == pytest.approx(0.8, abs=1e-12)
    assert new.fraction_in_force(new.logged_fraction(0.68, model, replica), model, True, replica) == 0.68
    assert old.logged_fraction(0.8, model, replica) == 0.8
    assert old.fraction_in_force(0.8, model, True, replica) == 0.68
    logged = memory_budget(model, CATALOG.gpu("mi300x"), BudgetInputs(engine="sglang==0.5.5", util=0.68, util_logged=True))
    assert logged.util == 0.68


@pytest.mark.parametrize("folder, sizes", [
    ("gemma-3-4b", (27, 1152)),  # SigLIP's vision_config states both
    ("qwen2.5-vl-7b", (None, 1280)),  # "depth": 32, no num_hidden_layers: SGLang's getattr takes 24
])
def test_import_reads_the_vision_configs_sizes(folder, sizes):
    from pathlib import Path

    from kvplan.specs.importer import import_model
    spec = import_model(Path(__file__).parent / "fixtures" / "hf_configs" / folder / "config.json").spec
    assert (spec.vision_num_hidden_layers, spec.vision_hidden_size) == sizes
    assert (spec.vision_num_hidden_layers, spec.vision_hidden_size) == (
        CATALOG.model(folder).vision_num_hidden_layers, CATALOG.model(folder).vision_hidden_size)


def test_the_budget_says_why_the_fraction_was_cut():
    def cut(spec, model, gpu, fraction=None):
        return memory_budget(CATALOG.model(model), CATALOG.gpu(gpu), BudgetInputs(engine=spec, util=fraction)).util_cut

    assert cut("sglang==0.5", "gemma-3-4b", "h100-sxm") == "x 0.9097 for a multimodal model (by its vision tower)"
    assert cut("sglang==0.5", "gemma-3-4b", "h100-sxm", 0.8) == ""  # a given fraction is kept from 0.4.9
    assert cut("sglang==0.4.5", "gemma-3-4b", "h100-sxm", 0.8) == "x 0.9 for a multimodal model"
    assert cut("sglang==0.5", "llama3.1-8b", "mi300x") == "x 0.85 for ROCm's aiter attention past 8,192 tokens"
    assert cut("vllm", "gemma-3-4b", "h100-sxm") == ""
