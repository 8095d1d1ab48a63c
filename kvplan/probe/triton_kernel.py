"""The Triton paged decode-attention kernel (flash-decoding style online softmax, no split-K).

One program per (request, KV head). It holds the group's query heads as the rows of a
[BLOCK_G, BLOCK_D] tile (BLOCK_G >= 16 so tl.dot can use the tensor cores; unused rows are zero),
loads K and V in their storage dtype and multiplies in float32 (TF32 tensor cores on the GPU for
16-bit caches, IEEE float32 for float32 ones: decode is bound by the loads, not the dots; Triton's
CPU interpreter also mishandles bf16 dots, so this keeps one code path for CI and the GPU),
walks the request's tokens BLOCK_N at a time, finds each token's page through kv_indices (so one
iteration spans several non-contiguous pages), and keeps a running max and sum per query head.
Set TRITON_INTERPRET=1 before importing triton to run it on the CPU.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kvplan.probe.page_table import PageTable

LOG2E = 1.4426950408889634


@triton.jit
def _paged_decode_kernel(
    q_ptr, cache_ptr, indptr_ptr, indices_ptr, last_len_ptr, out_ptr,
    stride_qb, stride_qh,  # q [B, Hq, D], last dim contiguous
    stride_page, stride_kv, stride_slot, stride_head,  # cache [P, 2, PAGE, Hkv, D], last dim contiguous
    stride_ob, stride_oh,
    qk_scale,  # softmax scale x log2(e)
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, PAGE: tl.constexpr,
    BLOCK_G: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, IEEE: tl.constexpr,
):
    req = tl.program_id(0)
    kv_head = tl.program_id(1)
    start = tl.load(indptr_ptr + req)
    num_pages = tl.load(indptr_ptr + req + 1) - start
    seq_len = (num_pages - 1) * PAGE + tl.load(last_len_ptr + req)

    offs_g = tl.arange(0, BLOCK_G)
    offs_d = tl.arange(0, BLOCK_D)
    mask_g = offs_g < GROUP
    mask_d = offs_d < HEAD_DIM
    heads = kv_head * GROUP + offs_g
    q = tl.load(q_ptr + req * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
                mask=mask_g[:, None] & mask_d[None, :], other=0.0).to(tl.float32)  # [BLOCK_G, BLOCK_D]

    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for t0 in range(0, seq_len, BLOCK_N):
        offs_t = t0 + tl.arange(0, BLOCK_N)
        mask_t = offs_t < seq_len
        page = tl.load(indices_ptr + start + offs_t // PAGE, mask=mask_t, other=0).to(tl.int64)
        rows = page * stride_page + (offs_t % PAGE) * stride_slot + kv_head * stride_head  # [BLOCK_N]
        mask_kv = mask_t[:, None] & mask_d[None, :]
        k = tl.load(cache_ptr + rows[:, None] + offs_d[None, :], mask=mask_kv, other=0.0).to(tl.float32)
        v = tl.load(cache_ptr + stride_kv + rows[:, None] + offs_d[None, :], mask=mask_kv, other=0.0).to(tl.float32)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = tl.where(mask_t[None, :], s * qk_scale, float("-inf"))  # [BLOCK_G, BLOCK_N], log2 units
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new

    out = acc / l_i[:, None]
    tl.store(out_ptr + req * stride_ob + heads[:, None] * stride_oh + offs_d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mask_g[:, None] & mask_d[None, :])


def launch(q: torch.Tensor, cache: torch.Tensor, table: PageTable, out: torch.Tensor, block_n: int = 128,
           num_warps: int = 8, num_stages: int = 2) -> None:
    """q, out [B, Hq, D]; cache [num_pages, 2, page_size, Hkv, D]; table on q's device."""
    batch, q_heads, head_dim = q.shape
    kv_heads = cache.shape[3]
    assert q.stride(-1) == 1 and cache.stride(-1) == 1 and out.stride(-1) == 1, "last dims must be contiguous"
    assert q_heads % kv_heads == 0, "query heads must be a multiple of KV heads"
    group = q_heads // kv_heads
    grid = (batch, kv_heads)
    _paged_decode_kernel[grid](
        q, cache, table.kv_indptr, table.kv_indices, table.kv_last_page_len, out,
        q.stride(0), q.stride(1),
        cache.stride(0), cache.stride(1), cache.stride(2), cache.stride(3),
        out.stride(0), out.stride(1),
        LOG2E / math.sqrt(head_dim),
        GROUP=group, HEAD_DIM=head_dim, PAGE=table.page_size,
        BLOCK_G=max(16, triton.next_power_of_2(group)), BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        BLOCK_N=block_n, IEEE=q.dtype == torch.float32,
        num_warps=num_warps, num_stages=num_stages,
    )
