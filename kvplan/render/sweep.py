"""Rendering for `kvplan sweep`: a table, a terminal line chart that fits 80 columns, and CSV
(figures for `--plot` are in :mod:`kvplan.render.plot`)."""

from __future__ import annotations

import csv
import io
import math

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kvplan.results.sweep import SweepResult

X_LABELS = {"ctx": "context (tokens, log scale)", "batch": "batch (requests, log scale)", "tp": "tensor-parallel GPUs"}
MARKERS = "ox+*#@%&"
COLOURS = ("cyan", "magenta", "green", "yellow", "red", "blue", "white", "bright_black")


def series_points(r: SweepResult) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in r.points:
        out.setdefault(p.series, []).append(p)
    return out


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.2f}"


def sweep_table(r: SweepResult) -> Table:
    series = series_points(r)
    xs = [p.x for p in next(iter(series.values()))]
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column(r.x_axis, justify="right")
    for name in series:
        table.add_column(name, justify="right")
    for i, x in enumerate(xs):
        table.add_row(f"{x:,}", *[_fmt(points[i].value) for points in series.values()])
    return table


def chart(r: SweepResult, width: int = 60, height: int = 12) -> Text:
    """A line chart on a character grid: y from 0 to the largest value, x log-spaced for ctx and
    batch; one marker per series; axes labelled with units. At most 80 columns wide."""
    series = series_points(r)
    values = [p.value for p in r.points if not math.isnan(p.value)]
    top = max(values, default=0) or 1
    xs = sorted({p.x for p in r.points})
    scale = (lambda x: math.log(x)) if r.x_axis in ("ctx", "batch") else float
    lo, hi = scale(xs[0]), scale(xs[-1])
    grid = [[" "] * width for _ in range(height)]
    colours = [[None] * width for _ in range(height)]
    for k, points in enumerate(series.values()):
        for p in points:
            if math.isnan(p.value):
                continue
            col = 0 if hi == lo else round((scale(p.x) - lo) / (hi - lo) * (width - 1))
            row = height - 1 - round(p.value / top * (height - 1))
            grid[row][col], colours[row][col] = MARKERS[k % len(MARKERS)], COLOURS[k % len(COLOURS)]
    text = Text()
    label_width = max(len(_fmt(top)), len("0"))
    for i, row in enumerate(grid):
        y = top if i == 0 else 0 if i == height - 1 else None
        text.append(f"{_fmt(y) if y is not None else '':>{label_width}} |")
        for ch, colour in zip(row, colours[i]):
            text.append(ch, style=colour)
        text.append("\n")
    text.append(" " * label_width + " +" + "-" * width + "\n")
    left, right = f"{xs[0]:,}", f"{xs[-1]:,}"
    text.append(" " * (label_width + 2) + left + " " * max(width - len(left) - len(right), 1) + right + "\n")
    at = f" at {r.ctx_tokens:,} tokens" if r.ctx_tokens else ""
    text.append(" " * (label_width + 2) + f"x: {X_LABELS[r.x_axis]}{at}; y: {r.metric_label}\n")
    for k, name in enumerate(series):
        text.append(f"  {MARKERS[k % len(MARKERS)]} ", style=COLOURS[k % len(COLOURS)])
        text.append(f"{name}\n")
    return text


def render_sweep(console: Console, r: SweepResult) -> None:
    at = f", requests of {r.ctx_tokens:,} tokens" if r.ctx_tokens else ""
    console.print(f"[bold]{r.metric_label}{at}[/]")
    console.print(sweep_table(r))
    console.print(chart(r))
    gaps = [p for p in r.points if not p.fits]
    if gaps:
        reasons = sorted({p.why for p in gaps})
        console.print(f"[dim]-: not shown, {len(gaps)} point(s) that do not fit: {'; '.join(reasons[:3])}.[/]")


def to_csv(r: SweepResult) -> str:
    buffer = io.StringIO()
    names = sorted({k for p in r.points for k in p.metrics})
    writer = csv.writer(buffer)
    writer.writerow(["series", r.x_axis, *names])
    for p in r.points:
        writer.writerow([p.series, p.x, *[p.metrics.get(k, "") for k in names]])
    return buffer.getvalue()
