"""Results of `kvplan check`: each scenario's expectations, met or not, and the closest fix."""

from __future__ import annotations

from kvplan.results.base import Result


class Outcome(Result):
    expectation: str
    expected: str
    actual: str
    passed: bool


class ScenarioResult(Result):
    name: str
    model: str
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
    gpu: str
    tp: int
    pp: int
    passed: bool
    outcomes: tuple[Outcome, ...]
    suggestion: str | None
    fix: dict[str, int | str] | None = None  # the scenario fields that make it pass, e.g. {"max_model_len": 60352}
    fix_concurrency: int | None = None  # the concurrency once fixed
    ignored_flags: tuple[str, ...]
