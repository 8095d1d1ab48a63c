"""The `--json` schema of a result as a Markdown table: every key, its type, nested results expanded
once. The pages in docs/ carry these tables between `<!-- json-schema: module:Class -->` markers;
examples/refresh_docs.py writes them and tests/test_docs.py checks that they match the code."""

from __future__ import annotations

import re
import types
import typing

from pydantic import BaseModel


def _type_name(annotation) -> str:
    """`int`, `str | None`, `tuple[LayerKv, ...]`: what a JSON reader sees, without pydantic's
    constraints (Annotated[int, Strict(), Field(ge=1)] is an `int`)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(arg) for arg in args) + "]"
    if origin is not None:
        inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\b(?:[a-z_]+\.)+([A-Za-z_]+)", r"\1", str(annotation).replace("typing.", ""))


def _nested(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [cls for arg in typing.get_args(annotation) for cls in _nested(arg)]


def json_keys_table(cls: type[BaseModel]) -> str:
    """`| key | type |` rows for cls and, below it, for every result class nested in it."""
    out, seen, todo = [], set(), [cls]
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        doc = (current.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += [f"**{current.__name__}**" + (f": {doc}" if doc else ""), "", "| key | type |", "|---|---|"]
        for name, field in current.model_fields.items():
            type_text = _type_name(field.annotation).replace(" | ", " \\| ")  # a bar inside a table cell
            out.append(f"| `{name}` | `{type_text}` |")
            todo += _nested(field.annotation)
        out.append("")
    return "\n".join(out).rstrip() + "\n"
