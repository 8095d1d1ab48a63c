"""Results of `kvplan sweep`."""

from __future__ import annotations

from kvplan.results.base import Result


class SweepPoint(Result):
    series: str
    x: int
    value: float  # the chosen metric; NaN where the point does not fit or the setting does not apply
    fits: bool  # the engine starts with max_len = the point's context, and the point's batch fits
    why: str  # why not, when it does not ("" when it does)
    metrics: dict[str, float]


class SweepResult(Result):
    x_axis: str
    ctx_tokens: int | None  # the context of every point when the context is not the swept axis
    metric: str
    metric_label: str
    points: tuple[SweepPoint, ...]
    marks: dict[str, dict[str, float]]  # per series: the model's max context, the compute-bound batch
