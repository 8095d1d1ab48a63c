"""The start-up log reader never fails with a traceback: the fixture logs cut at any character,
their lines shuffled or dropped, foreign files (a pytest log, JSON, YAML, this file) and random text
each come back as a LoggedStartup or a one-line SpecError, and every figure read is a finite number.
The profile is test_fuzz.py's ("ci" by default; KVPLAN_FUZZ=long runs thousands)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import fields
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_fixtures import LOGS, SOURCES
from kvplan.errors import SpecError
from kvplan.specs.engines.logs import LoggedStartup, read_log

EXAMPLES = 3000 if os.environ.get("KVPLAN_FUZZ") == "long" else 120
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
TEXTS = [(LOGS / name).read_text() for name in sorted(SOURCES)]
FOREIGN = [Path(__file__).read_text(), (LOGS / "SOURCES.yaml").read_text()[:20_000],
           '{"engine": "vllm", "kv_cache_gib": 1e309, "tokens": NaN}',
           "===== test session starts =====\nGPU KV cache size: lots\n3 passed, 1 warning in 0.5s"]


def check(text: str) -> None:
    """read_log returns a startup whose figures are finite, or raises SpecError with one line."""
    try:
        startup = read_log(text, "fuzz.log")
    except SpecError as refused:
        assert str(refused).startswith("fuzz.log: ") and "\n" not in str(refused)
        return
    assert isinstance(startup, LoggedStartup)
    for record in (startup, startup.memory, *startup.workers, *startup.pools):
        for value in (getattr(record, f.name) for f in fields(record)):  # type: ignore[arg-type]
            assert not isinstance(value, float) or math.isfinite(value)


@FUZZ
@given(st.sampled_from(TEXTS), st.integers(min_value=0, max_value=200_000))
def test_a_log_cut_anywhere(text, at):
    check(text[:at % (len(text) + 1)])


@FUZZ
@given(st.sampled_from(TEXTS), st.randoms(use_true_random=False), st.floats(min_value=0, max_value=1))
def test_a_log_shuffled_and_thinned(text, rng, keep):
    lines = [line for line in text.split("\n") if rng.random() < keep]
    rng.shuffle(lines)
    check("\n".join(lines))


@FUZZ
@given(st.sampled_from(TEXTS + FOREIGN), st.text(max_size=400), st.integers(min_value=0, max_value=5000))
def test_foreign_and_random_text_spliced_in(text, noise, at):
    check(text[:at] + noise + text[at:])


@FUZZ
@given(st.text(alphabet=st.sampled_from("GPU KV cache size: 0123456789,.\n\r\x1b[m()=TP_pid'{}:GiB x"), max_size=600))
def test_random_text_of_log_characters(text):
    check(text)


@FUZZ
@given(st.sampled_from(TEXTS), st.integers(min_value=300, max_value=400))
def test_figures_past_a_floats_range(text, digits):
    """Numbers of a log swollen to hundreds of digits, where float() gives inf."""
    check(re.sub(r"\d+", lambda m: m[0] + "9" * digits, text, count=40))


def test_figures_past_an_ints_range():
    """int() refuses a number of 4,300 digits or more (Python's limit): the line states nothing."""
    check("(EngineCore pid=1) INFO 05-06 22:30:35 [kv_cache_utils.py:1708] GPU KV cache size: " + "9" * 5000 + " tokens")
    check("Available KV cache memory: " + "9" * 5000 + ".5 GiB\nGPU KV cache size: 12 tokens")
