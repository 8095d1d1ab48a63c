"""Speed of `kvplan check`: 100 scenarios (models x GPUs x TP x context, every expectation but the
simulated paged utilization, which ten of them also ask for) in one check file, timed end to end
as a command (start-up included). Prints the median of 5 runs.

Usage: python examples/bench_check.py
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ["llama3-8b", "llama3.1-70b", "qwen2.5-72b", "mistral-7b-v0.1", "gemma3-27b"]
GPUS = ["h100", "h200", "a100-80gb-sxm", "b200", "l40s"]
SETUPS = [(1, 4096), (2, 8192), (4, 16384), (8, 32768)]


def check_file() -> str:
    lines = ["scenarios:"]
    for i, (model, gpu, (tp, ctx)) in enumerate(itertools.product(MODELS, GPUS, SETUPS)):
        utilization = ", min_paged_utilization: 0.5" if i % 10 == 0 else ""
        lines.append(f"  - {{name: s{i}, model: {model}, gpu: {gpu}, tp: {tp}, ctx: {ctx}, expect: {{fits: true, "
                     f"min_concurrency: 1, max_gpus: 8, max_weights_fraction: 0.99{utilization}}}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    kvplan = shutil.which("kvplan") or sys.exit("kvplan is not on PATH: pip install -e . first")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.yaml"
        path.write_text(check_file())
        times = []
        for _ in range(5):
            start = time.perf_counter()
            done = subprocess.run([kvplan, "check", str(path), "--json"], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
        print(f"100 scenarios: {statistics.median(times):.2f} s median (exit code {done.returncode})")


if __name__ == "__main__":
    main()
