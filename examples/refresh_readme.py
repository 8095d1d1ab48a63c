"""Re-run every `$ kvplan ...` example in README.md and paste its real output back in.

An example that shows only the first N lines of its output keeps showing N lines. Examples that
need local files (a `./` path) or a pipe are left alone. tests/test_readme.py checks the result.

Usage: python examples/refresh_readme.py
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

from kvplan.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def run(command: str) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(shlex.split(command)[1:])
    return [line.rstrip() for line in (out.getvalue() + err.getvalue()).splitlines()]


def refresh_block(block: str) -> str:
    chunks = re.split(r"^(?=\$ )", block, flags=re.M)
    fresh = []
    for chunk in chunks:
        if chunk.startswith("$ kvplan ") and "./" not in chunk.split("\n")[0] and "|" not in chunk.split("\n")[0]:
            command, *shown = chunk.rstrip("\n").split("\n")
            printed = run(command[2:])
            complete = len(shown) >= len(printed) - 1
            lines = printed if complete else printed[: len(shown)]
            chunk = "\n".join([command, *lines]) + "\n"
        fresh.append(chunk)
    return "".join(fresh)


def main_() -> None:
    text = README.read_text()
    text = re.sub(r"(```console\n)(.*?)(```)", lambda m: m.group(1) + refresh_block(m.group(2)) + m.group(3),
                  text, flags=re.S)
    README.write_text(text)


if __name__ == "__main__":
    main_()
