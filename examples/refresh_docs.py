"""Keep README.md and docs/*.md true: re-run every `$ kvplan ...` example in a ```console block and
paste its real output back, and regenerate every `--json` key table from the result classes.

Each page's examples run in order, in a fresh temporary folder where `examples/` is the repository's
own (so `--out ./my-specs` writes there and a later example can read it). An example with no output
shown yet gets all of it; one that shows the first N lines of its output keeps showing N lines. Output that cannot be produced here (a CUDA GPU)
goes in a ```text block, which is not run. tests/test_docs.py checks what this script writes.

Usage: python examples/refresh_docs.py
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONSOLE = re.compile(r"(```console\n)(.*?)(```)", flags=re.S)
SCHEMA = re.compile(r"(<!-- json-schema: ([\w.]+):(\w+) -->\n)(.*?)(<!-- /json-schema -->)", flags=re.S)


def examples(text: str) -> Iterator[tuple[str, list[str]]]:
    """(command, the lines shown under it) for every `$ kvplan` example, in page order."""
    for block in CONSOLE.findall(text):
        for chunk in re.split(r"^(?=\$ )", block[1], flags=re.M):
            if chunk.startswith("$ kvplan "):
                command, *shown = chunk.rstrip("\n").split("\n")
                yield command[2:], shown


def run(command: str) -> list[str]:
    """What `kvplan ...` prints (stdout, then stderr), line by line, run in this process."""
    from kvplan.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(shlex.split(command)[1:])
    return [line.rstrip() for line in (out.getvalue() + err.getvalue()).splitlines()]


@contextlib.contextmanager
def page_folder() -> Iterator[Path]:
    """A fresh working folder with the repository's examples/ in it, for one page's examples."""
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "examples").symlink_to(ROOT / "examples")
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(here)


def schema_table(module: str, name: str) -> str:
    from kvplan.render.schema import json_keys_table

    return json_keys_table(getattr(importlib.import_module(module), name))


def refreshed(text: str) -> str:
    def block(match: re.Match) -> str:
        fresh = []
        for chunk in re.split(r"^(?=\$ )", match.group(2), flags=re.M):
            if chunk.startswith("$ kvplan "):
                command, *shown = chunk.rstrip("\n").split("\n")
                printed = run(command[2:])
                keep = printed if not shown or len(shown) >= len(printed) - 1 else printed[: len(shown)]
                chunk = "\n".join([command, *keep]) + "\n"
            fresh.append(chunk)
        return match.group(1) + "".join(fresh) + match.group(3)

    with page_folder():
        text = CONSOLE.sub(block, text)
    return SCHEMA.sub(lambda m: m.group(1) + schema_table(m.group(2), m.group(3)) + m.group(5), text)


def main() -> None:
    for page in PAGES:
        page.write_text(refreshed(page.read_text()))
        print(f"refreshed {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
