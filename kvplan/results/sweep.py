"""Results of `kvplan sweep`."""

from __future__ import annotations

from kvplan.results.base import Result


class SweepPoint(Result):
    series: str
    x: int
    value: int | float | None  # the chosen metric: a count is an int; None where the point is not shown (null in JSON)
    fits: bool  # the engine starts with max_len, the point's requests are no longer than it, and its batch fits
    why: str  # why not, when it does not ("" when it does)
    metrics: dict[str, bool | int | float | None]  # every metric at the point; None where it does not apply


class SweepResult(Result):
    x_axis: str
    ctx_tokens: int | None  # the context of every point when the context is not the swept axis
    metric: str
    metric_label: str  # for concurrency, with the max_num_seqs it is capped at
    points: tuple[SweepPoint, ...]
    marks: dict[str, dict[str, int]]  # per series: the model's max context, the max_len run, the compute-bound batch
