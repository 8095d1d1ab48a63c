"""Rendering for `kvplan probe --offload` and `--peers`: one table a section, 80 columns."""

from __future__ import annotations

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

from kvplan.render.base import print_prose
from kvplan.render.offload import wins_from
from kvplan.results.offload import ReloadVerdict
from kvplan.results.probe_offload import ProbeOffload, ProbeTransfer, TransferCurve
from kvplan.units import fmt_binary


def _rate(gbps: float) -> str:
    return f"{gbps:,.0f}" if gbps >= 100 else f"{gbps:,.2f}" if gbps >= 1 else f"{gbps:.3f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.3g} ms" if seconds < 1 else f"{seconds:,.3g} s"


_CURVE_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("Way", "left"), ("Method", "left"), ("Size", "right"), ("GB/s", "right"), ("Fit GB/s", "right"),
    ("Latency", "right"), ("Pages", "right"))


def _curves(title: str, curves: list[TransferCurve], shares: list[float | None] | None = None) -> Table:
    """Rate at the largest size, the fit (rate and per-transfer latency), pages that arrived."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in _CURVE_COLUMNS:
        table.add_column(name, justify=justify, no_wrap=True)
    for c, share in zip(curves, shares or [None] * len(curves)):
        last = c.points[-1]
        of_link = f" {share:.0%}" if share is not None else ""
        ok = f"{c.pages_ok:,}/{c.pages_checked:,}"
        table.add_row(c.name, c.method, fmt_binary(last.bytes), _rate(last.gbps) + of_link, _rate(c.fitted_gbps),
                      f"{c.fitted_latency_us:,.0f} us", ok if c.verified else f"[bold red]{ok}[/]")
    return table


def _ratio(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.3g}x"


def _verdicts(rows: dict[str, ReloadVerdict]) -> Table:
    table = Table(title="Reload or recompute the prefix (ratio = recompute / reload)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("Basis", "GB/s", "TFLOPS", "Reload", "Recompute", "Ratio", "Reload wins from"):
        table.add_column(name, justify="left" if name == "Basis" else "right", no_wrap=name != "Basis")
    for label, v in rows.items():
        table.add_row(label, _rate(v.link_gbps), f"{v.tflops:,.3g}", _ms(v.load_s), _ms(v.recompute_s),
                      _ratio(v.ratio), wins_from(v.breakeven_prefix_tokens))
    return table


def render_offload_section(console: Console, o: ProbeOffload) -> None:
    r, c = o.reload, o.recompute
    against = f"; % of {r.datasheet_gbps:g} GB/s, {r.datasheet_link}" if r.datasheet_gbps else ""
    print_prose(console, f" a {r.prefix_tokens:,}-token prefix: {r.layers} layers, {r.pages:,} pages, "
                f"{fmt_binary(r.host_bytes)} each side" + (", pinned host memory" if r.pinned else
                " (on the CPU both sides are host memory)") + against, bold="Reload")
    console.print(_curves("Copies through the page tables, timed at 1 page to the whole pool",
                          list(r.curves), [r.datasheet_share(c) for c in r.curves]))
    if r.states_bytes:
        print_prose(console, f"{r.states_bytes:,} B of constant state a request are not pages: not copied.", style="dim")
    peak = (f"MFU {c.mfu:.2f} of {c.peak_tflops:g} TFLOPS ({c.peak_source}); kvplan offload assumes "
            f"{c.assumed_mfu:g}" if c.mfu is not None else
            f"no datasheet peak on the CPU, so no MFU; kvplan offload assumes {c.assumed_mfu:g} of a GPU's")
    print_prose(console, f" the prefix: {c.layers_timed} of {c.layers_total} layers timed ({c.shapes}), "
                f"{c.dtype}: {_ms(c.ms / 1e3)}, {c.achieved_tflops:,.3g} TFLOPS achieved; {peak}", bold="Recompute")
    rows = {label: v for label, v in (("assumed", o.predicted), ("measured", o.measured)) if v}
    console.print(_verdicts(rows))
    for label, v in rows.items():
        print_prose(console, f"{label}: {v.basis}; reload = {v.kv_bytes:,} B / {_rate(v.link_gbps)} GB/s + "
                    f"{v.latency_us:,.0f} us", style="dim")


def render_transfer_section(console: Console, t: ProbeTransfer) -> None:
    print_prose(console, f": {t.world} processes, {t.backend} ({t.launcher}); a page is {t.page_bytes:,} B (one "
                f"block of every layer), {t.pages:,} pages at most", bold="Peers")
    for d in t.devices:
        print_prose(console, f"rank {d.rank}: {d.device} ({d.name}), {fmt_binary(d.free_bytes)} free of "
                    f"{fmt_binary(d.total_bytes)}; pools {fmt_binary(d.pool_bytes)}")
    curves = [*t.pairs, *([t.all_to_one] if t.all_to_one else []), *t.peer_copies]
    console.print(_curves("Pages between devices, timed by the receiver", curves))
    for line in t.topology:
        print_prose(console, line)
    if t.nvlink_gbps:
        print_prose(console, f"The GPU database: NVLink {t.nvlink_gbps:,g} GB/s per direction, host link "
                    f"{t.pcie_gbps:,g} GB/s.", style="dim")
