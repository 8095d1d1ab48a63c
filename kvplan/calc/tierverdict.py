"""Each KV offload tier's reload-or-recompute verdict: from which prefix a hit reloaded from the tier
beats computing it again (calc/offload.py reload_verdict, on one GPU). Apart from calc/kvtiers.py,
which the budget imports, because the offload calculator imports the budget."""

from __future__ import annotations

from kvplan.calc.offload import DEFAULT_MFU, LINKS, host_tier, reload_verdict
from kvplan.results.capacity import MemoryBudget
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec


def with_reload_verdicts(model: ModelSpec, gpu: GpuSpec | None, budget: MemoryBudget) -> MemoryBudget:
    """The budget with each tier's break-even prefix: over the GPU's host link (a local disk: one
    NVMe drive), prefill at the datasheet's dense peak x DEFAULT_MFU. Unchanged without a GPU spec."""
    if gpu is None or not budget.kv_offload:
        return budget
    peak, _ = gpu.dense_tflops()
    tiers = []
    for tier in budget.kv_offload:
        link = LINKS["nvme"] if tier.medium == "local disk" else host_tier(gpu)
        basis = f"{link.description} at {link.gbps:g} GB/s; prefill at {peak:g} TFLOPS x MFU {DEFAULT_MFU:g}"
        verdict = reload_verdict(model, budget.kv_dtype, budget.block_size, link, peak * 1e12 * DEFAULT_MFU, basis)
        tiers.append(tier.model_copy(update={"breakeven_prefix_tokens": verdict.breakeven_prefix_tokens,
                                             "verdict_basis": basis}))
    return budget.model_copy(update={"kv_offload": tuple(tiers)})
