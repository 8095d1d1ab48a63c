"""Reading YAML spec and check files: syntax errors apart from validation errors, both reported as
one line per problem, `file:line: field.path: what is wrong`."""

from __future__ import annotations

import difflib
import os
import stat
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from kvplan.errors import SpecError
from kvplan.specs.jsonio import MAX_DIGITS, long_number_message
from kvplan.specs.layers import KIND_TAGS

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LongNumber(Exception):
    def __init__(self, line: int, digits: int) -> None:
        super().__init__(line, digits)
        self.line, self.digits = line, digits


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader, refusing a whole number of more than MAX_DIGITS digits before int() reads it
    (int() raises past 4,300 digits, and a longer one than 308 overflows every float field)."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = len(str(node.value).replace("_", "").lstrip("+-"))
        if digits > MAX_DIGITS:
            raise _LongNumber(node.start_mark.line + 1, digits)
        return yaml.SafeLoader.construct_yaml_int(self, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
SpecModel = TypeVar("SpecModel", bound=BaseModel)


def _line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a 1-based line number."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


MAX_PROBLEMS = 20


def yaml_root(text: str) -> yaml.Node | None:
    """The node tree of an already-parsed document, for line numbers."""
    return yaml.compose(text, Loader=_Loader)


def line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | str:
    return _line_of(root, loc) or "?"


def format_validation_error(path: Path, err: ValidationError, root: yaml.Node | None,
                            cls: type[BaseModel] | None = None, at: Sequence[str | int] = ()) -> list[str]:
    """One line per problem: 'file:line: field.path: what is wrong'. `at` is where the validated
    mapping sits in the file (a check file's scenarios.3); `cls` offers 'did you mean' for a key."""
    lines: list[str] = []
    problems = err.errors()
    for problem in problems:
        if len(lines) == MAX_PROBLEMS:  # each line walks the file's nodes: 8,000 took 29 s
            lines.append(f"{path}: ... and more problems; fix these first")
            break
        if _follows_from_another(problem, problems):
            continue
        loc = [*at, *(p for p in problem["loc"] if not (isinstance(p, str) and p in _KIND_TAGS))]
        where = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(root, loc)
        prefix = f"{path}:{line}" if line else str(path)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden" and cls is not None:
            message = unknown_key(str(loc[-1]), fields_at(cls, problem["loc"][:-1]))
        lines.append(f"{prefix}: {where}: {message}")
    return lines


def unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    if 0 < len(known) <= 12:
        return f"unknown key; the keys here are {', '.join(sorted(known))}"
    return "unknown key; remove it or check its spelling"


def fields_at(cls: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The field names of the model found at `loc` below `cls` (through lists, tuples, Optionals
    and kind-tagged unions), for 'did you mean'; [] where the path leaves the models."""
    models = [cls]
    for part in loc:
        if isinstance(part, int):
            continue
        found = []
        for model in models:
            field = model.model_fields.get(part)
            if field is None and part in _KIND_TAGS:
                found.append(model)  # a discriminator tag in the location: same level
            elif field is not None:
                found.extend(_models_in(field.annotation))
        models = found or models
    return sorted({name for model in models for name, field in model.model_fields.items()
                   if not (isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("set_by"))})


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


# pydantic puts the discriminator's value into an error's location (layers.0.full.count): drop it.
_KIND_TAGS = set(KIND_TAGS)


def _follows_from_another(problem: ErrorDetails, problems: list[ErrorDetails]) -> bool:
    """A list reported 'too short' only because one of its items failed: say the item, not the list."""
    loc = tuple(problem["loc"])
    return problem["type"] == "too_short" and any(
        tuple(other["loc"][: len(loc)]) == loc and len(other["loc"]) > len(loc) for other in problems)


# The largest file of each kind kvplan reads: 100-1000x the largest real one (a spec is ~3 KB, a
# config.json ~10 KB, a check file of 100 scenarios ~20 KB), so a runaway file is refused before
# it is parsed: a 50 MB spec took 15 s of YAML, a symlink to /dev/zero all of memory.
LIMITS = {"spec file": 1 * 2**20, "check file": 8 * 2**20, "config.json": 16 * 2**20, "trace": 512 * 2**20,
          "start-up log": 64 * 2**20}


def read_text(path: Path, what: str = "spec file", error: type[Exception] = SpecError, lenient: bool = False) -> str:
    """The text of a regular file of at most LIMITS[what] bytes, as UTF-8; else one line naming it.
    lenient: bytes that are not UTF-8 are replaced (a pasted log), not refused."""
    limit = LIMITS.get(what, 16 * 2**20)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise error(f"{path}: not a regular file (a device, pipe or folder); give the {what} itself")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{path}: over {limit // 2**20:,} MiB, too large for a {what}; is it the right file?")
    try:
        return data.decode("utf-8", errors="replace" if lenient else "strict")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: cannot read {what} (not UTF-8 text: {exc.reason} at byte {exc.start:,})") from None


MAX_NODES = 1_000_000  # values in a document once its aliases are expanded (a spec holds ~100)


def _expanded_nodes(root: yaml.Node | None) -> int:
    """How many values the document holds with every alias expanded, counted without expanding:
    an alias is the same node object, so its size is computed once (a 'billion laughs' of nine
    levels of ten aliases is 90 aliases in the file and 10^9 values once loaded)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 0  # a recursive alias: counted once
            children = (node.value if isinstance(node, yaml.SequenceNode) else
                        [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else [])
            sizes[id(node)] = min(1 + sum(size(child) for child in children), MAX_NODES + 1)
        return sizes[id(node)]

    return size(root) if root is not None else 0


def parse_yaml(path: Path, text: str) -> object:
    """Parse YAML text; a syntax error becomes one SpecError line naming file and line."""
    try:
        if "&" in text and _expanded_nodes(yaml.compose(text, Loader=_Loader)) > MAX_NODES:
            raise SpecError(f"{path}: its aliases expand to over {MAX_NODES:,} values (a YAML alias bomb?); "
                            "write the values out")
        return yaml.load(text, Loader=_Loader)
    except _LongNumber as exc:
        raise SpecError(f"{path}:{exc.line}: {long_number_message(exc.digits)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: YAML syntax error: {problem}; fix the YAML") from None


def validate_yaml(path: Path, text: str, cls: type[SpecModel]) -> SpecModel:
    """Parse and validate; problems become SpecError lines 'file:line: field: what is wrong'."""
    data = parse_yaml(path, text)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        root = yaml.compose(text, Loader=_Loader)  # only now: line numbers for the message
        raise SpecError("\n".join(format_validation_error(path, err, root, cls))) from None


def load_spec_file(path: Path, cls: type[SpecModel]) -> SpecModel:
    return validate_yaml(path, read_text(path), cls)
