"""What every spec class shares: frozen, strict about unknown keys, schemas built on first use."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9.\-]*$"


class Frozen(BaseModel):
    # defer_build: a schema is built on first use, so a run that reads one model builds no GPU schema
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
