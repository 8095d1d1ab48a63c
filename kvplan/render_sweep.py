"""Rendering for `kvplan sweep`: a table, a terminal line chart that fits 80 columns, CSV, and
(with the `plot` extra) a matplotlib figure."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kvplan.errors import InputError
from kvplan.results_sweep import SweepResult
from kvplan.units import GIB

X_LABELS = {"ctx": "context (tokens, log scale)", "batch": "batch (requests, log scale)", "tp": "tensor-parallel GPUs"}
MARKERS = "ox+*#@%&"
COLOURS = ("cyan", "magenta", "green", "yellow", "red", "blue", "white", "bright_black")


def _series(r: SweepResult) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in r.points:
        out.setdefault(p.series, []).append(p)
    return out


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.2f}"


def sweep_table(r: SweepResult) -> Table:
    series = _series(r)
    xs = [p.x for p in next(iter(series.values()))]
    table = Table(title=r.metric_label, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column(r.x_axis, justify="right")
    for name in series:
        table.add_column(name, justify="right")
    for i, x in enumerate(xs):
        table.add_row(f"{x:,}", *[_fmt(points[i].value) for points in series.values()])
    return table


def chart(r: SweepResult, width: int = 60, height: int = 12) -> Text:
    """A line chart on a character grid: y from 0 to the largest value, x log-spaced for ctx and
    batch; one marker per series; axes labelled with units. At most 80 columns wide."""
    series = _series(r)
    values = [p.value for p in r.points if not math.isnan(p.value)]
    top = max(values, default=0) or 1
    xs = sorted({p.x for p in r.points})
    scale = (lambda x: math.log(x)) if r.x_axis in ("ctx", "batch") else float  # noqa: E731
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
    text.append(" " * (label_width + 2) + f"x: {X_LABELS[r.x_axis]}; y: {r.metric_label}\n")
    for k, name in enumerate(series):
        text.append(f"  {MARKERS[k % len(MARKERS)]} ", style=COLOURS[k % len(COLOURS)])
        text.append(f"{name}\n")
    return text


def render_sweep(console: Console, r: SweepResult) -> None:
    console.print(sweep_table(r))
    console.print(chart(r))


def to_csv(r: SweepResult) -> str:
    buffer = io.StringIO()
    names = sorted({k for p in r.points for k in p.metrics})
    writer = csv.writer(buffer)
    writer.writerow(["series", r.x_axis, *names])
    for p in r.points:
        writer.writerow([p.series, p.x, *[p.metrics.get(k, "") for k in names]])
    return buffer.getvalue()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib; install it with: pip install 'kvplan[plot]'") from None
    return plt


def _save(fig, path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg"):
        raise InputError(f"--plot {path}: write a .png or .svg file")
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write it ({exc.strerror})") from None


def plot_sweep(r: SweepResult, path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in _series(r).items():
        ax.plot([p.x for p in points], [p.value for p in points], marker="o", label=name)
    if r.x_axis in ("ctx", "batch"):
        ax.set_xscale("log", base=2)
    marks = list(r.marks.values())
    if r.x_axis == "ctx" and len({m["max_context"] for m in marks}) == 1:
        ax.axvline(marks[0]["max_context"], color="grey", linestyle="--", label="model's max context")
    if r.x_axis == "batch" and marks and marks[0]["compute_bound_batch"]:
        ax.axvline(marks[0]["compute_bound_batch"], color="grey", linestyle=":", label="compute-bound batch")
    ax.set_xlabel(X_LABELS[r.x_axis])
    ax.set_ylabel(r.metric_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    plt.close(fig)


def plot_stacked(path: Path, title: str, bars: dict[str, dict[str, float]], ylabel: str) -> None:
    """One stacked bar per key (a strategy, a GPU), segments in the order given."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = list(bars)
    bottoms = [0.0] * len(names)
    for part in next(iter(bars.values())):
        heights = [bars[n][part] for n in names]
        ax.bar(names, heights, bottom=bottoms, label=part)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)
    plt.close(fig)


def plot_fit(r, path: Path) -> None:
    """`kvplan fit --plot`: one GPU's memory as a stacked bar, in GiB."""
    b = r.budget
    parts = {"weights": b.weights_bytes, "activation": b.activation_bytes, "overhead": b.overhead_bytes,
             "KV used": r.kv_used_bytes, "KV free": r.free_bytes}
    plot_stacked(path, f"{r.model} on {r.gpu}: {r.verdict}",
                 {f"{r.gpu} (TP {b.tp})": {k: v / GIB for k, v in parts.items()}}, "GiB (2^30 B)")


def plot_frag(r, path: Path) -> None:
    """`kvplan frag --plot`: a stacked bar per strategy of live tokens and each kind of waste."""
    plot_stacked(path, f"{r.model}: KV memory by allocation strategy ({r.workload})",
                 {row.strategy: {"live tokens": 100 * row.live_share, "reservation": 100 * row.reservation_share,
                                 "internal": 100 * row.internal_share, "external": 100 * row.external_share}
                  for row in r.rows}, "share of KV memory (%)")
