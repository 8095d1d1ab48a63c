"""The textbook budget of the PagedAttention course notes: the GPU's nominal memory, less the
weights, is all KV. No engine runs this way; it reproduces the notes' examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, Engine, Replica, Term

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec


class Raw(Engine):
    name, display_name = "raw", "the engine"
    util, util_name = 1.0, "utilization"
    util_meaning = "of the GPU's nominal memory"
    block_size = 16
    formula = "total x util - weights"
    source = "the textbook budget (the PagedAttention course notes): nothing but weights and KV"
    changes = "no engine: the course notes' budget, and the probe's measured one"
    pipeline_stages = False  # the textbook splits the weights evenly

    def total_memory(self, gpu: GpuSpec) -> Term:
        return Term(gpu.memory_bytes, f"{gpu.name} nominal")

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        return Term(0, "none, by definition")

    def overhead(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        return Term(0, "none, by definition")

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        return int(total * util) - (weights + activation + overhead)


RAW = Raw()
