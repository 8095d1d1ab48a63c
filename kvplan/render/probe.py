"""Rendering for `kvplan probe`: what was checked, predicted against measured, with a verdict."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from kvplan.render.base import print_prose
from kvplan.render.probe_offload import render_offload_section, render_transfer_section
from kvplan.results.probe import ProbeResult
from kvplan.units import fmt_bytes

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "info": "cyan"}


def render_probe(console: Console, r: ProbeResult) -> None:
    m = r.memory
    print_prose(console, f" {r.model} on {r.device} ({r.device_name}) · torch\x00{r.torch_version}"
                + (f" · triton\x00{r.triton_version}" if r.triton_version else "") + f" · KV\x00{r.kv_dtype}",
                bold="kvplan probe")
    print_prose(console, f"Free {fmt_bytes(m.free_bytes)} of {fmt_bytes(m.total_bytes)}"
                + (f"; NVML total {m.nvml_total_bytes:,} B, used {m.nvml_used_bytes:,} B" if r.nvml else "; NVML absent"))
    print_prose(console, f"Probe budget {fmt_bytes(m.budget_bytes)}; margin {m.margin_bytes:,} B"
                + (f", cap {m.cap_bytes:,} B" if m.cap_bytes else "")
                + (f"; reserved weights {fmt_bytes(m.weights_reserved_bytes)} + activations "
                   f"{fmt_bytes(m.activation_reserved_bytes)}" if m.weights_reserved_bytes else ""))
    table = Table(title="Checks", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("Check", "Predicted", "Measured", "Verdict"):
        table.add_column(name)
    for c in r.checks:
        table.add_row(c.check, c.predicted, c.measured, f"[{VERDICT_STYLE[c.verdict]}]{c.verdict}[/]")
    console.print(table)
    t = r.page_table
    if t.requested_batch > t.batch:  # the probe placed fewer requests than asked: say so, and why
        print_prose(console, f"--batch {t.requested_batch:,} lowered to {t.batch:,}: the pool holds {t.batch:,} "
                    f"request{'s' if t.batch != 1 else ''} of {t.ctx_tokens:,} tokens", style="yellow")
    print_prose(console, f"Pool: {r.pool.note}; left unused {fmt_bytes(max(r.pool.left_unused_bytes, 0))}. "
                + ("Everything allocated was released." if r.released else "Memory was left allocated."),
                style="" if r.released else "red")
    if not r.correctness:
        console.print(f"[dim]The attention kernels read 16- and 32-bit K/V pages; {r.kv_dtype} pages "
                      "(and MLA latents) are allocated and counted, not attended.[/]")
    if r.offload:
        render_offload_section(console, r.offload)
    if r.transfer:
        render_transfer_section(console, r.transfer)
    console.print("[dim]GB/s = 10^9 B/s of the bytes a run must move; GiB = 2^30 B.[/]")
