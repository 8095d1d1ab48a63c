"""Timing: warm up, time with device events (CUDA) or the host clock (CPU), report the median.

Bandwidth is decimal GB/s (10^9 B/s) of the bytes a run must move: each input read once, each
output written once. A device-to-device copy counts its bytes read plus bytes written.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_ms(fn: Callable[[], object], device: torch.device, warmup: int = 5, runs: int = 30) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        times = []
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def gbps(num_bytes: int, ms: float) -> float:
    return num_bytes / (ms * 1e-3) / 1e9


def copy_gbps(device: torch.device, num_bytes: int) -> float:
    """The practical ceiling: a large device-to-device copy, bytes read + bytes written."""
    src = torch.randn(num_bytes // 4, device=device)  # fp32: never time on zeros
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, warmup=10, runs=50)
    result = gbps(2 * src.numel() * 4, ms)
    del src, dst
    return result


def sdpa_ms(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> float:
    """The contiguous baseline: torch's scaled_dot_product_attention over [B, Hkv, L, D] K/V.

    q [B, Hq, D] becomes [B, Hq, 1, D]; enable_gqa lets Hq be a multiple of Hkv.
    """
    q4 = q.unsqueeze(2)  # [B, Hq, 1, D]
    gqa = q.shape[1] != keys.shape[1]
    run = lambda: torch.nn.functional.scaled_dot_product_attention(q4, keys, values, enable_gqa=gqa)  # noqa: E731
    return median_ms(run, q.device, warmup=10, runs=100)
