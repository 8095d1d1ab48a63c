"""Will the engine start? vLLM refuses to start when one request of max_model_len does not fit its
KV pool (vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory: "To serve at least one request
with the model's max seq len ... KV cache is needed, which is larger than the available KV cache
memory"), and names the longest max_model_len that would (estimate_max_model_len, a binary search
over the same sum). The same test here, over the paged bytes of one request on one GPU."""

from __future__ import annotations

from kvplan.calc.kv import MAX_CTX_TOKENS, paged_request_bytes, resolve_kv_format
from kvplan.results.capacity import MemoryBudget, StartCheck
from kvplan.specs.model import ModelSpec
from kvplan.units import KvFormat, fmt_binary


def startup(model: ModelSpec, budget: MemoryBudget, max_len: int) -> StartCheck:
    """Whether the engine starts with max_model_len = max_len on this budget, and if not, the fix."""
    fmt = resolve_kv_format(model, budget.kv_dtype)
    needed = paged_request_bytes(model, max_len, fmt, budget.tp, budget.block_size, budget.pp)
    pool = max(budget.kv_pool_bytes, 0)
    starts = budget.weights_fit and pool > 0 and needed <= pool
    longest = max_len if starts else (max_context(model, fmt, budget, 1) if pool > 0 else 0)
    longest = min(longest, max_len)
    if starts:
        reason, fix = "", ""
    elif not budget.weights_fit or pool == 0:
        reason = (f"no KV pool: the weights ({fmt_binary(budget.weights_bytes)}) and runtime leave nothing of "
                  f"{fmt_binary(budget.total_bytes)}")
        fix = "more tensor or pipeline parallelism, quantized weights, or a larger GPU"
    else:
        reason = (f"one request of max_model_len {max_len:,} needs {fmt_binary(needed)} of KV, the pool holds "
                  f"{fmt_binary(pool)}")
        fix = f"--max-model-len {longest}" if longest else "raise --gpu-memory-utilization or add GPUs"
    return StartCheck(starts=starts, max_model_len=max_len, needed_bytes=needed, kv_pool_bytes=pool,
                      largest_max_model_len=longest, reason=reason, fix=fix)


def max_context(model: ModelSpec, fmt: KvFormat, budget: MemoryBudget, batch: int) -> int:
    """The longest context at which `batch` requests still fit the pool, paged (0: not even 1 token)."""
    fits = lambda ctx: batch * paged_request_bytes(model, ctx, fmt, budget.tp, budget.block_size,  # noqa: E731
                                                   budget.pp) <= budget.kv_pool_bytes
    if not fits(1):
        return 0
    lo, hi = 1, MAX_CTX_TOKENS
    if fits(hi):
        return hi
    while hi - lo > 1:  # fits(lo) and not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
