"""Rendering for `kvplan models` and `kvplan gpus`: the spec database as tables."""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.table import Table

from kvplan.results.catalog import GpuRow, ModelRow
from kvplan.units import GIB, fmt_int


def models_table(models: Iterable[ModelRow]) -> Table:
    table = Table(title="Models (params: total / active for MoE)", title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("Name", "left"), ("Params", "right"), ("Layers", "left"),
                          ("Max ctx", "right"), ("dtype", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "Layers")
    for m in models:
        params = f"{m.params_total / 1e9:,.1f}B" + (f" / {m.params_active / 1e9:,.1f}B" if m.params_active else "")
        layers = ", ".join(f"{count} {kind}" for kind, count in m.layer_counts)
        table.add_row(m.name, params, layers, fmt_int(m.max_context), m.dtype)
    return table


def gpus_table(gpus: Iterable[GpuRow]) -> Table:
    table = Table(title="GPUs (memory in GiB = 2^30 B; GB/s = 10^9 B/s; dense TFLOPS)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("Name", "Memory", "Usable", "HBM GB/s", "BF16", "FP8", "Host link GB/s"):
        table.add_column(name, justify="left" if name in ("Name", "Host link GB/s") else "right",
                         no_wrap=name == "Name", min_width=14 if name == "Name" else None)
    for g in gpus:
        host = (f"PCIe{g.host_link_generation} {g.host_link_gbps:g}" if g.host_link == "pcie"
                else f"C2C {g.host_link_gbps:g}")
        usable = f"{g.usable_memory_bytes / GIB:.2f}" if g.usable_memory_bytes else "-"  # GiB
        table.add_row(g.name, f"{g.memory_bytes / GIB:g}", usable, f"{g.hbm_bandwidth_gbps:,g}",
                      _opt(g.bf16_tflops_dense), _opt(g.fp8_tflops_dense), host)
    return table


def _opt(value: float | None) -> str:
    return f"{value:,g}" if value is not None else "-"
