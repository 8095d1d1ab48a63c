"""The `--json` schema of a result as a Markdown table: every key, its type, nested results expanded
once. The pages in docs/ carry these tables between `<!-- json-schema: module:Class -->` markers;
examples/refresh_docs.py writes them and tests/test_docs.py checks that they match the code."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "")
    text = re.sub(r"\b(?:[a-z_]+\.)+([A-Za-z_]+)", r"\1", text)  # kvplan.results.size.LayerKv -> LayerKv
    return text.replace("NoneType", "null").replace("Optional[", "null | ").replace("Union[", "")


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
