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
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def interleaved_ms(fns: dict[str, Callable[[], object]], device: torch.device, rounds: int = 5,
                   runs: int = 20) -> dict[str, float]:
    """Median ms of each function, timed in alternating rounds so that clock and power drift
    falls on all of them alike (one function timed after another can differ by 10% on its own)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(median_ms(fn, device, warmup=3, runs=runs))
    return {name: statistics.median(values) for name, values in samples.items()}


def gbps(num_bytes: int, ms: float) -> float:
    return num_bytes / (ms * 1e-3) / 1e9


def copy_gbps(device: torch.device, num_bytes: int) -> float:
    """The practical ceiling: a large device-to-device copy, bytes read + bytes written."""
    src = torch.randn(num_bytes // 4, device=device)  # fp32: never time on zeros
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, warmup=10, runs=50)
    return gbps(2 * src.numel() * 4, ms)  # both buffers are freed on return


def sdpa_fn(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The contiguous baseline: torch's scaled_dot_product_attention over [B, Hkv, L, D] K/V.

    q [B, Hq, D] becomes [B, Hq, 1, D]; enable_gqa lets Hq be a multiple of Hkv.
    """
    q4 = q.unsqueeze(2)  # [B, Hq, 1, D]
    gqa = q.shape[1] != keys.shape[1]
    return lambda: torch.nn.functional.scaled_dot_product_attention(q4, keys, values, enable_gqa=gqa)


def wall_ms(fn: Callable[[], object], warmup: int = 2, runs: int = 9, budget_ms: float = 2_000.0) -> float:
    """Median wall-clock ms of fn, which synchronizes its device before it returns (a transfer's
    time includes its launch and its wait, as a reload's does). Runs stop early, after at least
    three, once they have taken budget_ms: a slow size is timed less often, not skipped."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
        if len(times) >= 3 and sum(times) > budget_ms:
            break
    return statistics.median(times)
