"""What every spec class shares: frozen, strict about unknown keys, schemas built on first use."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

NAME_PATTERN = r"^[a-z0-9][a-z0-9.\-]*$"


class Frozen(BaseModel):
    # defer_build: a schema is built on first use, so a run that reads one model builds no GPU schema
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# Bounded, strict field types: no bool where a number belongs (YAML's `true` is not 1 layer), no
# string read as a number, no nan or inf, and no count beyond physical sense (10^30 heads). The
# bounds are 10-1000x beyond any released model or GPU, so they refuse only what cannot be meant.
def _count(most: int):
    return Annotated[int, Strict(), Field(ge=1, le=most)]


Layers = _count(10_000)  # layer counts (the deepest released model has 126 layers)
Heads = _count(65_536)  # attention, KV and linear-attention heads
Dim = _count(2**20)  # hidden, intermediate and head sizes, latent ranks, state sizes
Vocab = _count(2**24)  # 16,777,216 tokens (the largest vocabularies are about 262,000)
Tokens = _count(2**30)  # contexts, windows, chunks: as on the command line (kvplan.bounds)
Params = _count(10**14)  # 100T parameters
Bytes = _count(2**50)  # 1 PiB
Small = _count(1_000_000)  # experts, PCIe generations and lanes, watts
Rate = Annotated[float, Strict(), Field(gt=0, le=100_000, allow_inf_nan=False)]  # GB/s or TFLOPS
