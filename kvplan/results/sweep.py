"""Results of `kvplan sweep`."""

from __future__ import annotations

import math

from pydantic import field_serializer

from kvplan.results.base import Result


class SweepPoint(Result):
    series: str
    x: int
    value: float  # the chosen metric; NaN where the point does not fit or the setting does not apply (null in JSON)
    fits: bool  # the engine starts with max_len = the point's context, and the point's batch fits
    why: str  # why not, when it does not ("" when it does)
    metrics: dict[str, float]

    @field_serializer("value", when_used="json")
    def _null_for_nan(self, value: float) -> float | None:  # NaN is not JSON: a point not shown is null
        return None if math.isnan(value) else value

    @field_serializer("metrics", when_used="json")
    def _finite_metrics(self, metrics: dict[str, float]) -> dict[str, float | None]:
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}


class SweepResult(Result):
    x_axis: str
    ctx_tokens: int | None  # the context of every point when the context is not the swept axis
    metric: str
    metric_label: str
    points: tuple[SweepPoint, ...]
    marks: dict[str, dict[str, float]]  # per series: the model's max context, the compute-bound batch
