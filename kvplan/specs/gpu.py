"""A GPU spec: memory, bandwidth, compute and links, each with its source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from kvplan.specs.base import NAME_PATTERN, Frozen


class HostLink(Frozen):
    kind: Literal["pcie", "nvlink-c2c"]
    generation: PositiveInt | None = None
    lanes: PositiveInt | None = None
    gbps_per_direction: PositiveFloat

    @model_validator(mode="after")
    def check_pcie_generation(self) -> HostLink:
        if self.kind == "pcie" and self.generation is None:
            raise ValueError("a pcie host link needs its generation (3, 4, 5 or 6)")
        return self


class ScaleUpLink(Frozen):
    kind: Literal["nvlink", "infinity-fabric"]
    version: str | None = None
    gbps_bidirectional: PositiveFloat


class GpuSpec(Frozen):
    """One accelerator. Bandwidths are decimal GB/s; memory in bytes (GiB = 2**30)."""

    name: str = Field(pattern=NAME_PATTERN)
    display_name: str
    aliases: tuple[str, ...] = ()
    vendor: Literal["nvidia", "amd"]
    architecture: str
    memory_type: str
    memory_bytes: PositiveInt
    usable_memory_bytes: PositiveInt | None = None
    usable_memory_source: str | None = None
    cuda_total_bytes: PositiveInt | None = None  # cudaMemGetInfo's total: usable less driver-reserved
    hbm_bandwidth_gbps: PositiveFloat
    fp16_tflops_dense: PositiveFloat
    bf16_tflops_dense: PositiveFloat | None = None
    fp8_tflops_dense: PositiveFloat | None = None
    l2_cache_bytes: PositiveInt | None = None
    host_link: HostLink
    scale_up: ScaleUpLink | None = None
    tdp_watts: PositiveInt | None = None
    source: str
    notes: str | None = None

    @model_validator(mode="after")
    def check_usable_memory(self) -> GpuSpec:
        if self.usable_memory_bytes is not None and self.usable_memory_bytes > self.memory_bytes:
            raise ValueError("usable_memory_bytes exceeds memory_bytes")
        if self.cuda_total_bytes is not None and self.cuda_total_bytes > (self.usable_memory_bytes or self.memory_bytes):
            raise ValueError("cuda_total_bytes exceeds usable_memory_bytes")
        return self

    @property
    def planning_memory_bytes(self) -> int:
        """What CUDA (and so PyTorch and the engines) sees as total where known, else what the
        driver reports, else the nominal capacity."""
        return self.cuda_total_bytes or self.usable_memory_bytes or self.memory_bytes
