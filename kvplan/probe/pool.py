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

import torch

from kvplan.calc.kv import layers_kv
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
    shapes = []
    g = shared_layers(model, fmt, block)
    for group, layer in paged_groups(model, fmt, block):
        dtype = TORCH_DTYPES.get(fmt.name)
        heads = getattr(group, "num_kv_heads", None)
        pages = num_blocks * sum(gr.count for gr, _ in paged_groups(model, fmt, block)) // g if g else num_blocks
        if dtype is not None and heads and group.kind != "mha":
            shape, dtype_ = (pages, 2, block, heads, group.head_dim), dtype
        else:
            shape, dtype_ = (pages, layer.page_bytes_per_layer), torch.uint8
        if g:
            return [(shape, dtype_)] * g  # every kind shares these g tensors
        shapes.extend([(shape, dtype_)] * group.count)
    return shapes


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
