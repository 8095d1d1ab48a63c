"""How many requests fit in the KV pool, under each allocation strategy of source note 001.

    fixed max-length: every request reserves max_len tokens, contiguous;
    doubling:         a contiguous buffer that starts at one page and doubles when full
                      (std::vector): capacity = the power of two >= its tokens;
    paged:            whole pages of block_size tokens, per layer (PagedAttention).

Each at average occupancy (in + out/2 tokens, as the note counts) and at peak (in + out).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvplan.calc.tierverdict import with_reload_verdicts
from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.draft import pool_model
from kvplan.calc.kv import paged_request_bytes, request_bytes, resolve_kv_format
from kvplan.calc.kvpacked import budget_packing
from kvplan.calc.roofline import decode_roofline
from kvplan.calc.startup import max_context, startup
from kvplan import bounds
from kvplan.errors import InputError, KvplanError
from kvplan.results.capacity import BatchResult, MemoryBudget, Overview, OverviewRow, StrategyRow
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import KvFormat


@dataclass(frozen=True)
class Workload:
    in_tokens: int
    out_tokens: int
    max_len: int | None = None  # None: the model's max context

    @property
    def avg_tokens(self) -> int:
        return self.in_tokens + self.out_tokens // 2

    @property
    def peak_tokens(self) -> int:
        return self.in_tokens + self.out_tokens

    def check(self) -> None:
        if self.in_tokens < 0 or self.out_tokens < 0 or self.peak_tokens < 1:
            raise InputError(f"{{in_tokens}} {self.in_tokens} / {{out_tokens}} {self.out_tokens}: token counts must "
                             "not be negative and a request needs at least one token", "in_tokens", "out_tokens")
        if self.max_len is not None:
            bounds.tokens(self.max_len, "max_len")
            if self.max_len < self.peak_tokens:  # the engine refuses a request longer than max_model_len
                raise InputError(f"{{max_len}} {self.max_len:,} is shorter than the {self.peak_tokens:,}-token requests "
                                 "(in + out); use {max_len} >= {in_tokens} + {out_tokens}", "max_len", "in_tokens",
                                 "out_tokens")


def doubling_capacity(tokens: int, start: int) -> int:
    """The capacity a doubling buffer has grown to when it holds `tokens` (start, 2 x start, ...)."""
    if tokens <= start:
        return start
    return start << (-(-tokens // start) - 1).bit_length()  # the power of two >= tokens / start


def _row(name: str, rule: str, pool: int, reserve, avg: int, peak: int) -> StrategyRow:
    (tokens_avg, bytes_avg), (tokens_peak, bytes_peak) = reserve(avg), reserve(peak)
    fits = lambda b: max(pool, 0) // b if b else 0  # noqa: E731
    return StrategyRow(strategy=name, rule=rule, reserved_tokens_avg=tokens_avg, bytes_per_request_avg=bytes_avg,
                       concurrency_avg=fits(bytes_avg), reserved_tokens_peak=tokens_peak,
                       bytes_per_request_peak=bytes_peak, concurrency_peak=fits(bytes_peak))


def strategy_rows(model: ModelSpec, budget: MemoryBudget, fmt: KvFormat, workload: Workload,
                  max_len: int) -> tuple[StrategyRow, ...]:
    tp, pp, block, pool = budget.tp, budget.pp, budget.block_size, budget.kv_pool_bytes
    exact = lambda tokens: request_bytes(model, tokens, fmt, tp, pp)  # noqa: E731
    fixed = lambda _tokens: (max_len, exact(max_len))  # noqa: E731
    doubling = lambda tokens: ((cap := doubling_capacity(tokens, block)), exact(cap))  # noqa: E731
    paged = lambda tokens: (-(-tokens // block) * block,  # noqa: E731
                            paged_request_bytes(model, tokens, fmt, tp, block, pp))
    avg, peak = workload.avg_tokens, workload.peak_tokens
    return (
        _row("fixed max-length", f"reserve max_len = {max_len:,} tokens", pool, fixed, avg, peak),
        _row("doubling", f"power-of-two capacity from {block} tokens", pool, doubling, avg, peak),
        _row("paged", f"ceil(tokens / {block}) pages of {block} tokens", pool, paged, avg, peak),
    )


def batch_capacity(model: ModelSpec, gpu: GpuSpec, workload: Workload, inputs: BudgetInputs = BudgetInputs(),
                   *, batch: int | None = None, longest_ctx_requests: int | None = None,
                   peak_tflops: float | None = None, hbm_gbps: float | None = None) -> BatchResult:
    """`kvplan batch` for one model: the budget, the strategies, the engine's figures, the roofline."""
    workload.check()
    budget = with_reload_verdicts(model, gpu, memory_budget(model, gpu, inputs))
    model = pool_model(model, inputs.speculative_method, inputs.draft_model, inputs.num_speculative_tokens)
    fmt = resolve_kv_format(model, budget.kv_dtype)
    max_len = workload.max_len or model.max_context
    rows = strategy_rows(model, budget, fmt, workload, max_len)
    per_max_len = paged_request_bytes(model, max_len, fmt, budget.tp, budget.block_size, budget.pp)
    usable_pool = budget.num_blocks * budget.page_bytes
    concurrency = usable_pool / per_max_len if per_max_len else 0.0
    if packing := budget_packing(model, budget):  # vLLM's own count: blocks / a request's blocks
        concurrency = budget.num_blocks / packing[0].blocks_per_request(max_len, packing[1])
    paged = rows[-1]
    # the engine runs max_num_seqs requests at most, however many the pool holds
    at = batch if batch is not None else min(paged.concurrency_avg, budget.max_num_seqs)
    if batch is not None:
        bounds.requests(batch, "batch")
    roof = (decode_roofline(model, gpu, budget, fmt, at, workload.avg_tokens, peak_tflops, hbm_gbps)
            if at >= 1 else None)
    defaults = memory_budget(model, gpu, inputs.engine_defaults()) if inputs.overridden else None
    return BatchResult(
        model_origin=model.origin,
        default_engine_kv_pool_bytes=defaults.kv_pool_bytes if defaults else None,
        default_engine_paged=strategy_rows(model, defaults, fmt, workload, max_len)[-1] if defaults else None,
        model=model.name, gpu=gpu.name, in_tokens=workload.in_tokens, out_tokens=workload.out_tokens,
        avg_tokens=workload.avg_tokens, peak_tokens=workload.peak_tokens, max_len=max_len, budget=budget,
        strategies=rows, max_concurrency_at_max_len=concurrency,
        start=startup(model, budget, max_len),
        roofline=roof,
        longest_ctx_tokens=max_context(model, fmt, budget, longest_ctx_requests) if longest_ctx_requests else None,
        longest_ctx_requests=longest_ctx_requests,
    )


