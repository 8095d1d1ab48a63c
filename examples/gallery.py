"""Regenerate the plot gallery in examples/gallery/ (needs the `plot` extra: pip install '.[plot]' in a checkout).

    concurrency_by_gpu.png   Llama-3.1-8B: max concurrency vs context on H100, H200 and B200
    fp8_vs_bf16.png          Llama-3.1-70B on 4 x H100: max concurrency vs context, bf16 vs fp8 KV
    frag_by_strategy.png     OPT-13B on an A100-40GB: KV memory by allocation strategy (chat workload)

Usage: python examples/gallery.py
"""

from __future__ import annotations

from pathlib import Path

from kvplan.cli import main

OUT = Path(__file__).resolve().parent / "gallery"
COMMANDS = [
    ["sweep", "llama3.1-8b", "--gpu", "h100,h200,b200", "--ctx", "1k..128k", "--plot", "concurrency_by_gpu.png"],
    ["sweep", "llama3.1-70b", "--gpu", "h100", "--tp", "4", "--kv-dtype", "bf16,fp8", "--ctx", "1k..128k",
     "--plot", "fp8_vs_bf16.png"],
    ["frag", "opt-13b", "--gpu", "a100-40gb-sxm", "--max-len", "2048", "--requests", "10000",
     "--plot", "frag_by_strategy.png"],
]


def run() -> None:
    OUT.mkdir(exist_ok=True)
    for argv in COMMANDS:
        argv = [*argv[:-1], str(OUT / argv[-1])]
        code = main(argv)
        if code:
            raise SystemExit(f"kvplan {' '.join(argv)} exited {code}")


if __name__ == "__main__":
    run()
