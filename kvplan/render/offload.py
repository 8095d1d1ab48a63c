"""Rendering for `kvplan offload`."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from kvplan.render.base import explain_table, origin_line, print_prose
from kvplan.results.offload import OffloadResult
from kvplan.units import fmt_binary, fmt_bytes


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.3f} ms"


def _digits(value: float) -> str:
    """About 3 significant digits, never an exponent: 0.0123, 970, 2,060, 11,100."""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def wins_from(first: int | None) -> str:
    """Where reloading starts to win: never, at any prefix, or from a length."""
    return "never" if first is None else "any prefix" if first == 1 else f"{first:,} tokens"


def render_offload(console: Console, r: OffloadResult, explain: bool = False) -> None:
    gpus = f"{r.tp} x {r.gpu}" if r.tp > 1 else r.gpu
    print_prose(console, f" on {gpus}: an evicted prefix of {r.prefix_tokens:,} tokens, "
                f"{fmt_bytes(r.kv_bytes)} of {r.kv_dtype} KV" + (" per GPU" if r.tp > 1 else ""), bold=r.model)
    print_prose(console, f"Recompute: {_ms(r.recompute_s)} = weights {_ms(r.recompute_linear_s)} + attention "
                f"{_ms(r.recompute_attention_s)} ({r.params_per_token / 1e9:,.2f}B\x00params per token, "
                f"{r.tflops:g} TFLOPS x MFU {r.mfu:.3g}; {r.tflops_source})")
    table = Table(title="Load or recompute, per tier (ratio = recompute time / load time)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for name in ("Tier", "GB/s", "Load", "Ratio", "Faster", "Break-even GB/s", "Load wins from"):
        table.add_column(name, justify="left" if name in ("Tier", "Faster") else "right")
    for t in r.tiers:
        wins = wins_from(t.breakeven_prefix_tokens)
        table.add_row(t.tier, f"{t.gbps:,.4g}", _ms(t.load_s), f"{t.ratio:,.1f}x", t.winner,
                      "never" if t.breakeven_gbps is None else f"{t.breakeven_gbps:,.2f}", wins)
    console.print(table)
    if r.capacity:
        note = "" if r.gpu_kv_tokens else " (the weights leave no room: raise --tp)"
        console.print(f"GPU KV pool (vLLM defaults, TP {r.tp}): {r.gpu_kv_tokens:,} tokens{note}")
        for c in r.capacity:
            console.print(f"{c.tier} {fmt_binary(c.budget_bytes)}: {c.tokens:,} more tokens, "
                          f"{c.requests:,} prefixes of {r.prefix_tokens:,}")
    if r.sweep:
        sweep = Table(title="As prefixes grow, ms (L: loading wins, R: recomputing wins)", title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
        sweep.add_column("Prefix", justify="right", no_wrap=True)
        sweep.add_column("Recomp.", justify="right", no_wrap=True)  # units in the title: cells on one line
        names = list(r.sweep[0].load_s)
        for name in names:
            sweep.add_column(name.replace("nvlink-", ""), justify="right", no_wrap=True)
        for row in r.sweep:
            sweep.add_row(f"{row.prefix_tokens:,}", _digits(row.recompute_s * 1e3),  # 3 digits: 80 columns
                          *[f"{_digits(row.load_s[n] * 1e3)}{row.winner[n][0].upper()}" for n in names])
        console.print(sweep)
    if explain:
        console.print(explain_table(r.explain))
    if r.model_origin:
        console.print(origin_line(r.model_origin))
    console.print("[dim]GB/s = 10^9 B/s per direction; PCIe x16 per generation 16/32/64/128 GB/s.[/]")
