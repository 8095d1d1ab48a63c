"""The wheel ships model_specs/ and runs the main job from a fresh virtual environment outside the
repository. Builds with `python -m build` and installs from the package index: about a minute."""

from __future__ import annotations

import json
import os
import shutil
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
    assert wheel.name.endswith("-py3-none-any.whl")  # pure Python unless KVPLAN_COMPILE=1 asks otherwise
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


FRAG = [["frag", "llama3-8b", "--gpu", "h100", "--requests", "3000", "--json"],
        ["frag", "llama3-8b", "--kv-gib", "1", "--workload", "uniform:1-2000,1-600", "--requests", "2000",
         "--shared-prefix", "40", "--json"]]


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("cc") and not shutil.which("gcc"), reason="needs a C compiler")
def test_compiled_frag_is_the_same_simulation(tmp_path, capsys):
    """KVPLAN_COMPILE=1 builds frag's loop with mypyc (hatch_build.py): the wheel carries the
    extensions, they are what Python imports, and they print exactly what the source prints."""
    from kvplan.cli import main

    env = {**os.environ, "KVPLAN_COMPILE": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True, env=env)
    wheel = next((tmp_path / "dist").glob("kvplan-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        compiled = {n for n in archive.namelist() if n.startswith("kvplan/calc/frag/") and n.endswith(".so")}
    assert {n.split("/")[-1].split(".")[0] for n in compiled} == {"allocators", "strategies", "simulation",
                                                                  "counted", "waste"}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KVPLAN_SPECS")}
    where = subprocess.run([str(python), "-c", "import kvplan.calc.frag.simulation as s; print(s.__file__)"],
                           cwd=tmp_path, env=clean, capture_output=True, text=True, check=True)
    assert where.stdout.strip().endswith(".so")
    for argv in FRAG:
        done = subprocess.run([str(python), "-m", "kvplan", *argv], cwd=tmp_path, env=clean, capture_output=True,
                              text=True, check=True)
        assert main(argv) == 0
        assert json.loads(done.stdout) == json.loads(capsys.readouterr().out)
