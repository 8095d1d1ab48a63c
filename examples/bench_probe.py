"""GPU benchmark of the paged decode kernel: Triton block sizes x batch x context, against the
device-to-device copy and torch's contiguous scaled_dot_product_attention, on Llama-3-8B's layer
shape (32 query heads, 8 KV heads, head_dim 128, bf16, 16-token pages). Prints a table and the
best configuration at batch >= 64, context >= 4096.

Usage (on a CUDA machine): python examples/bench_probe.py
"""

from __future__ import annotations

import torch

from kvplan.probe.attention import paged_decode_triton
from kvplan.probe.bench import copy_gbps, gbps, median_ms, sdpa_ms
from kvplan.probe.page_table import build_page_table
from kvplan.probe.triton_kernel import num_splits_for

HQ, HKV, DIM, PAGE, DTYPE = 32, 8, 128, 16, torch.bfloat16
# block_n, warps, stages, splits (None: flash-decoding splits when the batch cannot fill the GPU)
CONFIGS = [(32, 4, 2, 1), (128, 4, 2, 1), (128, 8, 2, 1), (64, 4, 2, None), (128, 4, 2, None), (128, 8, 2, None),
           (128, 8, 3, None), (256, 8, 2, None)]


def case(batch: int, ctx: int, device: torch.device):
    pages = batch * (-(-ctx // PAGE))
    gen = torch.Generator(device=device).manual_seed(0)
    cache = torch.randn((pages, 2, PAGE, HKV, DIM), generator=gen, device=device).to(DTYPE)
    table = build_page_table([ctx] * batch, PAGE, pages, seed=0).to(device)
    q = torch.randn((batch, HQ, DIM), generator=gen, device=device).to(DTYPE)
    moved = batch * ctx * 2 * HKV * DIM * 2 + 2 * q.numel() * 2
    return cache, table, q, moved


def main() -> None:
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    copy = copy_gbps(device, 2**30)
    print(f"device-to-device copy: {copy:,.0f} GB/s (bytes read + written)")
    rows = []
    print(f"{'batch':>5} {'ctx':>6} {'block_n':>7} {'warps':>5} {'stages':>6} {'splits':>6} {'ms':>8} {'GB/s':>7} "
          f"{'of copy':>7} {'SDPA GB/s':>9} {'vs SDPA':>7}")
    for batch, ctx in ((64, 4096), (128, 4096), (64, 8192), (256, 2048), (16, 16384)):
        cache, table, q, moved = case(batch, ctx, device)
        keys = cache[table.kv_indices.long()][:, 0].reshape(batch, -1, HKV, DIM)[:, :ctx].transpose(1, 2).contiguous()
        values = cache[table.kv_indices.long()][:, 1].reshape(batch, -1, HKV, DIM)[:, :ctx].transpose(1, 2).contiguous()
        sdpa = gbps(moved, sdpa_ms(q, keys, values))
        del keys, values
        out = torch.empty_like(q)
        for block_n, warps, stages, splits in CONFIGS:
            ms = median_ms(lambda: paged_decode_triton(q, cache, table, out=out, block_n=block_n, num_warps=warps,
                                                       num_stages=stages, num_splits=splits, max_seq_len=ctx),
                           device, warmup=10, runs=100)
            rate = gbps(moved, ms)
            shown = num_splits_for(batch, HKV, ctx, block_n, device) if splits is None else splits
            print(f"{batch:5d} {ctx:6d} {block_n:7d} {warps:5d} {stages:6d} {shown:6d} {ms:8.3f} {rate:7.0f} "
                  f"{rate / copy:7.0%} {sdpa:9.0f} {rate / sdpa:7.2f}")
            if batch >= 64 and ctx >= 4096:
                default = (block_n, warps, stages, splits) == (128, 8, 2, None)
                rows.append((batch, ctx, default, rate / copy, rate / sdpa))
        del cache
        torch.cuda.empty_cache()
    defaults = [r for r in rows if r[2]]
    print("default kernel (block_n 128, 8 warps, 2 stages, auto splits) at batch >= 64, ctx >= 4096:")
    for batch, ctx, _, of_copy, vs_sdpa in defaults:
        print(f"  batch {batch:4d} ctx {ctx:6d}: {of_copy:.0%} of copy, {vs_sdpa:.2f}x SDPA")
    print(f"  worst: {min(r[3] for r in defaults):.0%} of copy, {min(r[4] for r in defaults):.2f}x SDPA")


if __name__ == "__main__":
    main()
