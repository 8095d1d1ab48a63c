"""Rendering for `kvplan models`, `kvplan gpus` and `kvplan engines`: the spec database as tables."""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Group, JustifyMethod, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from kvplan.results.catalog import EngineRow, FamilyReleases, GpuRow, ModelRow
from kvplan.units import GIB, fmt_int


_MODEL_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("Name", "left"), ("Params, B", "right"), ("Layers", "left"), ("Context", "right"), ("dtype", "left"))


def models_table(models: Iterable[ModelRow]) -> Table:
    table = Table(title="Models (params in billions: total / active for MoE)", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for name, justify in _MODEL_COLUMNS:
        table.add_column(name, justify=justify, no_wrap=name != "Layers", min_width={"dtype": 5}.get(name))
    for m in models:
        params = f"{m.params_total / 1e9:,.1f}" + (f" / {m.params_active / 1e9:,.1f}" if m.params_active else "")
        layers = ", ".join(f"{count} {kind}" for kind, count in m.layer_counts)
        table.add_row(m.name, params, layers, fmt_int(m.max_context), m.dtype)
    return table


def releases_table(families: Iterable[FamilyReleases]) -> Table:
    table = Table(title="Releases by family, newest first", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for name in ("Family", "Released", "Model"):
        table.add_column(name, no_wrap=True)
    for f in families:
        for i, r in enumerate(f.releases):
            table.add_row(f.family if i == 0 else "", str(r.released) if r.released else "date unknown", r.name)
    return table


RELEASES_NOTE = ("Released: the day the config was published, from the source the spec's released_source names "
                 "(kvplan show NAME); 'date unknown' where no checkable source was found. Family: the spec's "
                 "family (the config's model_type, or the release series), - read as _.")


BASIS_MARKS = {"measured CUDA total": "", "NVML total": "*", "datasheet": "**", "HIP": "†"}


def _basis_mark(basis: str) -> str:
    return next((mark for prefix, mark in BASIS_MARKS.items() if basis.startswith(prefix)), "")


def gpus_table(gpus: Iterable[GpuRow]) -> Table:
    table = Table(title="GPUs (memory in GiB = 2^30 B; GB/s = 10^9 B/s; dense TFLOPS)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("Name", "Memory", "CUDA", "HBM GB/s", "BF16", "FP8", "Host link GB/s"):
        table.add_column(name, justify="left" if name in ("Name", "Host link GB/s") else "right",
                         no_wrap=name == "Name", min_width=14 if name == "Name" else None)
    for g in gpus:
        host = (f"PCIe{g.host_link_generation} {g.host_link_gbps:g}" if g.host_link == "pcie"
                else f"C2C {g.host_link_gbps:g}")
        cuda = f"{g.cuda_memory_bytes / GIB:.2f}{_basis_mark(g.cuda_memory_basis)}"  # GiB
        table.add_row(g.name, f"{g.memory_bytes / GIB:g}", cuda, f"{g.hbm_bandwidth_gbps:,g}",
                      _opt(g.bf16_tflops_dense), _opt(g.fp8_tflops_dense), host)
    return table


GPU_NOTE = ("CUDA: the total a process sees (cudaMemGetInfo), every engine budget's basis: measured; "
            "* NVML total less the driver's 480 MiB reserve (measured on an H100); ** datasheet less that "
            "reserve; † HIP total.")


def _opt(value: float | None) -> str:
    return f"{value:,g}" if value is not None else "-"


def engines_table(rows: Iterable[EngineRow]) -> Group:
    """Each preset as a line of its facts and, indented under it, what it changes: a sentence reads at
    80 columns as a paragraph, not as a column a word wide."""
    parts: list[RenderableType] = [Text("Engines and their release presets (--engine NAME or NAME==VERSION; "
                                        "* the name's default)", style="bold"), Text()]
    for r in rows:
        head = Text(f"{r.key}{' *' if r.default else ''}", style="bold")
        head.append(f"  releases {r.versions}  ·  fraction {r.util:g}  ·  block {r.block_size}", style="")
        parts += [head, Padding(Text(r.changes), (0, 0, 1, 4))]
    return Group(*parts)
