"""The whole package type-checks under mypy, with the configuration in pyproject.toml ([tool.mypy]:
check_untyped_defs, files = kvplan, only libraries without type information let through by name).
A check that covers one folder is a check that will not catch the next bug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_type_checks():
    run = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                         cwd=ROOT, capture_output=True, text=True)
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert (errors, run.returncode) == ([], 0), "\n".join([run.stdout, run.stderr])
