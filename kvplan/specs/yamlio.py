"""Reading YAML spec and check files: syntax errors apart from validation errors, both reported as
one line per problem, `file:line: field.path: what is wrong`."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from kvplan.errors import SpecError
from kvplan.specs.layers import KINDS

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def yaml_root(text: str) -> yaml.Node | None:
    """The node tree of an already-parsed document, for line numbers."""
    return yaml.compose(text, Loader=_Loader)


def line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | str:
    return _line_of(root, loc) or "?"


def format_validation_error(path: Path, err: ValidationError, root: yaml.Node | None,
                            cls: type[BaseModel] | None = None, at: Sequence[str | int] = ()) -> list[str]:
    """One line per problem: 'file:line: field.path: what is wrong'. `at` is where the validated
    mapping sits in the file (a check file's scenarios.3); `cls` offers 'did you mean' for a key."""
    lines = []
    problems = err.errors()
    for problem in problems:
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
                   if not (field.json_schema_extra or {}).get("set_by")})


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


# pydantic puts the discriminator's value into an error's location (layers.0.full.count): drop it.
_KIND_TAGS = set(KINDS)


def _follows_from_another(problem: dict, problems: list[dict]) -> bool:
    """A list reported 'too short' only because one of its items failed: say the item, not the list."""
    loc = tuple(problem["loc"])
    return problem["type"] == "too_short" and any(
        tuple(other["loc"][: len(loc)]) == loc and len(other["loc"]) > len(loc) for other in problems)


def read_text(path: Path, what: str = "spec file") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError(f"{path}: cannot read {what} ({reason})") from None


def parse_yaml(path: Path, text: str) -> object:
    """Parse YAML text; a syntax error becomes one SpecError line naming file and line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: YAML syntax error: {problem}; fix the YAML") from None


def validate_yaml(path: Path, text: str, cls: type[BaseModel]) -> BaseModel:
    """Parse and validate; problems become SpecError lines 'file:line: field: what is wrong'."""
    data = parse_yaml(path, text)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        root = yaml.compose(text, Loader=_Loader)  # only now: line numbers for the message
        raise SpecError("\n".join(format_validation_error(path, err, root, cls))) from None


def load_spec_file(path: Path, cls: type[BaseModel]) -> BaseModel:
    return validate_yaml(path, read_text(path), cls)
