"""Allocate the paged KV pool for real: one tensor per attention layer, every byte accounted.

Full, sliding and chunked layers get FlashInfer's layout [num_pages, 2, page_size, kv_heads,
head_dim] in the KV dtype; an MLA latent, or a format with per-group scales (int8, int4), gets its
pages as raw bytes [num_pages, page_bytes]. A hybrid (windowed or chunked layers beside full ones)
is laid out as vLLM lays it out: layers share tensors, and every kind draws from one pool of
pages. Mamba states are per request, not pages: not allocated.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from kvplan.calc.kv import layers_kv, paged_request_bytes
from kvplan.specs.model import ModelSpec
from kvplan.units import KvFormat

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
                "fp8": getattr(torch, "float8_e4m3fn", None)}


def paged_groups(model: ModelSpec, fmt: KvFormat, block: int) -> list[tuple]:
    """(layer group, its LayerKv) for every group that is paged (Mamba states are not)."""
    return [(g, layer) for g, layer in zip(model.layers, layers_kv(model, 1, fmt, 1, block))
            if not layer.state_bytes_per_layer and layer.page_bytes_per_layer]


def shared_layers(model: ModelSpec, fmt: KvFormat, block: int) -> int | None:
    """vLLM's hybrid layout: when paged layers of different kinds (windowed and full, chunked and
    full) have pages of one size, g layers share each tensor and every kind draws its pages from
    one pool, g = the gcd of the kinds' layer counts. None: one tensor a layer (a single kind, or
    pages of different sizes)."""
    paged = paged_groups(model, fmt, block)
    if len(paged) < 2 or len({layer.page_bytes_per_layer for _, layer in paged}) != 1:
        return None
    return math.gcd(*(g.count for g, _ in paged))


def layer_shapes(model: ModelSpec, fmt: KvFormat, num_blocks: int, block: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """(shape, dtype) of each allocated tensor's pages, in layer-group order: one a layer, or, for a
    hybrid (see shared_layers), g tensors of num_blocks x layers / g pages each (the same bytes)."""
    shapes: list[tuple[tuple[int, ...], torch.dtype]] = []
    shape: tuple[int, ...]
    g = shared_layers(model, fmt, block)
    for group, layer in paged_groups(model, fmt, block):
        dtype = TORCH_DTYPES.get(fmt.name)
        heads_dim = group.kv_page_layout()  # FlashInfer's (kv_heads, head_dim), or raw bytes
        pages = num_blocks * sum(gr.count for gr, _ in paged_groups(model, fmt, block)) // g if g else num_blocks
        if dtype is not None and heads_dim:
            shape, dtype_ = (pages, 2, block, *heads_dim), dtype
        else:
            shape, dtype_ = (pages, layer.page_bytes_per_layer), torch.uint8
        if g:
            return [(shape, dtype_)] * g  # every kind shares these g tensors
        shapes.extend([(shape, dtype_)] * group.count)
    return shapes


def held_tokens(model: ModelSpec, ctx: int) -> int:
    """Tokens a request keeps at context ctx: the most any cached layer holds (a sliding window or a
    chunk caps it; a layer that keeps every token does not; a compressed layer counts its entries)."""
    return max((g.cached_tokens(ctx) for g in model.layers if g.kv_elements_per_token(1)), default=0)


def held_pages(model: ModelSpec, ctx: int, block: int) -> int:
    """Pages a request keeps at context ctx, as the engine pages them: the most any cached layer
    holds (a sliding window or a chunk caps it; a layer that keeps every token does not; a
    compressed layer's pages count the tokens it compresses)."""
    return max((g.held_pages(ctx, block) for g in model.layers if g.kv_elements_per_token(1)), default=0)


def pages_per_request(model: ModelSpec, fmt, budget, ctx: int) -> tuple[int, int]:
    """(pages one request takes from the pool, pages in the pool). One tensor a layer: the pages of
    the tokens it keeps, in every layer's tensor. A hybrid's shared tensors: each kind's pages for
    the tokens that kind keeps, count / g of them, from num_blocks x layers / g."""
    block = budget.block_size
    g = shared_layers(model, fmt, block)
    if g is None:
        return held_pages(model, ctx, block), budget.num_blocks
    paged = paged_groups(model, fmt, block)
    need = sum(group.count // g * -(-group.cached_tokens(ctx) // block) for group, _ in paged)
    return need, budget.num_blocks * sum(group.count for group, _ in paged) // g


@dataclass(frozen=True)
class Layout:
    """What the probe allocates: the tensors, the pages each holds (the page table's index space),
    and the bytes the calculator predicts for them."""

    shapes: list
    pages: int
    blocks: int  # pages of one layer's (or one shared tensor's) pool, as predicted
    predicted_bytes: int
    states: int  # requests whose constant states are allocated (0: the model keeps none)
    shared: bool

    def note(self, tensors: int, kv_dtype: str) -> str:
        if self.states:
            return (f"{tensors} tensors: pages for {self.states} requests, and their states, one slot each, "
                    f"{kv_dtype}")
        if self.shared:
            return f"{tensors} tensors shared by every kind of layer, {self.pages:,} pages each, {kv_dtype}"
        return f"{tensors} layers of {self.blocks:,} pages, {kv_dtype}"


def state_shapes(model: ModelSpec, fmt: KvFormat, block: int, requests: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """A constant-state layer (Mamba, Gated DeltaNet) gets one slot of its state's bytes a request."""
    return [((requests, layer.state_bytes_per_layer), torch.uint8)
            for group, layer in zip(model.layers, layers_kv(model, 1, fmt, 1, block)) if layer.state_bytes_per_layer
            for _ in range(group.count)]


def plan_layout(model: ModelSpec, fmt: KvFormat, budget, ctx: int) -> Layout:
    """The pool as the calculator counts it. With constant states, requests of ctx tokens are what
    the pool is for: n = pool // (one request's pages and states), and each gets its pages and a
    state slot; otherwise every layer gets the budget's pages."""
    block = budget.block_size
    per_request_states = sum(layer.count * layer.state_bytes_per_layer for layer in layers_kv(model, 1, fmt, 1, block))
    need, pages = pages_per_request(model, fmt, budget, ctx)
    shared = shared_layers(model, fmt, block) is not None
    if not per_request_states or shared:
        return Layout(layer_shapes(model, fmt, budget.num_blocks, block), pages, budget.num_blocks,
                      budget.num_blocks * budget.page_bytes, 0, shared)
    per_request = paged_request_bytes(model, ctx, fmt, 1, block)
    n = budget.usable_pool_bytes // per_request
    shapes = layer_shapes(model, fmt, n * need, block) + state_shapes(model, fmt, block, n)
    return Layout(shapes, n * need, n * need, n * per_request, n, False)


def tensor_bytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes()


@contextmanager
def allocated(shapes, device: torch.device):
    """Allocate every layer's pages; release them however the block ends (errors, Ctrl-C)."""
    tensors: list[torch.Tensor] = []
    try:
        for shape, dtype in shapes:
            tensors.append(torch.empty(shape, dtype=dtype, device=device))
        yield tensors
    finally:
        tensors.clear()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()


def allocator_bytes(device: torch.device) -> int | None:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else None


# PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp): a request is rounded up to
# 512 B; a fresh segment for a request over 10 MiB is rounded up to 2 MiB; the segment is split
# (and the rest left free) only when more than 1 MiB would remain, else the whole segment counts
# as allocated. With expandable segments the rule differs, and the probe says so.
ROUND, GRANULE, SPLIT_ABOVE, LARGE = 512, 2 * 2**20, 2**20, 10 * 2**20


def caching_allocator_bytes(size: int) -> int:
    """What torch.cuda.memory_allocated grows by for one fresh allocation of `size` bytes."""
    rounded = max(ROUND, -(-size // ROUND) * ROUND)
    if rounded < LARGE:
        return rounded
    segment = -(-rounded // GRANULE) * GRANULE
    return rounded if segment - rounded > SPLIT_ABOVE else segment


def expandable_segments() -> bool:
    import os

    return "expandable_segments:true" in os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "").replace(" ", "").lower()


def release_workspaces(device: torch.device) -> None:
    """Hand back cached blocks and cuBLAS workspaces, so memory_allocated returns to where it was."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear is not None:
            clear()
        torch.cuda.empty_cache()
