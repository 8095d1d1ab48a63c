"""What every renderer shares: JSON output and the `--explain` table. No arithmetic here."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from kvplan.results.base import Step


def print_json(console: Console, payload: BaseModel | list | dict) -> None:
    import json

    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    elif isinstance(payload, list):
        payload = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in payload]
    console.out(json.dumps(payload, indent=2), highlight=False)


def explain_table(steps: Iterable[Step], title: str = "How it is computed") -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("Term")
    table.add_column("Formula")
    table.add_column("Value", justify="right", no_wrap=True)
    for step in steps:
        table.add_row(step.label, step.formula, step.value)
    return table


_NUMBER_UNIT = re.compile(r"(\d[\d,.]*) (GiB|MiB|KiB|GB|MB|kB|TB|B|ms|s|us|GB/s|TB/s|TFLOPS|TFLOP|tokens|pages|layers|%)"
                          r"(?=[\s,.;:)]|$)")


def wrap_prose(text: str, width: int) -> str:
    """A line of plain prose wrapped to `width`, never between a number and its unit ("22.16 ms")."""
    protected = _NUMBER_UNIT.sub(lambda m: f"{m[1]}\x00{m[2]}", text)
    return textwrap.fill(protected, width=max(width, 20), break_long_words=False,
                         break_on_hyphens=False).replace("\x00", " ")


def print_prose(console: Console, text: str, bold: str = "", style: str = "") -> None:
    """A line of prose wrapped as wrap_prose wraps it (never between a number and its unit), with
    an optional bold lead phrase; `\x00` in text keeps two words together ("torch\x002.13")."""
    from rich.text import Text

    line = Text(wrap_prose(bold + text, console.width), style=style)
    if bold:
        line.stylize("bold", 0, len(bold))
    console.print(line)


def origin_line(origin: str | None) -> str:
    """The dim line every result with a model ends with: where its spec came from."""
    return f"[dim]Model from {origin}.[/]" if origin else ""
