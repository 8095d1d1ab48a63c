"""Decode roofline: one step's bytes over HBM bandwidth against its FLOPs over peak compute.

    bytes = weights on the GPU (read once per step) + batch x the KV each request holds
    FLOPs = 2 x active parameters on the GPU x batch
          + 2 x batch x sum over layers of (query heads / KV heads) x KV elements x tokens held
            (each cached element meets every query head of its group once: one multiply, one add)

The batch at which decode turns compute-bound ignores the KV term: weights / bandwidth equals
2 x active parameters x batch / peak, so batch = peak x weight bytes / (2 x bandwidth x params).
"""

from __future__ import annotations

from kvplan.calc.kv import request_bytes
from kvplan.results.capacity import MemoryBudget, Roofline
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import KvFormat, ceil_div


def attention_flops_per_request(model: ModelSpec, ctx: int, tp: int, pp: int) -> int:
    q_heads = model.num_attention_heads // tp
    total = 0
    for group in model.layers:
        per_token = group.kv_elements_per_token(tp)
        if per_token:
            ratio = max(1, q_heads // group.kv_heads_per_rank(tp))
            total += ceil_div(group.count, pp) * 2 * ratio * per_token * group.cached_tokens(ctx)
    return total


def decode_roofline(model: ModelSpec, gpu: GpuSpec, budget: MemoryBudget, fmt: KvFormat, batch: int,
                    ctx: int, tflops: float | None = None, hbm_gbps: float | None = None,
                    weights_dtype: str = "auto") -> Roofline:
    peak, source = (tflops, "the rate given") if tflops else gpu.dense_tflops(weights_dtype)
    bandwidth = hbm_gbps or gpu.hbm_bandwidth_gbps
    gpus = budget.tp * budget.pp
    params = ceil_div(model.params_per_token, gpus)
    kv = batch * request_bytes(model, ctx, fmt, budget.tp, budget.pp)
    flops = 2 * params * batch + batch * attention_flops_per_request(model, ctx, budget.tp, budget.pp)
    memory_time = (budget.weights_bytes + kv) / (bandwidth * 1e9)
    compute_time = flops / (peak * 1e12)
    step = max(memory_time, compute_time)
    ridge = round(peak * 1e12 * budget.weights_bytes / (2 * bandwidth * 1e9 * params)) if params else 0
    return Roofline(batch=batch, context_tokens=ctx, hbm_bandwidth_gbps=bandwidth, peak_tflops=peak,
                    peak_source=source if not hbm_gbps else f"{source}; the HBM bandwidth given, {hbm_gbps:g} GB/s",
                    weight_bytes=budget.weights_bytes, kv_bytes=kv, flops=flops, memory_time_s=memory_time,
                    compute_time_s=compute_time, step_time_s=step,
                    bound="memory" if memory_time >= compute_time else "compute",
                    tokens_per_s=batch / step if step else 0.0, compute_bound_batch=ridge)
