"""Simulation speed: 10k, 100k and 1M chat requests per strategy (Llama-3-8B's KV on an H100 with
vLLM's default budget, Poisson arrivals at 2 requests per decode step). Prints each run's time and
the ratio between sizes: with cost n log n, 10x the requests should take a little over 10x the time.

Usage: python examples/bench_frag.py [max requests, default 1000000]
(an editable install is pure Python; from an environment with the compiled build, KVPLAN_COMPILE=1
in docs/frag.md, the same script times the compiled loop, and says which it ran)
"""

from __future__ import annotations

import sys
import time

from kvplan.calc.budget import memory_budget
from kvplan.calc.frag import STRATEGIES, make_strategy, simulate
from kvplan.specs.catalog import load_catalog
from kvplan.specs.workloads import generate

SIZES = [n for n in (10_000, 100_000, 1_000_000) if n <= (int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)]


def main() -> None:
    cat = load_catalog()
    model = cat.model("llama3-8b")
    budget = memory_budget(model, cat.gpu("h100")).kv_pool_bytes
    capacity = budget // 131_072
    from kvplan.calc.frag import simulation

    build = "pure Python" if simulation.__file__.endswith(".py") else "compiled with mypyc (KVPLAN_COMPILE=1)"
    print(f"budget {capacity:,} tokens (llama3-8b on h100, vLLM defaults); chat workload, 2 arrivals per step; "
          f"frag {build}")
    times: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    for n in SIZES:
        requests = generate("chat", n, 0, 8192, rate_per_step=2.0)
        for name in STRATEGIES:
            start = time.perf_counter()
            stats = simulate(make_strategy(name, capacity, 8192, 16, prefix=64), requests)
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            print(f"{n:>9,} {name:9s} {elapsed:7.2f} s  ({stats.steps:,} steps, {stats.preemptions:,} preemptions)",
                  flush=True)
    print("ratios (time at 10x the requests / time):")
    for name, runs in times.items():
        ratios = ", ".join(f"{b / a:.1f}x" for a, b in zip(runs, runs[1:]))
        print(f"  {name:9s} {ratios}")


if __name__ == "__main__":
    main()
