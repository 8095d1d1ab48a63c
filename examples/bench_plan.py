"""Planning speed: `plan` for fleets of hundreds of GPUs, and the every-model overview.
Prints the median wall time of each call (in-process, after a warm-up) and the plan found.

Usage: python examples/bench_plan.py
"""

from __future__ import annotations

import statistics
import time

from kvplan.calc.capacity import Workload, overview
from kvplan.calc.plan import plan
from kvplan.specs.catalog import load_catalog

CASES = [  # model, gpu, concurrent requests, context
    ("llama3.1-405b", "h100", 4096, 32_768),
    ("deepseek-v3", "h200", 8192, 16_384),
    ("llama3-70b", "a100-80gb-sxm", 20_000, 8192),
    ("qwen3-235b-a22b", "b200", 10_000, 32_768),
]


def median_ms(fn, runs: int = 20) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    cat = load_catalog()
    for name, gpu, n, ctx in CASES:
        model, spec = cat.model(name), cat.gpu(gpu)
        run = lambda: plan(model, spec, n, ctx, ("bf16", "fp8"))  # noqa: E731
        ms = median_ms(run)
        best = ", ".join(f"{d.kv_dtype}: TP{d.tp} x PP{d.pp} x {d.replicas} = {d.gpus} GPUs" for d in run().best)
        print(f"plan {name:16s} {gpu:14s} {n:6,} x {ctx:6,} tokens: {ms:6.2f} ms  ({best})")
    models = list(cat.models.specs.values())
    ms = median_ms(lambda: overview(models, cat.gpu("h100"), Workload(1024, 1024)))
    print(f"overview of {len(models)} models on h100: {ms:.2f} ms")


if __name__ == "__main__":
    main()
