"""What every spec class shares: frozen, strict about unknown keys, schemas built on first use."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

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
Small = _count(1_000_000)  # experts (a GPU's figures have their own bounds below)


def _shown(value: float) -> str:
    """3350.0 -> '3,350'; 1e-300 -> '1e-300'; 2**30 -> '1,073,741,824'."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


# A GPU's figures, each bounded to what a datasheet can say (1e-300 GB/s of HBM divided every
# decode step into 10^300 seconds), with a message naming the unit and an example to copy.
def _within(kind: type, lo: float, hi: float, unit: str, fix: str):
    def check(value):
        if not lo <= value <= hi:
            raise ValueError(f"{_shown(value)} is outside {_shown(lo)}..{_shown(hi)}{' ' + unit if unit else ''}; {fix}")
        return value
    return Annotated[kind, Strict(), Field(allow_inf_nan=False) if kind is float else Field(), AfterValidator(check)]


# the slowest: a Jetson Orin Nano's 68 GB/s LPDDR5; the fastest: 12x B200's 8,000
HbmRate = _within(float, 10, 100_000, "GB/s", "give the datasheet's memory bandwidth in decimal GB/s, e.g. 3350 "
                  "for an H100 SXM")
# host and scale-up links: PCIe 3.0 x1 is 1 GB/s; NVLink 5 is 1,800 GB/s both ways
LinkRate = _within(float, 0.5, 100_000, "GB/s", "give the link's datasheet rate in decimal GB/s, e.g. 64 for "
                   "PCIe 5.0 x16 one way")
# dense TFLOPS: a GTX 1080's FP16 is 0.14, a B200's FP8 4,500
Tflops = _within(float, 0.1, 100_000, "TFLOPS", "give the datasheet's dense (not sparse) TFLOPS, e.g. 989.4 for "
                 "an H100 SXM's BF16")
GpuBytes = _within(int, 2**30, 2**44, "bytes", "give the memory in bytes, e.g. 85899345920 for 80 GiB")  # 1 GiB..16 TiB
CacheBytes = _within(int, 2**10, 2**34, "bytes", "give the L2 cache in bytes, e.g. 52428800 for an H100's 50 MiB")
Watts = _within(int, 1, 10_000, "W", "give the board power in watts, e.g. 700 for an H100 SXM")
PcieGeneration = _within(int, 1, 8, "", "give the PCIe generation, e.g. 5")
PcieLanes = _within(int, 1, 64, "lanes", "give the PCIe lanes, e.g. 16")
