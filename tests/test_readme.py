"""README examples stay true: every `$ kvplan ...` in a console block that needs no local files is
run, and what the README shows must be what the command prints (the README may show a prefix)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from kvplan.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```console\n(.*?)```", README, flags=re.S)


def examples() -> list[tuple[str, list[str]]]:
    found = []
    for block in BLOCKS:
        for chunk in re.split(r"^(?=\$ )", block, flags=re.M):
            if not chunk.startswith("$ kvplan "):
                continue
            command, *shown = chunk.rstrip("\n").split("\n")
            if "./" not in command and "|" not in command:
                found.append((command[2:], shown))
    return found


@pytest.mark.parametrize("command, shown", examples(), ids=[c for c, _ in examples()])
def test_readme_example_is_real_output(capsys, command, shown):
    main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    printed = [line.rstrip() for line in (captured.out + captured.err).splitlines()]
    assert [line.rstrip() for line in shown] == printed[: len(shown)]


def test_readme_examples_were_found():
    assert len(examples()) >= 5
