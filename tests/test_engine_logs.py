"""Real engine start-up logs (tests/fixtures/engine_logs/, each with its source in SOURCES.yaml):
the token capacity each logs is reproduced from the KV memory it logs, within the log's rounding, by
the engine's own layout (vLLM V1's KV cache groups, SGLang's per-token cells, TensorRT-LLM's blocks),
and predicted from what a user knows before launch (tests/engine_fixtures.py)."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest

from engine_fixtures import LOGS, PLANNED, SOURCES, before_launch, error, logged_interval, predicted
from kvplan.calc.budget import memory_budget
from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.kvgroups import kv_groups, tokens_for_kv_bytes
from kvplan.units import GIB


def test_every_fixture_has_its_source_and_file():
    assert len(SOURCES) >= 60
    for name, entry in SOURCES.items():
        # a public address, or the public file's id in the stored code index where the index names no repository
        assert (LOGS / name).is_file() and entry["source"].startswith(("http", "stored code index file id ")) and \
            entry["engine"] in ("vllm", "sglang", "trtllm")
    assert {p["engine"] for p in PLANNED} == {"vllm", "sglang", "trtllm"}
    assert all(p["file"] in SOURCES and SOURCES[p["file"]]["engine"] == p["engine"] for p in PLANNED)


@pytest.mark.parametrize("planned", PLANNED, ids=[p["file"] for p in PLANNED])
def test_the_logged_capacity_is_reproduced_from_the_logged_memory(catalog, planned):
    interval = logged_interval(catalog.model(planned["model"]), planned)
    if planned.get("no_kv_memory"):  # bench_latency prints the tokens, not the memory that holds them
        assert interval is None
        return
    assert interval is not None
    lo, hi = interval
    tokens = SOURCES[planned["file"]]["logged"]["kv_tokens"]
    if planned.get("unexplained"):  # said in the mapping, not reproduced: the test fails once a rule explains it
        assert not lo <= tokens <= hi
    else:
        assert lo <= tokens <= hi, (lo, tokens, hi)


# Fixtures whose prediction from defaults is known to miss, and why (each measured, not fitted):
OFF_FROM_DEFAULTS = {
    # the PyTorch sort's 38 B a logit over 256 rows (1.4 GiB) is more than the 1.0 GiB this log leaves for the
    # profile peak: the AWQ MoE on an RTX 3090 peaks lower than the H100 and H200 logs that measure 38
    "vllm-0.10.0-qwen3-30b-a3b-awq-rtx3090-1.log": 0.05,
    # the two lines come from different workers, and the log states no weights
    "vllm-unknown-qwen3-235b-a22b-fp8-h100-tp4-1.log": 0.05,
    # an RTX A6000 with ECC on: 44.55 GiB, not the 47.54 of the database's (ECC off); at a utilization of 0.1 the
    # 2.99 GiB are 0.30 GiB of a 3.88 GiB pool
    "vllm-0.8.3-qwen2.5-0.5b-awq-rtx-a6000-1.log": 0.05,
}
# "capped": a pool the engine sized to a cap, not by its rule (a prediction from the rule is no target)
WITH_GPU = [p for p in PLANNED if p.get("gpu") and not p.get("unexplained") and not p.get("capped")]


@pytest.mark.parametrize("planned", WITH_GPU, ids=[p["file"] for p in WITH_GPU])
def test_the_logged_capacity_is_predicted_from_defaults(catalog, planned):
    budget = predicted(catalog, planned)
    assert budget is not None
    off = abs(error(budget.token_capacity, SOURCES[planned["file"]]["logged"]["kv_tokens"]))
    if planned["file"] in OFF_FROM_DEFAULTS:
        assert off > OFF_FROM_DEFAULTS[planned["file"]]  # still off: when a rule closes it, move it out of the list
    else:
        assert off <= 0.05, off


@pytest.mark.parametrize("engine, share, median", [("vllm", 0.93, 0.01), ("sglang", 1.0, 0.005), ("trtllm", 1.0, 0.025)])
def test_most_predictions_land_within_5_percent(catalog, engine, share, median):
    """What examples/bench_accuracy.py measures, held so a change that loses accuracy fails: vLLM 29 of 31
    within 5%, median 0.92%; SGLang 9 of 9, 0.36%; TensorRT-LLM 4 of 4, 2.28% (the 0.12 GPT-J-6B log leaves
    3.0 GiB outside every term its lines name, +4.1%; docs/engine-rules)."""
    offs = [abs(error(predicted(catalog, p).token_capacity, SOURCES[p["file"]]["logged"]["kv_tokens"]))  # type: ignore[union-attr]
            for p in WITH_GPU if p["engine"] == engine]
    assert sum(o <= 0.05 for o in offs) / len(offs) >= share and statistics.median(offs) <= median


def test_gpt_oss_120b_is_two_groups_of_18_layers(catalog):
    """gpt-oss-120b at TP 4 on A100s (vLLM 0.10.1.1): 18 sliding + 18 full layers of one page size,
    2 groups of 18; a page of one layer is 16 tokens x 2 x (8 / 4 KV heads) x 64 x 2 B = 8,192 B.
    45.32 GiB = 48,661,908,274 B -> floor(/ (8,192 x 18)) = 330,010 blocks -> floor(/ 2) x 16 = 2,640,080,
    and the log's 2,640,144 = 165,009 x 16 lies within its two-decimal rounding."""
    model = catalog.model("gpt-oss-120b")
    layout = kv_groups(model, resolve_kv_format(model, "auto"), tp=4)
    assert layout is not None and (layout.group_size, layout.groups, layout.padding_layers) == (18, 2, 0)
    assert tokens_for_kv_bytes(model, int(45.32 * GIB), resolve_kv_format(model, "auto"), tp=4) == 2_640_080


