"""Startup benchmark: wall time of `kvplan size llama3-70b --ctx 4096`, against the bare imports of
its core dependencies. Prints the median over runs and the ratio. The budget is 0.25 s.

Usage: python examples/bench_startup.py [RUNS]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
BUDGET_S = 0.25


def median_wall(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    kvplan = shutil.which("kvplan") or sys.exit("kvplan is not on PATH: pip install -e . first")
    baseline = median_wall([sys.executable, "-c", "import typer, rich, pydantic, yaml"])
    size = median_wall([kvplan, "size", "llama3-70b", "--ctx", "4096"])
    print(f"runs: {RUNS}")
    print(f"import typer, rich, pydantic, yaml : {baseline * 1000:7.1f} ms (median)")
    print(f"kvplan size llama3-70b --ctx 4096  : {size * 1000:7.1f} ms (median)")
    print(f"ratio                              : {size / baseline:7.2f}x")
    print(f"budget {BUDGET_S * 1000:.0f} ms: {'within' if size <= BUDGET_S else 'OVER'}")


if __name__ == "__main__":
    main()
