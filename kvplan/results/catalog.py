"""Results of `kvplan models` and `kvplan gpus`: one row per spec, the figures the tables show."""

from __future__ import annotations

from datetime import date

from kvplan.results.base import Result


class ModelRow(Result):
    name: str
    params_total: int
    params_active: int | None
    layer_counts: tuple[tuple[str, int], ...]  # (kind, layers) per layer group
    max_context: int
    dtype: str


class ReleaseRow(Result):
    """One spec of a family, for `kvplan models --new`."""

    name: str
    display_name: str
    released: date | None  # None: no checkable source gives the date
    released_source: str | None


class FamilyReleases(Result):
    """A family (the config's model_type) and its releases in the database, newest first."""

    family: str
    newest: date | None
    releases: tuple[ReleaseRow, ...]


class GpuRow(Result):
    name: str
    memory_bytes: int
    usable_memory_bytes: int | None
    cuda_memory_bytes: int  # the basis every engine budget starts from
    cuda_memory_basis: str  # measured, or NVML / datasheet less the driver's reserve, said so
    hbm_bandwidth_gbps: float
    bf16_tflops_dense: float | None
    fp8_tflops_dense: float | None
    host_link: str  # "pcie" or "nvlink-c2c"
    host_link_generation: int | None
    host_link_gbps: float


class EngineRow(Result):
    """One release preset of an engine, for `kvplan engines`."""

    key: str  # what --engine takes: 'vllm==0.19'
    name: str
    display_name: str
    default: bool  # the preset the engine's name alone takes
    versions: str  # the releases it holds for: '0.20 to 0.33', '0.34 and later'
    util_name: str
    util: float
    util_meaning: str
    block_size: int
    start_rule: str
    long_context_switch: str
    changes: str  # what changes from the preset before it
    encodes: tuple[str, ...]  # the engine source files it reads
