"""Results of `kvplan check`: each scenario's expectations, met or not, and the closest fix."""

from __future__ import annotations

from kvplan.results.base import Result


class Outcome(Result):
    expectation: str
    expected: str  # as shown: ">= 64"
    actual: str  # as shown: "2,768,224"
    passed: bool
    bound: int | float | bool | None = None  # the expected figure as a number: 64
    value: int | float | bool | None = None  # the measured figure as a number: 2768224


class ScenarioFix(Result):
    """One change of a scenario's fields after which every expectation passes."""

    settings: dict[str, int | str]  # scenario fields, e.g. {"max_model_len": 60352}
    concurrency: int  # the concurrency once fixed


class ScenarioResult(Result):
    name: str
    model: str
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
    gpu: str
    tp: int
    pp: int
    passed: bool
    outcomes: tuple[Outcome, ...]
    fixes: tuple[ScenarioFix, ...] = ()  # each single change that makes it pass (both fixes of preemption)
    fix: dict[str, int | str] | None = None  # the first of them, e.g. {"max_model_len": 60352}
    fix_concurrency: int | None = None  # the concurrency once fixed
    ignored_flags: tuple[str, ...]
    engine: str = ""  # the engine's display name
    command_settings: dict[str, int | float | str | bool] = {}  # what its engine command line set, by field


class CheckReport(Result):
    """`kvplan check --json`: the totals, then each scenario."""

    passed: int
    failed: int
    scenarios: tuple[ScenarioResult, ...]
