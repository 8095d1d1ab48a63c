"""A GPU spec: memory, bandwidth, compute and links, each with its source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from kvplan.specs.base import (NAME_PATTERN, CacheBytes, Frozen, GpuBytes, HbmRate, LinkRate, PcieGeneration,
                               PcieLanes, Tflops, Watts)


class HostLink(Frozen):
    kind: Literal["pcie", "nvlink-c2c"]
    generation: PcieGeneration | None = None
    lanes: PcieLanes | None = None
    gbps_per_direction: LinkRate

    @model_validator(mode="after")
    def check_pcie_generation(self) -> HostLink:
        if self.kind == "pcie" and self.generation is None:
            raise ValueError("a pcie host link needs its generation (3, 4, 5 or 6)")
        return self


class ScaleUpLink(Frozen):
    kind: Literal["nvlink", "infinity-fabric"]
    version: str | None = None
    gbps_bidirectional: LinkRate
    # GPUs joined by NVSwitch (HGX/DGX boards, NVL72 racks), not bridged in pairs or cabled PCIe:
    # from Hopper's third-generation NVSwitch on, NCCL reduces inside the switch (NVLink SHARP,
    # NVLS) and registers buffers for it in every rank
    switched: bool = False

    @property
    def gbps_per_direction(self) -> float:
        return self.gbps_bidirectional / 2


class GpuSpec(Frozen):
    """One accelerator. Bandwidths are decimal GB/s; memory in bytes (GiB = 2**30)."""

    name: str = Field(pattern=NAME_PATTERN)
    display_name: str
    aliases: tuple[str, ...] = ()
    vendor: Literal["nvidia", "amd"]
    architecture: str
    memory_type: str
    memory_bytes: GpuBytes
    usable_memory_bytes: GpuBytes | None = None
    usable_memory_source: str | None = None
    cuda_total_bytes: GpuBytes | None = None  # cudaMemGetInfo's total: usable less driver-reserved
    cuda_total_source: str | None = None  # where that measurement comes from
    hbm_bandwidth_gbps: HbmRate
    fp16_tflops_dense: Tflops
    bf16_tflops_dense: Tflops | None = None
    fp8_tflops_dense: Tflops | None = None
    l2_cache_bytes: CacheBytes | None = None
    host_link: HostLink
    scale_up: ScaleUpLink | None = None
    tdp_watts: Watts | None = None
    source: str
    notes: str | None = None

    @model_validator(mode="after")
    def check_usable_memory(self) -> GpuSpec:
        if self.usable_memory_bytes is not None and self.usable_memory_bytes > self.memory_bytes:
            raise ValueError("usable_memory_bytes exceeds memory_bytes")
        if self.cuda_total_bytes is not None and self.cuda_total_bytes > (self.usable_memory_bytes or self.memory_bytes):
            raise ValueError("cuda_total_bytes exceeds usable_memory_bytes")
        return self

    def cuda_memory(self) -> tuple[int, str]:
        """The one memory basis every engine budget starts from: what CUDA (cudaMemGetInfo, and so
        PyTorch and the engines) reports as the device's total, and where the figure comes from."""
        if self.cuda_total_bytes:
            return self.cuda_total_bytes, "measured CUDA total"
        if self.vendor == "amd":  # HIP reports the rocm-smi total; no reservation known to subtract
            return self.usable_memory_bytes or self.memory_bytes, "HIP total (rocm-smi)" if self.usable_memory_bytes \
                else "HIP total taken as the datasheet's"
        base, what = ((self.usable_memory_bytes, "NVML total") if self.usable_memory_bytes
                      else (self.memory_bytes, "datasheet"))
        return base - DRIVER_RESERVED_BYTES, f"{what} - {DRIVER_RESERVED_BYTES // 2**20} MiB driver reserve"

    @property
    def nvls(self) -> bool:
        """NCCL's NVLink SHARP path: NVSwitch of Hopper's generation (NVLink 4) or later."""
        link = self.scale_up
        return link is not None and link.kind == "nvlink" and link.switched and int(link.version or 0) >= 4

    @property
    def cuda_capable(self) -> bool:
        """NVIDIA from Turing (compute capability 7.5) on: where FlashInfer's kernels run."""
        return self.vendor == "nvidia" and self.architecture not in ("Pascal", "Volta")

    @property
    def has_bf16(self) -> bool:
        """bf16 arithmetic: NVIDIA from Ampere (compute capability 8.0) on, every AMD Instinct here."""
        return self.architecture not in ("Pascal", "Volta", "Turing")

    def dense_tflops(self, weights_dtype: str = "bf16") -> tuple[float, str]:
        """The one datasheet peak kvplan divides by (roofline, MFU): dense FP8 for fp8 weights where
        the GPU has it, else dense BF16, else dense FP16; and which figure it is."""
        if weights_dtype == "fp8" and self.fp8_tflops_dense:
            return self.fp8_tflops_dense, f"{self.name} dense FP8 datasheet peak"
        if self.bf16_tflops_dense:
            return self.bf16_tflops_dense, f"{self.name} dense BF16 datasheet peak"
        return self.fp16_tflops_dense, f"{self.name} dense FP16 datasheet peak (no BF16)"

    @property
    def planning_memory_bytes(self) -> int:
        return self.cuda_memory()[0]


# What the CUDA driver keeps out of the NVML total before a process sees any: 85,520,809,984 B NVML
# against 85,017,493,504 B cudaMemGetInfo on an H100 80GB (driver 580.159.04) = 480 MiB. Assumed for
# GPUs whose CUDA total nobody has measured, and said so wherever it is used.
DRIVER_RESERVED_BYTES = 480 * 2**20
