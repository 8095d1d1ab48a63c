"""Rendering for `kvplan size`. No arithmetic beyond unit formatting."""

from __future__ import annotations

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

from kvplan.render.base import explain_table
from kvplan.results.size import KvSize
from kvplan.units import fmt_bytes, fmt_int


def _size_header(r: KvSize) -> str:
    return (f"[bold]{r.display_name}[/] ({r.model})\nctx {r.ctx_tokens:,} tokens · batch {r.batch:,}"
            f" · KV {r.kv_dtype} · TP {r.tp} · {r.block_size}-token pages")


_LAYER_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("Layers", "left"), ("Held", "right"), ("B/tok/layer", "right"), ("B/token", "right"), ("B/request", "right"),
    ("B/page", "right"))


def _layers_table(r: KvSize) -> Table:
    title = "KV cache by layer kind" + (f", one of {r.tp} GPUs" if r.tp > 1 else "")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in _LAYER_COLUMNS:
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
    if r.model_origin:
        notes.append(f"Model from {r.model_origin}.")
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
