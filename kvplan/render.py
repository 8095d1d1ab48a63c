"""Rendering: results to rich tables and JSON. No arithmetic here beyond unit formatting."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from kvplan.results import KvSize, Step
from kvplan.specs import GpuSpec, ModelSpec
from kvplan.units import GIB, fmt_binary, fmt_bytes, fmt_int


def print_json(console: Console, payload: BaseModel | list | dict) -> None:
    import json

    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    elif isinstance(payload, list):
        payload = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in payload]
    console.out(json.dumps(payload, indent=2), highlight=False)


def explain_table(steps: Iterable[Step], title: str = "How it is computed") -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("Term")
    table.add_column("Formula")
    table.add_column("Value", justify="right", no_wrap=True)
    for step in steps:
        table.add_row(step.label, step.formula, step.value)
    return table


def _size_header(r: KvSize) -> str:
    return (f"[bold]{r.display_name}[/] ({r.model})\nctx {r.ctx_tokens:,} tokens · batch {r.batch:,}"
            f" · KV {r.kv_dtype} · TP {r.tp} · {r.block_size}-token pages")


def _layers_table(r: KvSize) -> Table:
    title = "KV cache by layer kind" + (f", one of {r.tp} GPUs" if r.tp > 1 else "")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("Layers", "left"), ("Held", "right"), ("B/tok/layer", "right"),
                          ("B/token", "right"), ("B/request", "right"), ("B/page", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "Layers")
    for layer in r.layers:
        per_layer = (fmt_int(layer.bytes_per_token_per_layer) if layer.bytes_per_token_per_layer
                     else f"state {layer.state_bytes_per_layer:,}")
        table.add_row(f"{layer.count} {layer.kind}\n{layer.description}", fmt_int(layer.cached_tokens),
                      per_layer, fmt_int(layer.bytes_per_token), fmt_int(layer.bytes_per_request),
                      fmt_int(layer.page_bytes_per_layer))
    return table


def _size_summary(r: KvSize) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    rank = "per GPU" if r.tp > 1 else ""
    table.add_row(f"KV per token {rank}".strip(), fmt_bytes(r.bytes_per_token_per_gpu))
    table.add_row(f"KV per request {rank}".strip(), fmt_bytes(r.bytes_per_request_per_gpu))
    if r.batch > 1:
        table.add_row(f"KV per batch of {r.batch:,} {rank}".strip(), fmt_bytes(r.bytes_per_batch_per_gpu))
    if r.tp > 1:
        table.add_row(f"KV per request, {r.tp} GPUs together", fmt_bytes(r.bytes_per_request_all_gpus))
        table.add_row("KV per request, unsharded", fmt_bytes(r.bytes_per_request_unsharded))
    table.add_row(f"Page of {r.block_size} tokens, all layers", fmt_bytes(r.page_bytes_per_gpu))
    table.add_row("Paged KV per request",
                  f"{fmt_bytes(r.paged_bytes_per_request_per_gpu)}, {r.pages_per_request:,} layer-pages")
    mha = r.without_gqa
    table.add_row("Same model without GQA",
                  f"{fmt_bytes(mha.bytes_per_request)} per request, {mha.ratio:.1f}x")
    return table


def size_notes(r: KvSize) -> list[str]:
    notes = []
    if r.kv_dtype_note:
        notes.append(f"KV dtype {r.kv_dtype}: {r.kv_dtype_note}.")
    if r.beyond_max_context:
        notes.append(f"ctx {r.ctx_tokens:,} is beyond {r.model}'s max context {r.max_context:,}; "
                     "the figures assume the cache could hold it.")
    if r.tp > 1 and r.bytes_per_request_all_gpus > r.bytes_per_request_unsharded:
        notes.append(f"TP {r.tp} replicates some KV (heads beyond the KV-head count, or an MLA "
                     "latent kept whole on every rank).")
    notes.append("Without GQA: every query head with its own K and V (an MLA latent decompressed).")
    notes.append("GiB = 2^30 B, GB = 10^9 B.")
    return notes


def render_size(console: Console, r: KvSize, explain: bool = False) -> None:
    console.print(_size_header(r))
    console.print(_layers_table(r))
    console.print(_size_summary(r))
    if explain:
        console.print(explain_table(r.explain))
    for note in size_notes(r):
        console.print(f"[dim]{note}[/]", highlight=False)


def models_table(models: Iterable[ModelSpec]) -> Table:
    table = Table(title="Models (params: total / active for MoE)", title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("Name", "left"), ("Params", "right"), ("Layers", "left"),
                          ("Max ctx", "right"), ("dtype", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "Layers")
    for m in models:
        params = f"{m.params_total / 1e9:,.1f}B" + (f" / {m.params_active / 1e9:,.1f}B" if m.params_active else "")
        layers = ", ".join(f"{g.count} {g.kind}" for g in m.layers)
        table.add_row(m.name, params, layers, fmt_int(m.max_context), m.dtype)
    return table


def gpus_table(gpus: Iterable[GpuSpec]) -> Table:
    table = Table(title="GPUs (memory in GiB = 2^30 B; GB/s = 10^9 B/s; dense TFLOPS)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("Name", "Memory", "Usable", "HBM GB/s", "BF16", "FP8", "Host link GB/s"):
        table.add_column(name, justify="left" if name in ("Name", "Host link GB/s") else "right",
                         no_wrap=name == "Name", min_width=14 if name == "Name" else None)
    for g in gpus:
        link = g.host_link
        host = (f"PCIe{link.generation} {link.gbps_per_direction:g}" if link.kind == "pcie"
                else f"C2C {link.gbps_per_direction:g}")
        usable = f"{g.usable_memory_bytes / GIB:.2f}" if g.usable_memory_bytes else "-"  # GiB
        table.add_row(g.name, f"{g.memory_bytes / GIB:g}", usable, f"{g.hbm_bandwidth_gbps:,g}",
                      _opt(g.bf16_tflops_dense), _opt(g.fp8_tflops_dense), host)
    return table


def _opt(value: float | None) -> str:
    return f"{value:,g}" if value is not None else "-"
