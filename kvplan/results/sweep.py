"""Results of `kvplan sweep`."""

from __future__ import annotations

from kvplan.results.base import Result


class SweepPoint(Result):
    series: str
    x: int
    value: float  # the chosen metric; NaN where the setting does not apply (e.g. a TP the heads forbid)
    metrics: dict[str, float]


class SweepResult(Result):
    x_axis: str
    metric: str
    metric_label: str
    points: tuple[SweepPoint, ...]
    marks: dict[str, dict[str, float]]  # per series: the model's max context, the compute-bound batch
