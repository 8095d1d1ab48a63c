"""The Triton paged decode-attention kernel (flash-decoding style online softmax, no split-K).

One program per (request, KV head). It holds the group's query heads as the rows of a
[BLOCK_G, BLOCK_D] tile (BLOCK_G >= 16 so tl.dot can use the tensor cores; unused rows are zero),
loads K and V in their storage dtype and multiplies them there with float32 accumulation (the
softmax weights rounded to that dtype for the second product, as flash attention does). UPCAST
multiplies in float32 instead: IEEE for float32 caches, and under Triton's CPU interpreter, whose
16-bit dots are wrong (checked against float64 in tests/test_probe.py),
walks the request's tokens BLOCK_N at a time, finds each token's page through kv_indices (so one
iteration spans several non-contiguous pages), and keeps a running max and sum per query head.
Set TRITON_INTERPRET=1 before importing triton to run it on the CPU.

The split kernel repeats the plain kernel's loop on purpose. One kernel with a SPLIT switch, or
the loop in a shared @triton.jit helper, gave identical outputs but ran 1-4% slower on an H100 in
an interleaved A/B (0.89-0.94x SDPA against 0.92-0.96x): a loop from a constant 0 pipelines best.
"""

from __future__ import annotations

import math
import os

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
    UPCAST: tl.constexpr,
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
                mask=mask_g[:, None] & mask_d[None, :], other=0.0)  # [BLOCK_G, BLOCK_D]
    if UPCAST:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for t0 in range(0, seq_len, BLOCK_N):
        offs_t = t0 + tl.arange(0, BLOCK_N)
        mask_t = offs_t < seq_len
        page = tl.load(indices_ptr + start + offs_t // PAGE, mask=mask_t, other=0).to(tl.int64)
        rows = page * stride_page + (offs_t % PAGE) * stride_slot + kv_head * stride_head  # [BLOCK_N]
        mask_kv = mask_t[:, None] & mask_d[None, :]
        k = tl.load(cache_ptr + rows[:, None] + offs_d[None, :], mask=mask_kv, other=0.0)  # [BLOCK_N, BLOCK_D]
        v = tl.load(cache_ptr + stride_kv + rows[:, None] + offs_d[None, :], mask=mask_kv, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
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
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    out = acc / l_i[:, None]
    tl.store(out_ptr + req * stride_ob + heads[:, None] * stride_oh + offs_d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mask_g[:, None] & mask_d[None, :])


@triton.jit
def _paged_decode_split_kernel(
    q_ptr, cache_ptr, indptr_ptr, indices_ptr, last_len_ptr, mid_o_ptr, mid_lse_ptr,
    stride_qb, stride_qh,
    stride_page, stride_kv, stride_slot, stride_head,
    stride_mb, stride_mh, stride_ms,  # mid_o [B, Hq, S, D] float32, mid_lse [B, Hq, S] float32
    qk_scale, NUM_SPLITS,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, PAGE: tl.constexpr,
    BLOCK_G: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """Flash-decoding: split each request's tokens into NUM_SPLITS chunks, one program each."""
    req = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    start = tl.load(indptr_ptr + req)
    seq_len = (tl.load(indptr_ptr + req + 1) - start - 1) * PAGE + tl.load(last_len_ptr + req)
    chunk = tl.cdiv(tl.cdiv(seq_len, NUM_SPLITS), BLOCK_N) * BLOCK_N
    t_begin = split * chunk
    t_end = tl.minimum(t_begin + chunk, seq_len)

    offs_g = tl.arange(0, BLOCK_G)
    offs_d = tl.arange(0, BLOCK_D)
    mask_g = offs_g < GROUP
    mask_d = offs_d < HEAD_DIM
    heads = kv_head * GROUP + offs_g
    q = tl.load(q_ptr + req * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
                mask=mask_g[:, None] & mask_d[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for t0 in range(t_begin, t_end, BLOCK_N):
        offs_t = t0 + tl.arange(0, BLOCK_N)
        mask_t = offs_t < t_end
        page = tl.load(indices_ptr + start + offs_t // PAGE, mask=mask_t, other=0).to(tl.int64)
        rows = page * stride_page + (offs_t % PAGE) * stride_slot + kv_head * stride_head
        mask_kv = mask_t[:, None] & mask_d[None, :]
        k = tl.load(cache_ptr + rows[:, None] + offs_d[None, :], mask=mask_kv, other=0.0)  # [BLOCK_N, BLOCK_D]
        v = tl.load(cache_ptr + stride_kv + rows[:, None] + offs_d[None, :], mask=mask_kv, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = tl.where(mask_t[None, :], s * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    empty = t_begin >= t_end  # a short request: this split has no tokens
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    lse = tl.where(empty, float("-inf"), m_i + tl.log2(tl.where(l_i > 0, l_i, 1.0)))
    base = req * stride_mb + heads * stride_mh + split * stride_ms  # [BLOCK_G]
    tl.store(mid_o_ptr + base[:, None] * HEAD_DIM + offs_d[None, :], out, mask=mask_g[:, None] & mask_d[None, :])
    tl.store(mid_lse_ptr + base, lse, mask=mask_g)


@triton.jit
def _combine_kernel(mid_o_ptr, mid_lse_ptr, out_ptr, stride_mb, stride_mh, stride_ob, stride_oh, NUM_SPLITS,
                    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr):
    """Merge the splits of one (request, query head) by their log-sum-exp weights."""
    req = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    mask_s = offs_s < NUM_SPLITS
    mask_d = offs_d < HEAD_DIM
    base = req * stride_mb + head * stride_mh + offs_s
    lse = tl.load(mid_lse_ptr + base, mask=mask_s, other=float("-inf"))
    weight = tl.exp2(lse - tl.max(lse, axis=0))  # empty splits weigh 0
    o = tl.load(mid_o_ptr + base[:, None] * HEAD_DIM + offs_d[None, :], mask=mask_s[:, None] & mask_d[None, :], other=0.0)
    out = tl.sum(weight[:, None] * o, axis=0) / tl.sum(weight, axis=0)
    tl.store(out_ptr + req * stride_ob + head * stride_oh + offs_d, out.to(out_ptr.dtype.element_ty), mask=mask_d)


def num_splits_for(batch: int, kv_heads: int, max_seq_len: int, block_n: int, device: torch.device) -> int:
    """No split when the batch gives two programs per SM; else enough to fill the GPU about eight
    times over, never more splits than blocks of tokens."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
    programs = batch * kv_heads
    if programs >= 2 * sms:  # the batch fills the GPU: splitting only adds a merge (measured on H100)
        return 1
    return max(1, min(-(-8 * sms // programs), -(-max_seq_len // block_n), 64))


def launch(q: torch.Tensor, cache: torch.Tensor, table: PageTable, out: torch.Tensor, block_n: int = 64,
           num_warps: int = 4, num_stages: int = 3, num_splits: int | None = None,
           max_seq_len: int | None = None) -> None:
    """q, out [B, Hq, D]; cache [num_pages, 2, page_size, Hkv, D]; table on q's device.

    num_splits None: one split when the batch fills the GPU, else enough to (flash-decoding).
    """
    batch, q_heads, head_dim = q.shape
    kv_heads = cache.shape[3]
    assert q.stride(-1) == 1 and cache.stride(-1) == 1 and out.stride(-1) == 1, "last dims must be contiguous"
    assert q_heads % kv_heads == 0, "query heads must be a multiple of KV heads"
    group = q_heads // kv_heads
    if num_splits is None:
        longest = max_seq_len if max_seq_len is not None else int(table.seq_lens().max())
        num_splits = num_splits_for(batch, kv_heads, longest, block_n, q.device)
    blocks = dict(GROUP=group, HEAD_DIM=head_dim, PAGE=table.page_size,
                  BLOCK_G=max(16, triton.next_power_of_2(group)), BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
                  BLOCK_N=block_n, IEEE=q.dtype == torch.float32,
                  UPCAST=q.dtype == torch.float32 or os.environ.get("TRITON_INTERPRET") == "1")
    if num_splits > 1:
        _launch_split(q, cache, table, out, num_splits, blocks, num_warps, num_stages)
        return
    grid = (batch, kv_heads)
    _paged_decode_kernel[grid](
        q, cache, table.kv_indptr, table.kv_indices, table.kv_last_page_len, out,
        q.stride(0), q.stride(1),
        cache.stride(0), cache.stride(1), cache.stride(2), cache.stride(3),
        out.stride(0), out.stride(1),
        LOG2E / math.sqrt(head_dim), **blocks, num_warps=num_warps, num_stages=num_stages,
    )


def _launch_split(q, cache, table, out, num_splits, blocks, num_warps, num_stages) -> None:
    batch, q_heads, head_dim = q.shape
    mid_o = torch.empty((batch, q_heads, num_splits, head_dim), dtype=torch.float32, device=q.device)
    mid_lse = torch.empty((batch, q_heads, num_splits), dtype=torch.float32, device=q.device)
    _paged_decode_split_kernel[(batch, cache.shape[3], num_splits)](
        q, cache, table.kv_indptr, table.kv_indices, table.kv_last_page_len, mid_o, mid_lse,
        q.stride(0), q.stride(1), cache.stride(0), cache.stride(1), cache.stride(2), cache.stride(3),
        mid_lse.stride(0), mid_lse.stride(1), mid_lse.stride(2),
        LOG2E / math.sqrt(head_dim), num_splits, **blocks, num_warps=num_warps, num_stages=num_stages,
    )
    _combine_kernel[(batch, q_heads)](
        mid_o, mid_lse, out, mid_lse.stride(0), mid_lse.stride(1), out.stride(0), out.stride(1), num_splits,
        HEAD_DIM=head_dim, BLOCK_D=blocks["BLOCK_D"], BLOCK_S=max(2, triton.next_power_of_2(num_splits)),
    )
