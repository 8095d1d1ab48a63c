"""Frozen results, the base of every command's. Calculators fill them with every intermediate term, so that the table, the
`--explain` derivation, `--json` and the tests all read the same numbers. Field names carry units."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Step(Result):
    """One line of a derivation: what is computed, the formula with numbers in, the value."""

    label: str
    formula: str
    value: str
