"""The layers stay visible: imports point one way (cli -> render -> results <- calc -> specs; probe
beside calc), no circle between modules, torch only inside the probe, and modules and functions
small enough to read. Every import counts, including the ones deferred inside functions."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kvplan"

# What each layer may import, besides itself. "base" is errors, units, bounds and the package's __init__:
# shared by every layer, importing nothing but each other.
ALLOWED = {
    "cli": {"render", "results", "calc", "specs", "probe", "base"},
    "render": {"results", "base"},
    "results": {"base"},
    "calc": {"results", "specs", "base"},
    "probe": {"calc", "results", "specs", "base"},
    "specs": {"base"},
    "base": set(),
    "main": {"cli"},
}
HEAVY = ("torch", "triton", "pynvml")  # the probe extra: imported only inside kvplan/probe


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "units", "bounds"):
        return "base"
    return "main" if parts[1] == "__main__" else parts[1]


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module this source imports, absolute, with the line of each import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, node.lineno))
    return found


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The kvplan module an import names (`from kvplan.calc.kv import x` -> kvplan.calc.kv)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def graph() -> dict[str, list[tuple[str, int]]]:
    modules = project_modules()
    edges = {}
    for name, path in modules.items():
        targets = imports_of(path.read_text(), name, path.name == "__init__.py")
        edges[name] = [(resolve(t, modules), line) for t, line in targets if t.split(".")[0] == "kvplan"]
    return edges


def wrong_way(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    problems = []
    for source, targets in edges.items():
        for target, line in targets:
            have, want = layer_of(source), layer_of(target)
            if have != want and want not in ALLOWED[have]:
                problems.append(f"{source}:{line} imports {target} ({have} may not import {want})")
    return problems


def circles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once, from its first module)."""
    found, state = [], {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target, _ in edges.get(node, ()):
            if target == node:
                continue
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target, stack + [target])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            walk(start, [start])
    return found


def test_imports_point_one_way():
    assert wrong_way(graph()) == []


def test_no_import_circle():
    assert circles(graph()) == []


def test_the_checks_catch_what_they_are_for():
    """A renderer importing a calculator, and two modules importing each other, are caught."""
    edges = {"kvplan.render.size": [("kvplan.calc.kv", 7)], "kvplan.calc.kv": [("kvplan.calc.budget", 3)],
             "kvplan.calc.budget": [("kvplan.calc.kv", 4)]}
    assert wrong_way(edges) == ["kvplan.render.size:7 imports kvplan.calc.kv (render may not import calc)"]
    assert circles(edges) == [["kvplan.calc.budget", "kvplan.calc.kv", "kvplan.calc.budget"]]
    assert layer_of("kvplan.units") == "base" and layer_of("kvplan.cli.size") == "cli"


def test_relative_imports_are_resolved():
    assert imports_of("from .kv import x\nfrom . import y", "kvplan.calc.plan", False) == [
        ("kvplan.calc.kv", 1), ("kvplan.calc", 2)]


@pytest.mark.parametrize("name", HEAVY)
def test_heavy_dependencies_only_inside_the_probe(name):
    outside = [f"{module}:{line}" for module, path in project_modules().items()
               if layer_of(module) != "probe"
               for target, line in imports_of(path.read_text(), module, path.name == "__init__.py")
               if target.split(".")[0] == name]
    assert outside == []


def test_modules_stay_small():
    sizes = {module: path.read_text().count("\n") for module, path in project_modules().items()}
    assert {m: n for m, n in sizes.items() if n > 400} == {}


def test_functions_read_at_a_glance():
    lengths = [node.end_lineno - node.lineno + 1
               for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert len(lengths) > 100 and statistics.median(lengths) <= 15


def test_size_imports_only_what_it_needs():
    """`kvplan size NAME` reads the prebuilt index: no YAML parsing, no GPU spec class, no other
    command's module, no torch, no layer kind its model does not have (each would be start-up time
    spent on nothing)."""
    import subprocess
    import sys

    code = ("import contextlib, io, sys\nfrom kvplan.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['size', 'llama3-70b', '--ctx', '4096'])\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('kvplan', 'torch', 'yaml', 'huggingface_hub')))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                 .stdout.split())
    assert "kvplan.calc.kv" in loaded and "kvplan.render.size" in loaded  # the test sees the run
    assert loaded.isdisjoint({"kvplan.specs.yamlio", "kvplan.specs.gpu", "kvplan.cli.capacity", "kvplan.calc.budget",
                              "kvplan.probe", "torch", "kvplan.render.capacity", "kvplan.specs.resolve",
                              "kvplan.specs.importer", "huggingface_hub"})
    # a model of the shared kinds imports no family's kinds, and no union of them (no validation schema)
    assert not any(m.startswith("kvplan.specs.kinds.") for m in loaded) and "kvplan.specs.layer_union" not in loaded
