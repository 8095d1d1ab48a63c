"""The spec database as rows for `kvplan models` and `kvplan gpus`, sorted by name."""

from __future__ import annotations

from collections.abc import Iterable

from kvplan.results.catalog import GpuRow, ModelRow
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec


def model_rows(models: Iterable[ModelSpec]) -> tuple[ModelRow, ...]:
    return tuple(ModelRow(name=m.name, params_total=m.params_total, params_active=m.params_active,
                          layer_counts=tuple((g.kind, g.count) for g in m.layers), max_context=m.max_context,
                          dtype=m.dtype)
                 for m in sorted(models, key=lambda m: m.name))


def gpu_rows(gpus: Iterable[GpuSpec]) -> tuple[GpuRow, ...]:
    return tuple(GpuRow(name=g.name, memory_bytes=g.memory_bytes, usable_memory_bytes=g.usable_memory_bytes,
                        cuda_memory_bytes=g.cuda_memory()[0], cuda_memory_basis=g.cuda_memory()[1],
                        hbm_bandwidth_gbps=g.hbm_bandwidth_gbps, bf16_tflops_dense=g.bf16_tflops_dense,
                        fp8_tflops_dense=g.fp8_tflops_dense, host_link=g.host_link.kind,
                        host_link_generation=g.host_link.generation, host_link_gbps=g.host_link.gbps_per_direction)
                 for g in sorted(gpus, key=lambda g: g.name))