def test_gemma3_27b_pads_its_sliding_groups(catalog):
    """Gemma-3-27B: 10 full and 52 sliding layers -> groups of 10: 1 full + ceil(52 / 10) = 6 sliding,
    8 padding layers; a pool holds 62/70 of the tokens an unpadded count of its layers gives."""
    model = catalog.model("gemma3-27b")
    fmt = resolve_kv_format(model, "auto")
    layout = kv_groups(model, fmt)
    assert layout is not None and (layout.group_size, layout.groups, layout.padding_layers) == (10, 7, 8)
    page = 16 * 2 * 16 * 128 * 2  # 131,072 B: 16 tokens x K,V x 16 KV heads x 128 x 2 B
    kv = 70 * page * 1000  # 1,000 blocks of every one of the 70 (padded) layers
    # num_blocks = 70,000 pages / 10 layers a group = 7,000; tokens = floor(7,000 / 7 groups) x 16 = 16,000,
    # where 62 unpadded layers would give floor(70,000 / 62) x 16 = 1,129 x 16 = 18,064 (13% more)
    assert tokens_for_kv_bytes(model, kv, fmt) == 16_000


def test_an_ecc_on_a6000_is_planned_with_its_own_total(catalog):
    """The RTX A6000 fixture runs with ECC on: vLLM logs total_gpu_memory (44.55GiB), where the database's
    ECC-off card has 47.54. Given that total (--gpu-mem 44.55), the prediction from defaults lands within 1%
    of the logged 338,976 tokens (it is +8.4% on the database's total). The log's own terms: 0.1 x 44.55 GiB
    = 4.455 GiB, less 0.43 GiB of int4 weights, 0.09 of activation and 0.06 of non-torch memory, leaves
    3.875 GiB; its 338,976 tokens x 12,288 B (24 layers x 2 x 2 KV heads x 64 x 2 B) = 3.879 GiB."""
    planned = next(p for p in PLANNED if p["file"] == "vllm-0.8.3-qwen2.5-0.5b-awq-rtx-a6000-1.log")
    inputs = replace(before_launch(planned), gpu_mem_bytes=int(44.55 * GIB))
    budget = memory_budget(catalog.model("qwen2.5-0.5b"), catalog.gpu("rtx-a6000"), inputs)
    assert abs(error(budget.token_capacity, 338_976)) < 0.01
    assert abs(error(predicted(catalog, planned).token_capacity, 338_976)) > 0.05  # type: ignore[union-attr]
