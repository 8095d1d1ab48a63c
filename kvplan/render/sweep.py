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

from kvplan.render.flags import flag
from kvplan.results.sweep import SweepResult

X_LABELS = {"ctx": "context (tokens, log scale)", "batch": "batch (requests, log scale)", "tp": "tensor-parallel GPUs"}
MARKERS = "ox+*#@%&"
COLOURS = ("cyan", "magenta", "green", "yellow", "red", "blue", "white", "bright_black")


def series_points(r: SweepResult) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in r.points:
        out.setdefault(p.series, []).append(p)
    return out


def _fmt(v: float | None) -> str:
    if v is None:
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
    values = [p.value for p in r.points if p.value is not None]
    top = max(values, default=0) or 1
    xs = sorted({p.x for p in r.points})
    scale = (lambda x: math.log(x)) if r.x_axis in ("ctx", "batch") else float
    lo, hi = scale(xs[0]), scale(xs[-1])
    grid = [[" "] * width for _ in range(height)]
    colours = [[None] * width for _ in range(height)]
    for k, points in enumerate(series.values()):
        for p in points:
            if p.value is None:
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
    text.append(" " * (label_width + 2) + f"x: {X_LABELS[r.x_axis]}{at}\n")  # one line each, so neither wraps
    text.append(" " * (label_width + 2) + f"y: {r.metric_label}\n")
    for k, name in enumerate(series):
        text.append(f"  {MARKERS[k % len(MARKERS)]} ", style=COLOURS[k % len(COLOURS)])
        text.append(f"{name}\n")
    return text


def run_line(r: SweepResult) -> str:
    """The requests and the max_len the engine runs at: 'requests of 4,096 tokens, max_len 131,072 (the
    model's context)'; each series' max_len when they differ."""
    at = f"requests of {r.ctx_tokens:,} tokens, " if r.ctx_tokens else ""
    lens = {m["max_len"] for m in r.marks.values()}
    if len(lens) > 1:
        return at + "max_len " + ", ".join(f"{name} {m['max_len']:,}" for name, m in r.marks.items())
    context = all(m["max_len"] == m["max_context"] for m in r.marks.values())
    return at + f"max_len {lens.pop():,}" + (" (the model's context)" if context else "")


def render_sweep(console: Console, r: SweepResult) -> None:
    console.print(f"[bold]{r.metric_label}[/]")
    console.print(run_line(r))
    console.print(sweep_table(r))
    console.print(chart(r))
    gaps = [p for p in r.points if not p.fits]
    if gaps:
        reasons = list(dict.fromkeys(p.why for p in gaps))  # each once, in sweep order
        console.print(f"[dim]-: not shown, {len(gaps)} point(s) that do not fit: {'; '.join(reasons[:3])}.[/]")
    capped = [p for p in r.points
              if r.metric == "concurrency" and p.fits and (p.metrics.get("fitting") or 0) > (p.value or 0)]
    if capped:
        p = capped[0]
        console.print(f"[dim]Capped: {len(capped)} point(s) hold more requests than max_num_seqs runs at once "
                      f"(first: {p.series} at {r.x_axis} {p.x:,}, {p.metrics['fitting']:,} fit, {p.value:,} run); "
                      f"{flag('max_num_seqs')} raises the cap.[/]")


def csv_cell(value: bool | int | float | str | None) -> str | int | float:
    """A CSV cell: a count as an integer, a boolean as true/false (as in JSON), nothing where None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def to_csv(r: SweepResult) -> str:
    """One row per point: series, x, whether it fits and why not, then every metric (empty where it
    does not apply: the chosen metric at a point not shown)."""
    buffer = io.StringIO()
    names = sorted({k for p in r.points for k in p.metrics})
    writer = csv.writer(buffer)
    writer.writerow(["series", r.x_axis, "fits", "why", *names])
    for p in r.points:
        writer.writerow([p.series, p.x, csv_cell(p.fits), p.why, *[csv_cell(p.metrics.get(k)) for k in names]])
    return buffer.getvalue()
