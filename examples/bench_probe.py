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

HQ, HKV, DIM, PAGE, DTYPE = 32, 8, 128, 16, torch.bfloat16
CONFIGS = [(32, 4, 2), (64, 4, 2), (64, 4, 3), (128, 4, 2), (128, 8, 2), (128, 8, 3), (256, 8, 2)]  # block_n, warps, stages


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
    best = None
    print(f"{'batch':>5} {'ctx':>6} {'block_n':>7} {'warps':>5} {'stages':>6} {'ms':>8} {'GB/s':>7} {'of copy':>7} {'SDPA GB/s':>9} {'vs SDPA':>7}")
    for batch, ctx in ((64, 4096), (128, 4096), (64, 8192), (256, 2048), (16, 16384)):
        cache, table, q, moved = case(batch, ctx, device)
        keys = cache[table.kv_indices.long()][:, 0].reshape(batch, -1, HKV, DIM)[:, :ctx].transpose(1, 2).contiguous()
        values = cache[table.kv_indices.long()][:, 1].reshape(batch, -1, HKV, DIM)[:, :ctx].transpose(1, 2).contiguous()
        sdpa = gbps(moved, sdpa_ms(q, keys, values))
        del keys, values
        out = torch.empty_like(q)
        for block_n, warps, stages in CONFIGS:
            ms = median_ms(lambda: paged_decode_triton(q, cache, table, out=out, block_n=block_n, num_warps=warps,
                                                       num_stages=stages), device, warmup=5, runs=50)
            rate = gbps(moved, ms)
            print(f"{batch:5d} {ctx:6d} {block_n:7d} {warps:5d} {stages:6d} {ms:8.3f} {rate:7.0f} {rate / copy:7.0%} {sdpa:9.0f} {rate / sdpa:7.2f}")
            if batch >= 64 and ctx >= 4096 and (best is None or rate > best[0]):
                best = (rate, batch, ctx, block_n, warps, stages, sdpa)
        del cache
        torch.cuda.empty_cache()
    rate, batch, ctx, block_n, warps, stages, sdpa = best
    print(f"best at batch >= 64, ctx >= 4096: {rate:,.0f} GB/s = {rate / copy:.0%} of copy, {rate / sdpa:.2f}x SDPA "
          f"(batch {batch}, ctx {ctx}, block_n {block_n}, warps {warps}, stages {stages})")


if __name__ == "__main__":
    main()
