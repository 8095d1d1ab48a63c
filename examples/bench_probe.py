"""GPU benchmark of the paged decode kernel: Triton configurations x batch x context, against
torch's contiguous scaled_dot_product_attention on the same K/V and a device-to-device copy, on
Llama-3-8B's layer shape (32 query heads, 8 KV heads, head_dim 128, bf16, 16-token pages).
Every case times its configurations and SDPA in alternating rounds (median of 5 rounds of 20
runs each), so clock drift falls on all alike.

Usage (on a CUDA machine): python examples/bench_probe.py
"""

from __future__ import annotations

import torch

from kvplan.probe.attention import gather_kv, paged_decode_triton
from kvplan.probe.bench import copy_gbps, gbps, interleaved_ms, sdpa_fn
from kvplan.probe.page_table import build_page_table
from kvplan.probe.triton_kernel import num_splits_for

HQ, HKV, DIM, PAGE, DTYPE = 32, 8, 128, 16, torch.bfloat16
CONFIGS = [(32, 4, 2), (64, 4, 2), (64, 4, 3), (128, 4, 2), (128, 8, 2), (128, 8, 3)]  # block_n, warps, stages
CASES = [(64, 4096), (128, 4096), (64, 8192), (256, 2048), (16, 16384)]


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
    print(f"{'batch':>5} {'ctx':>6} {'block_n':>7} {'warps':>5} {'stages':>6} {'splits':>6} {'ms':>8} {'GB/s':>7} "
          f"{'of copy':>7} {'SDPA GB/s':>9} {'vs SDPA':>7}")
    results = {}
    for batch, ctx in CASES:
        cache, table, q, moved = case(batch, ctx, device)
        keys, values = (torch.stack([gather_kv(cache, table, i)[j] for i in range(batch)]).transpose(1, 2).contiguous()
                        for j in (0, 1))
        out = torch.empty_like(q)
        fns = {"sdpa": sdpa_fn(q, keys, values)}
        for block_n, warps, stages in CONFIGS:
            fns[(block_n, warps, stages)] = (lambda b=block_n, w=warps, s=stages, kv=cache: paged_decode_triton(
                q, kv, table, out=out, block_n=b, num_warps=w, num_stages=s, max_seq_len=ctx))
        times = interleaved_ms(fns, device)
        sdpa = gbps(moved, times.pop("sdpa"))
        for (block_n, warps, stages), ms in times.items():
            rate = gbps(moved, ms)
            splits = num_splits_for(batch, HKV, ctx, block_n, device)
            print(f"{batch:5d} {ctx:6d} {block_n:7d} {warps:5d} {stages:6d} {splits:6d} {ms:8.3f} {rate:7.0f} "
                  f"{rate / copy:7.0%} {sdpa:9.0f} {rate / sdpa:7.2f}")
            results.setdefault((block_n, warps, stages), []).append((batch, ctx, rate / copy, rate / sdpa))
        del cache, keys, values, fns
        torch.cuda.empty_cache()
    print("worst over batch >= 64, ctx >= 4096, per configuration (of copy, vs SDPA):")
    for config, rows in results.items():
        target = [r for r in rows if r[0] >= 64 and r[1] >= 4096]
        print(f"  block_n {config[0]:3d}, {config[1]} warps, {config[2]} stages: "
              f"{min(r[2] for r in target):.0%}, {min(r[3] for r in target):.2f}x")


if __name__ == "__main__":
    main()
