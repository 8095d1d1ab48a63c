"""Start-up benchmark: wall time of `kvplan size llama3-70b --ctx 4096` against the bare imports of
its core dependencies, interleaved in one run (one of each per round, so drift falls on all), with
the median of each and the ratio. Two floors are timed beside them, to show what the dependencies
cost before kvplan runs a line:

- a bare typer app whose one command takes the parameters of `kvplan size` and prints its argument:
  typer 0.29 coerces every non-flag parameter through a pydantic TypeAdapter, which imports
  pydantic's schema machinery and builds one adapter per parameter;
- the same app printing its argument in a rich table, as every kvplan command does.

A last line times a model resolved from the local Hugging Face cache (a repo id the database does not
hold; the cache laid out in a temporary folder as huggingface_hub lays it out), offline.

Usage: python examples/bench_startup.py [RUNS]   (default 15)
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import os
import textwrap
import time
from pathlib import Path

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
GOAL = 1.6  # issue #11: kvplan size / bare imports

TYPER_APP = textwrap.dedent('''
    import sys
    from pathlib import Path
    from typing import Annotated, Optional

    import typer

    app = typer.Typer(add_completion=False)

    @app.command()
    def size(model: str, ctx: Annotated[str, typer.Option("--ctx")] = "4096", batch: int = 1,
             kv_dtype: str = "auto", tp: int = 1, block_size: int = 16, explain: bool = False,
             json: bool = False, specs: Annotated[Optional[list[Path]], typer.Option()] = None,
             debug: bool = False):
        TABLE

    @app.command()
    def other(x: int = 1):
        pass

    app(sys.argv[1:], standalone_mode=False)
''')
PRINT = "print(model)"
RICH_TABLE = ("from rich.console import Console; from rich.table import Table; t = Table('model'); "
              "t.add_row(model); Console().print(t)")


CACHED = "acme/qwen-finetune"


def timed(argv: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def hf_cache(root: Path) -> dict:
    """A cache holding CACHED (the Qwen2.5-7B config of examples/models), and the env that uses it."""
    sha = "0" * 40
    folder = root / "hub" / ("models--" + CACHED.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(sha)
    (folder / "snapshots" / sha).mkdir(parents=True)
    config = Path(__file__).resolve().parent / "models" / "Qwen2.5-7B" / "config.json"
    (folder / "snapshots" / sha / "config.json").write_text(config.read_text())
    return {**os.environ, "HF_HUB_CACHE": str(root / "hub"), "HF_HUB_OFFLINE": "1"}


def main() -> None:
    kvplan = shutil.which("kvplan") or sys.exit("kvplan is not on PATH: pip install -e . first")
    with tempfile.TemporaryDirectory() as tmp:
        bare_app, table_app = Path(tmp) / "typer_app.py", Path(tmp) / "typer_rich_app.py"
        bare_app.write_text(TYPER_APP.replace("TABLE", PRINT))
        table_app.write_text(TYPER_APP.replace("TABLE", RICH_TABLE))
        commands = {
            "import typer, rich, pydantic, yaml": [sys.executable, "-c", "import typer, rich, pydantic, yaml"],
            "typer app, size's parameters": [sys.executable, str(bare_app), "size", "llama3-70b"],
            "  the same, printing a rich table": [sys.executable, str(table_app), "size", "llama3-70b"],
            "kvplan size llama3-70b --ctx 4096": [kvplan, "size", "llama3-70b", "--ctx", "4096"],
        }
        env = hf_cache(Path(tmp))
        cached = [kvplan, "size", CACHED, "--ctx", "4096"]
        times: dict[str, list[float]] = {name: [] for name in [*commands, "from the HF cache"]}
        for argv in [*commands.values(), cached]:  # warm the page cache and the bytecode once
            timed(argv, env)
        for _ in range(RUNS):
            for name, argv in commands.items():
                times[name].append(timed(argv))
            times["from the HF cache"].append(timed(cached, env))
    medians = {name: statistics.median(t) for name, t in times.items()}
    from_cache = medians.pop("from the HF cache")
    base = medians["import typer, rich, pydantic, yaml"]
    print(f"runs: {RUNS} of each, interleaved")
    for name, median in medians.items():
        print(f"{name:<36} {median * 1000:7.1f} ms   {median / base:5.2f}x the imports")
    ratio = medians["kvplan size llama3-70b --ctx 4096"] / base
    print(f"ratio {ratio:.2f} (goal <= {GOAL}): {'met' if ratio <= GOAL else 'not met'}; "
          f"kvplan's own share above the typer + rich floor: "
          f"{(medians['kvplan size llama3-70b --ctx 4096'] - medians['  the same, printing a rich table']) * 1000:.1f} ms")
    print(f"kvplan size {CACHED} (HF cache, offline): {from_cache * 1000:.1f} ms")


if __name__ == "__main__":
    main()
