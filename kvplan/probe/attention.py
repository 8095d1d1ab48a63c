"""Paged decode attention: one query token per request against its paged K/V, GQA-aware.

    q      [B, num_q_heads, head_dim]
    cache  [num_pages, 2, page_size, num_kv_heads, head_dim]
    out    [B, num_q_heads, head_dim]

Query head h reads KV head h // (num_q_heads // num_kv_heads). Three implementations:
`dense_reference` (float64, from contiguous K/V), `paged_decode_torch` (gathers pages; the CPU path
and the reference for the kernel), and `paged_decode_triton` (the CUDA kernel, also run by Triton's
interpreter on the CPU in CI).
"""

from __future__ import annotations

import math

import torch

from kvplan.probe.page_table import PageTable


def gather_kv(cache: torch.Tensor, table: PageTable, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Request i's keys and values, contiguous: each [seq_len, num_kv_heads, head_dim]."""
    start, end = int(table.kv_indptr[i]), int(table.kv_indptr[i + 1])
    pages = table.kv_indices[start:end].long()
    seq_len = table.page_size * (end - start - 1) + int(table.kv_last_page_len[i])
    kv = cache[pages]  # [pages, 2, page_size, kv_heads, head_dim]
    k = kv[:, 0].reshape(-1, *cache.shape[-2:])[:seq_len]
    v = kv[:, 1].reshape(-1, *cache.shape[-2:])[:seq_len]
    return k, v


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """q [Hq, D], k/v [L, Hkv, D] -> [Hq, D], in q's dtype, GQA by repeating KV heads."""
    group = q.shape[0] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)  # [L, Hq, D]
    v = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("hd,lhd->hl", q, k) * scale  # [Hq, L]
    return torch.einsum("hl,lhd->hd", torch.softmax(scores, dim=-1), v)


def dense_reference(q: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor]) -> torch.Tensor:
    """Float64 attention over each request's contiguous K/V: the ground truth."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    return torch.stack([_attend(q[i].double(), k.double(), v.double(), scale)
                        for i, (k, v) in enumerate(zip(keys, values))])


def paged_decode_torch(q: torch.Tensor, cache: torch.Tensor, table: PageTable) -> torch.Tensor:
    """Gather each request's pages, then attend in float32; out in q's dtype."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = torch.empty_like(q)
    for i in range(table.batch):
        k, v = gather_kv(cache, table, i)
        out[i] = _attend(q[i].float(), k.float(), v.float(), scale).to(q.dtype)
    return out


def paged_decode_triton(q: torch.Tensor, cache: torch.Tensor, table: PageTable, out: torch.Tensor | None = None,
                        block_n: int = 64, num_warps: int = 4, num_stages: int = 3, num_splits: int | None = None,
                        max_seq_len: int | None = None) -> torch.Tensor:
    """block_n 64, 4 warps, 3 stages: the best worst case measured on an H100 (examples/bench_probe.py).
    num_splits None splits long requests (flash-decoding) when the batch alone cannot fill the GPU."""
    """Launch the Triton kernel: one program per (request, KV head), all its query heads at once."""
    from kvplan.probe.triton_kernel import launch

    out = torch.empty_like(q) if out is None else out
    launch(q, cache, table, out, block_n=block_n, num_warps=num_warps, num_stages=num_stages, num_splits=num_splits,
           max_seq_len=max_seq_len)
    return out


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref||, in float64."""
    return float((out.double() - ref).norm() / ref.norm())


# Bounds on the relative error by the dtype of K/V and q (float64 reference): float32 arithmetic
# lands far below 1e-4; bf16 inputs between 1e-3 and 1e-2.
ERROR_BOUNDS = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
