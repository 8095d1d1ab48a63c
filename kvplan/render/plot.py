"""Figures for `--plot` (the optional `plot` extra): sweeps as lines, `fit` and `frag` as stacked
bars. matplotlib is imported only here, and only when a plot is asked for."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from kvplan.errors import InputError
from kvplan.render.output import output_path, write_output
from kvplan.render.sweep import X_LABELS, series_points
from kvplan.results.capacity import FitResult
from kvplan.results.frag import FragResult
from kvplan.results.probe import ProbeResult
from kvplan.results.sweep import SweepResult
from kvplan.units import GIB, fmt_binary

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


def token_label(value: float) -> str:
    """Context ticks as people write them: 512, 1K, 32K, 128K, 1M (K = 1,024 tokens)."""
    for size, unit in ((1024**2, "M"), (1024, "K")):
        if value >= size and value % (size // 4) == 0:
            return f"{value / size:g}{unit}"
    return f"{value:,.0f}"


def fit_title(title: str, width: int = 64) -> str:
    """A title wrapped to the figure's width, so that it is never cut off."""
    return textwrap.fill(title, width=width, break_on_hyphens=False)


def plot_sweep(r: SweepResult, path: Path, title: str, log_y: bool = False) -> None:
    plt = _pyplot()
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {}
    for name, points in series_points(r).items():
        line, = ax.plot([p.x for p in points], [math.nan if p.value is None else p.value for p in points], marker="o",
                        label=name)  # a gap: a break in the line
        colours[name] = line.get_color()
    shown = [p.value for p in r.points if isinstance(p.value, (int, float)) and p.value > 0]
    log_y = log_y or bool(shown and max(shown) / min(shown) > 100)  # a range over two decades reads on a log axis
    if r.x_axis in ("ctx", "batch"):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sorted({p.x for p in r.points})))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: token_label(v) if r.x_axis == "ctx" else f"{v:,.0f}"))
    if log_y:
        ax.set_yscale("log")
    marks = list(r.marks.values())
    if r.x_axis == "ctx":  # each series' context limit, in its colour (one grey line when they share it)
        limits = {m["max_context"] for m in marks}
        for name, mark in r.marks.items():
            if len(limits) > 1:
                ax.axvline(mark["max_context"], color=colours.get(name, "grey"), linestyle="--", alpha=0.6,
                           label=f"{name}: max context")
        if len(limits) == 1:
            ax.axvline(marks[0]["max_context"], color="grey", linestyle="--", label="model's max context")
    if r.x_axis == "batch" and marks and marks[0]["compute_bound_batch"]:
        ax.axvline(marks[0]["compute_bound_batch"], color="grey", linestyle=":", label="compute-bound batch")
    ax.set_xlabel(X_LABELS[r.x_axis])
    ax.set_ylabel(textwrap.fill(r.metric_label + (" (log scale)" if log_y else ""), 40))  # two lines, not the page
    ax.set_title(fit_title(title), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_stacked(path: Path, title: str, bars: dict[str, dict[str, float]], ylabel: str, total: float | None = None,
                 unit: str = "") -> None:
    """One stacked bar per key (a strategy, a GPU), segments in the order given, each labelled with
    its value; `total` draws the capacity the bars are measured against."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = list(bars)
    bottoms = [0.0] * len(names)
    top = max(max(sum(parts.values()) for parts in bars.values()), total or 0)
    for part in next(iter(bars.values())):
        heights = [bars[n][part] for n in names]
        drawn = ax.bar(names, heights, bottom=bottoms, label=part, width=0.5)
        labels = [f"{h:,.1f}{unit}" if h >= 0.04 * top else "" for h in heights]  # room for the text
        ax.bar_label(drawn, labels=labels, label_type="center", fontsize=8)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    if total is not None:
        ax.axhline(total, color="black", linestyle="--", linewidth=1)
        ax.annotate(f"GPU total {total:,.1f}{unit}", xy=(1.0, total), xycoords=("axes fraction", "data"),
                    xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=8)
    ax.set_ylim(0, top * 1.08)
    ax.set_ylabel(ylabel)
    ax.set_title(fit_title(title), fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_fit(r: FitResult, path: Path) -> None:
    """`kvplan fit --plot`: one GPU's memory as a stacked bar in GiB, against the GPU's total, with the
    headroom left once the requests are placed and what the engine's fraction keeps back."""
    b = r.budget
    used = r.kv_used_bytes if r.start.starts else 0  # an engine that does not start holds no request
    parts = {"weights": b.weights_bytes, "activation": b.activation_bytes, "overhead": b.overhead_bytes,
             **({"LoRA": b.lora_bytes} if b.lora_bytes else {}), "KV used": used, "KV free (headroom)": max(r.free_bytes + r.kv_used_bytes - used, 0),
             "kept back (1 - util)": r.held_back_bytes}
    title = (f"{r.model} on {b.gpu} (TP {b.tp}, PP {b.pp}), {r.ctx_tokens:,}-token requests, KV {b.kv_dtype}, "
             f"{b.engine}: {r.verdict}")
    plot_stacked(path, title, {b.gpu: {k: v / GIB for k, v in parts.items()}}, "GiB (2^30 B) per GPU",
                 total=b.total_bytes / GIB, unit=" GiB")


def plot_frag(r: FragResult, path: Path) -> None:
    """`kvplan frag --plot`: a stacked bar per strategy of live tokens and each kind of waste."""
    on = f"{r.gpu}, TP {r.tp}, {r.engine}" if r.gpu is not None else "a --kv-gib budget"
    plot_stacked(path, f"{r.model} on {on}: KV memory by allocation strategy ({r.workload}, max_len {r.max_len:,})",
                 {row.strategy: {"live tokens": 100 * row.live_share, "reservation": 100 * row.reservation_share,
                                 "internal": 100 * row.internal_share, "external": 100 * row.external_share}
                  for row in r.rows}, "share of KV memory (%)", unit="%")


def plot_transfer(r: ProbeResult, path: Path) -> None:
    """`kvplan probe --offload/--peers --plot`: GB/s against transfer size, a line per way of moving
    pages, with the database's host link (and NVLink) as dashed lines."""
    plt = _pyplot()
    t = r.transfer
    curves = [*(r.offload.reload.curves if r.offload else ()),
              *((*t.pairs, *([t.all_to_one] if t.all_to_one else []), *t.peer_copies) if t else ())]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in curves:
        ax.plot([p.bytes for p in c.points], [p.gbps for p in c.points], marker="o", label=f"{c.name}, {c.method}")
    lines = {"host link (database)": r.offload.reload.datasheet_gbps if r.offload else None,
             "NVLink per direction (database)": t.nvlink_gbps if t else None}
    for label, value in lines.items():
        if value:
            ax.axhline(value, linestyle="--", color="grey", linewidth=1)
            ax.annotate(f"{label}: {value:,g} GB/s", (0.01, value), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=8, color="grey")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(lambda value, _pos: fmt_binary(int(value)))
    ax.set_xlabel("transfer size (one prefix's pages, every layer)")
    ax.set_ylabel("GB/s (10^9 B/s)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(fit_title(f"kvplan probe {r.model} on {r.place}: GB/s against transfer size"),
                 fontsize=10)
    _save(fig, path)
    plt.close(fig)
