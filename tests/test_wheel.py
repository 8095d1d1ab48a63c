"""The wheel ships model_specs/ and runs the main job from a fresh virtual environment outside the
repository. Builds with `python -m build` and installs from the package index: about a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_runs_kvplan_size_outside_the_repo(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("kvplan-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    packaged = {p.relative_to(REPO).as_posix() for p in (REPO / "model_specs").rglob("*.yaml")}
    assert {f"kvplan/{name}" for name in packaged} <= names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KVPLAN_SPECS")}
    done = subprocess.run([str(bin_dir / "kvplan"), "size", "llama3-70b", "--ctx", "4096", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["bytes_per_request_per_gpu"] == 2 * 80 * 8 * 128 * 2 * 4096
    done = subprocess.run([str(bin_dir / "kvplan"), "models", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=True)
    assert len(json.loads(done.stdout)) == len(list((REPO / "model_specs" / "models").glob("*.yaml")))
