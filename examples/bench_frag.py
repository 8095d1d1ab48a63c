"""Simulation speed: 10k, 100k and 1M chat requests per strategy (Llama-3-8B's KV on an H100 with
vLLM's default budget, Poisson arrivals at 2 requests per decode step). Prints each run's time and
the ratio between sizes: with cost n log n, 10x the requests should take a little over 10x the time.

Usage: python examples/bench_frag.py [MAX_REQUESTS (default 1000000)] [--caps]
(an editable install is pure Python; from an environment with the compiled build, KVPLAN_COMPILE=1
in docs/frag.md, the same script times the compiled loop, and says which it ran)
"""

from __future__ import annotations

import argparse
import time

from kvplan.calc.budget import memory_budget
from kvplan.calc.frag import STRATEGIES, Caps, make_strategy, simulate
from kvplan.specs.catalog import load_catalog
from kvplan.specs.workloads import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("max_requests", nargs="?", type=int, default=1_000_000,
                        help="the largest of 10k, 100k, 1M to run (default 1000000)")
    parser.add_argument("--caps", action="store_true", help="admit under vLLM's caps on an H100 (max_num_seqs "
                        "1,024, max_num_batched_tokens 8,192), as `kvplan frag --gpu h100` does; default: no cap")
    args = parser.parse_args()
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max_requests]
    cat = load_catalog()
    model = cat.model("llama3-8b")
    budget = memory_budget(model, cat.gpu("h100"))
    capacity = budget.kv_pool_bytes // 131_072
    caps = Caps(budget.max_num_seqs, budget.max_num_batched_tokens) if args.caps else Caps()
    from kvplan.calc.frag import simulation

    build = "pure Python" if simulation.__file__.endswith(".py") else "compiled with mypyc (KVPLAN_COMPILE=1)"
    admitted = f"max_num_seqs {caps.max_num_seqs:,}, max_num_batched_tokens {caps.max_num_batched_tokens:,}" \
        if args.caps else "no admission cap"
    print(f"budget {capacity:,} tokens (llama3-8b on h100, vLLM defaults), {admitted}; chat workload, "
          f"2 arrivals per step; frag {build}")
    times: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    for n in sizes:
        requests = generate("chat", n, 0, 8192, rate_per_step=2.0)
        for name in STRATEGIES:
            start = time.perf_counter()
            stats = simulate(make_strategy(name, capacity, 8192, 16, prefix=64), requests, caps=caps)
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
