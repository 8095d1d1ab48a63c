"""Real engine start-up logs (tests/fixtures/engine_logs/, each with its source in SOURCES.yaml):
the token capacity each logs is reproduced from the KV memory it logs, within the log's rounding
(the GiB figure is printed to two decimals), by vLLM V1's layout of KV cache groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.kvgroups import kv_groups, tokens_for_kv_bytes
from kvplan.units import GIB

LOGS = Path(__file__).parent / "fixtures" / "engine_logs"
SOURCES = {e["file"]: e for e in yaml.safe_load((LOGS / "SOURCES.yaml").read_text())}
PLANNED = yaml.safe_load((LOGS / "kvplan.yaml").read_text())


def logged_interval(model, entry: dict, planned: dict) -> tuple[int, int]:
    """The tokens the logged KV memory holds at either end of its rounding (x.xx GiB +- 0.005)."""
    logged = entry["logged"]
    fmt = resolve_kv_format(model, planned.get("kv_dtype", "auto"))
    release = tuple(int(part) for part in str(planned["release"]).split(".")[:2])
    count = dict(tp=planned.get("tp", 1), max_model_len=logged.get("max_model_len"),
                 per_concurrency=release >= (0, 21))  # from 0.21: max concurrency x max_model_len
    ends = [tokens_for_kv_bytes(model, int((logged["kv_cache_gib"] + d) * GIB), fmt, **count) for d in (-0.005, 0.005)]
    assert None not in ends
    return ends[0], ends[1]  # type: ignore[return-value]


def test_every_fixture_has_its_source_and_file():
    assert len(SOURCES) >= 35
    for name, entry in SOURCES.items():
        assert (LOGS / name).is_file() and entry["source"].startswith("http") and entry["engine"] in (
            "vllm", "sglang", "trtllm")


@pytest.mark.parametrize("planned", PLANNED, ids=[p["file"] for p in PLANNED])
def test_the_logged_capacity_is_reproduced_from_the_logged_memory(catalog, planned):
    entry = SOURCES[planned["file"]]
    model = catalog.model(planned["model"])
    lo, hi = logged_interval(model, entry, planned)
    tokens = entry["logged"]["kv_tokens"]
    if planned.get("mixed_workers"):  # the two lines come from different workers: said, not reproduced
        assert not lo <= tokens <= hi
    else:
        assert lo <= tokens <= hi, (lo, tokens, hi)


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
