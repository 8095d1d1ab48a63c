"""An opt-in compiled build of the fragmentation simulator (`kvplan frag`), with mypyc.

    pip install mypy setuptools hatchling && KVPLAN_COMPILE=1 pip install --no-build-isolation .

compiles kvplan/calc/frag's event loop, strategies and allocators to C extensions placed beside
their sources in the wheel (Python imports an extension before a .py of the same name). The
sources are the same and so are the results; a default build (no KVPLAN_COMPILE) is pure Python,
needs no compiler and no mypy, and installs in seconds. docs/frag.md gives the speed of both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

COMPILED = [f"kvplan/calc/frag/{name}.py" for name in ("allocators", "strategies", "simulation", "counted", "waste")]


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if os.environ.get("KVPLAN_COMPILE") != "1":
            return
        if version == "editable":
            self.app.display_warning("KVPLAN_COMPILE=1 compiles regular wheels only; this editable install stays pure Python")
            return
        try:
            from mypyc.build import mypycify
            from setuptools import Distribution
        except ImportError:
            raise RuntimeError("KVPLAN_COMPILE=1 needs mypy and setuptools in the build environment: pip install mypy "
                               "setuptools, then pip install --no-build-isolation .") from None
        self.scratch = Path(tempfile.mkdtemp(prefix="kvplan-mypyc-"))
        root = Path(self.root)
        here = Path.cwd()
        os.chdir(root)  # mypycify takes paths relative to the project, and writes C under target_dir
        try:
            flags = ["--ignore-missing-imports", "--follow-imports=silent"]  # type-check the compiled modules only
            extensions = mypycify([*flags, *COMPILED], opt_level="3", target_dir=str(self.scratch / "c"))
            dist = Distribution({"name": "kvplan", "ext_modules": extensions})
            command = dist.get_command_obj("build_ext")
            command.build_lib, command.build_temp = str(self.scratch / "lib"), str(self.scratch / "tmp")
            dist.run_command("build_ext")
        finally:
            os.chdir(here)
        for built in (self.scratch / "lib").rglob("*.so"):
            build_data["force_include"][str(built)] = built.relative_to(self.scratch / "lib").as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if getattr(self, "scratch", None):
            shutil.rmtree(self.scratch, ignore_errors=True)
