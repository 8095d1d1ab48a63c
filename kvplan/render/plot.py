"""Figures for `--plot` (the optional `plot` extra): sweeps as lines, `fit` and `frag` as stacked
bars. matplotlib is imported only here, and only when a plot is asked for."""

from __future__ import annotations

from pathlib import Path

from kvplan.errors import InputError
from kvplan.render.output import output_path, write_output
from kvplan.render.sweep import X_LABELS, series_points
from kvplan.results.capacity import FitResult
from kvplan.results.frag import FragResult
from kvplan.results.sweep import SweepResult
from kvplan.units import GIB

PLOT_SUFFIXES = (".png", ".svg")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install matplotlib (or, in a kvplan checkout, "
                         "pip install '.[plot]')") from None
    return plt


def _save(fig, path: Path) -> None:
    import io

    output_path(path, "--plot", PLOT_SUFFIXES)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lower().lstrip("."), dpi=120, bbox_inches="tight")
    write_output(path, buffer.getvalue(), "--plot")


def plot_sweep(r: SweepResult, path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in series_points(r).items():
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


def plot_fit(r: FitResult, path: Path) -> None:
    """`kvplan fit --plot`: one GPU's memory as a stacked bar, in GiB."""
    b = r.budget
    parts = {"weights": b.weights_bytes, "activation": b.activation_bytes, "overhead": b.overhead_bytes,
             "KV used": r.kv_used_bytes, "KV free": r.free_bytes}
    plot_stacked(path, f"{r.model} on {r.gpu}: {r.verdict}",
                 {f"{r.gpu} (TP {b.tp})": {k: v / GIB for k, v in parts.items()}}, "GiB (2^30 B)")


def plot_frag(r: FragResult, path: Path) -> None:
    """`kvplan frag --plot`: a stacked bar per strategy of live tokens and each kind of waste."""
    plot_stacked(path, f"{r.model}: KV memory by allocation strategy ({r.workload})",
                 {row.strategy: {"live tokens": 100 * row.live_share, "reservation": 100 * row.reservation_share,
                                 "internal": 100 * row.internal_share, "external": 100 * row.external_share}
                  for row in r.rows}, "share of KV memory (%)")