OVERVIEW_TP = (1, 2, 4, 8)


def overview(models, gpu: GpuSpec, workload: Workload, inputs: BudgetInputs = BudgetInputs()):
    """Every model at the smallest TP (1, 2, 4, 8) where one request at peak fits."""
    workload.check()
    models = list(models)
    if models:  # bad settings are errors, not "does not fit": try them once at TP 1
        memory_budget(models[0], gpu, replace(inputs, tp=1))
    rows = []
    for model in models:
        row = OverviewRow(model=model.name, params_total=model.params_total, tp=None, weights_bytes_per_gpu=None,
                          kv_pool_bytes_per_gpu=None, concurrency_avg=0, concurrency_peak=0,
                          note=f"> {OVERVIEW_TP[-1]} GPUs")
        for tp in OVERVIEW_TP:
            try:
                budget = memory_budget(model, gpu, replace(inputs, tp=tp))
            except KvplanError:
                continue
            fmt = resolve_kv_format(model, budget.kv_dtype)
            paged = strategy_rows(model, budget, fmt, workload, workload.max_len or model.max_context)[-1]
            if paged.concurrency_peak >= 1:
                row = OverviewRow(model=model.name, params_total=model.params_total, tp=tp,
                                  weights_bytes_per_gpu=budget.weights_bytes, kv_pool_bytes_per_gpu=budget.kv_pool_bytes,
                                  concurrency_avg=paged.concurrency_avg, concurrency_peak=paged.concurrency_peak,
                                  note="" if workload.peak_tokens <= model.max_context else
                                  f"beyond max context {model.max_context:,}")
                break
        rows.append(row)
    return tuple(rows)


def overview_result(models, gpu: GpuSpec, workload: Workload, inputs: BudgetInputs = BudgetInputs()) -> Overview:
    """The overview's rows with the settings they were computed under, for the table's header."""
    return Overview(gpu=gpu.name, engine=inputs.engine, kv_dtype=inputs.kv_dtype, in_tokens=workload.in_tokens,
                    out_tokens=workload.out_tokens, rows=overview(models, gpu, workload, inputs))
