"""Reload against recompute, measured, over prefix lengths: how well the fitted link explains each
size, how far the measured verdict sits from kvplan offload's assumed one, and the peer transfer.

    python examples/bench_offload.py                 # CUDA when present, else the CPU
    python examples/bench_offload.py --model llama3-70b --prefixes 1024,4096,16384 --peers

On the CPU both sides of a "reload" are host memory: the figures show the mechanics, not PCIe.
"""

from __future__ import annotations

import argparse
import time

import torch

from kvplan.calc.kv import resolve_kv_format
from kvplan.probe.device import database_gpu_name, resolve_device
from kvplan.probe.offload import run_offload
from kvplan.probe.reload import reload_layout
from kvplan.probe.transfer import TransferPlan, peer_world, run_transfer
from kvplan.specs.catalog import load_catalog


def residual(c) -> float:
    """The worst relative gap between a size's time and the fitted link's."""
    return max(abs(p.ms - (c.fitted_latency_us * 1e-3 + p.bytes / (c.fitted_gbps * 1e9) * 1e3)) / p.ms
               for p in c.points)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="llama3-8b")
    parser.add_argument("--device")
    parser.add_argument("--prefixes", default=None, help="comma-separated tokens (default by device)")
    parser.add_argument("--peers", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    catalog = load_catalog()
    model = catalog.model(args.model)
    gpu = catalog.gpus.specs.get(database_gpu_name(torch.cuda.get_device_name(device)) or "") if cuda else None
    prefixes = [int(p) for p in (args.prefixes or ("1024,4096,16384" if cuda else "64,256")).split(",")]
    print(f"{model.name} on {device} ({gpu.name if gpu else 'no database GPU'}), torch {torch.__version__}")
    for prefix in prefixes:
        start = time.perf_counter()
        r = run_offload(model, "auto", 16, prefix, device, gpu, seed=0)
        print(f"\nprefix {prefix:,} tokens ({r.reload.host_bytes:,} B a side), {time.perf_counter() - start:.1f} s")
        for c in r.reload.curves:
            share = f", {c.points[-1].gbps / r.reload.datasheet_gbps:.0%} of {r.reload.datasheet_gbps:g}" \
                if r.reload.datasheet_gbps else ""
            print(f"  {c.name:15} {c.method:9} {c.points[-1].gbps:8.2f} GB/s at the pool{share}; fit "
                  f"{c.fitted_gbps:.2f} GB/s + {c.fitted_latency_us:.0f} us, worst size off by {residual(c):.0%}; "
                  f"pages {c.pages_ok}/{c.pages_checked}")
        rc = r.recompute
        mfu = f", MFU {rc.mfu:.2f} (assumed {rc.assumed_mfu:g})" if rc.mfu is not None else ""
        print(f"  recompute: {rc.achieved_tflops:.3g} TFLOPS achieved{mfu}")
        for label, v in (("assumed", r.predicted), ("measured", r.measured)):
            if v:
                first = v.breakeven_prefix_tokens
                wins = "never" if first is None else "any prefix" if first == 1 else f"{first:,} tokens"
                print(f"  {label:8}: reload {v.load_s * 1e3:.3f} ms, recompute {v.recompute_s * 1e3:.1f} ms, ratio "
                      f"{v.ratio:,.1f}x, reload wins from {wins}")
        if r.predicted:
            print(f"  measured / assumed ratio: {r.measured.ratio / r.predicted.ratio:.2f}")
    if args.peers:
        backend, world = peer_world(device)
        layout = reload_layout(model, resolve_kv_format(model, "auto"), 16, prefixes[-1])
        plan = TransferPlan(backend, world, device.type, -(-prefixes[-1] // 16), sum(size for _, size in layout.layers),
                            0, 600)
        start = time.perf_counter()
        t = run_transfer(plan, gpu)
        print(f"\npeers: {world} processes over {backend}, {time.perf_counter() - start:.1f} s")
        for line in t.topology:
            print(f"  {line}")


if __name__ == "__main__":
    main()
