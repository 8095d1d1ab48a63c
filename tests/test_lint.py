"""The code, its tests and its examples pass ruff with the rules in pyproject.toml ([tool.ruff.lint]),
so that a `# noqa` in the code is one a tool reads, and one that silences nothing is reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "kvplan", "tests",
                          "examples"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
