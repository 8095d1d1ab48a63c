"""Fragmentation: continuous batching over a fixed KV budget, simulated with real allocators.

Requests arrive, are admitted first-come first-served when their allocation succeeds (a prefill of
their prompt) and the scheduler's caps allow (max_num_seqs running, max_num_batched_tokens a step:
see simulation.py), grow one token per decode step, and free everything when done. Five strategies:

    fixed     a contiguous slot of max_len tokens, first-fit
    exact     a contiguous slot of exactly in + out tokens (the output length known in advance),
              best-fit: the tightest hole, the best a contiguous scheme can do with varied sizes
    doubling  contiguous, starting at one block and doubling when full (allocate, copy, free),
              best-fit
    paged     block_size-token blocks from a free list
    shared    paged, with the full blocks of a shared prompt prefix held once, by reference count;
              each request copies the prefix's partial last block on its first write (copy-on-write)

When a growing request finds no memory, a request is preempted: its memory is freed and it goes
back to the head of the queue to be prefilled again (vLLM's recompute policy). Paged strategies
preempt the most recently admitted request, as vLLM does; doubling preempts the grower itself,
since freeing a small young request rarely opens a hole twice the grower's size. After a
preemption, no request is admitted again until one finishes, and admissions leave a
watermark of 1% of the budget free (vLLM's default) so that running requests can grow. A request
larger than the whole budget is rejected, and counted.

The simulation is event-driven: between two events (an arrival, an admission, a finish, a growth)
every running request gains one token per step, so the memory terms are integrated exactly, as
sums of linear functions, without stepping through every token.

Waste, in the vLLM paper's categories: *reservation* = slots reserved for tokens this request will
still generate (fixed, exact), *internal* = allocated slots that will never hold a token (the tail
of a slot past the final length, or of a doubled buffer or a block), *external* = free memory
outside the largest hole (contiguous strategies only: any free block serves a paged request).

Modules: ``allocators`` (address spaces: contiguous holes, a block pool), ``strategies`` (each
allocation policy over them), ``simulation`` (the event loop), ``counted`` (paging counted in
closed form, the same figures without an event per block), ``waste`` (the integrals and their
split into the paper's categories).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.frag.counted import simulate
from kvplan.calc.frag.simulation import Caps
from kvplan.calc.frag.strategies import STRATEGIES, make_strategy
from kvplan.calc.frag.waste import summarize
from kvplan.calc.kv import request_bytes, resolve_kv_format
from kvplan import bounds
from kvplan.errors import InputError
from kvplan.specs.engines import DEFAULT_ENGINE
from kvplan.units import GIB
from kvplan.results.frag import BlockSweepRow, CapSource, FragResult
from kvplan.specs.workloads import Request

__all__ = ["STRATEGIES", "Caps", "FragBudget", "fragmentation", "kv_budget", "make_strategy", "simulate",
           "summarize", "with_prefix"]

SWEEP_BLOCKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# where each admission cap came from
GIVEN: CapSource = "given"
ENGINE_DEFAULT: CapSource = "engine default"
NO_CAP: CapSource = "none"


class FragBudget(NamedTuple):
    """What a run is simulated over: the KV budget, and the scheduler's caps with where each came from."""

    budget_bytes: int
    bytes_per_token: int
    caps: Caps = Caps()
    seqs_source: CapSource = NO_CAP
    tokens_source: CapSource = NO_CAP


def kv_budget(model, gpu, kv_gib: float | None, kv_dtype: str = "auto",
              inputs: BudgetInputs | None = None) -> FragBudget:
    """The KV budget of one GPU (kv_gib, or the engine's pool on one GPU of a TP x PP replica; inputs:
    engine, tp, pp, max_num_seqs, max_num_batched_tokens, util; the default engine by default), KV
    bytes per token, and the admission caps: those given, else the engine's defaults for the GPU
    (a kv_gib budget has no GPU, so no default: only the caps given)."""
    inputs = inputs or BudgetInputs(kv_dtype=kv_dtype)
    if (gpu is None) == (kv_gib is None):
        raise InputError("give the KV budget as {gpu} G (the engine's pool on it) or {kv_gib} X, one of them",
                         "gpu", "kv_gib")
    if kv_gib is not None and kv_gib < 0:
        raise InputError(f"{{kv_gib}} {kv_gib} is negative; give the KV budget in GiB, e.g. {{kv_gib}} 20", "kv_gib")
    fmt = resolve_kv_format(model, inputs.kv_dtype)
    seqs, tokens = inputs.max_num_seqs, inputs.max_num_batched_tokens
    if kv_gib is not None:
        return FragBudget(round(kv_gib * GIB), request_bytes(model, 1, fmt, inputs.tp, inputs.pp), Caps(seqs, tokens),
                          GIVEN if seqs else NO_CAP, GIVEN if tokens else NO_CAP)
    budget = memory_budget(model, gpu, inputs)
    if not budget.weights_fit or budget.kv_pool_bytes <= 0:
        raise InputError(f"{model.name} leaves no KV pool on {gpu.name} at TP {inputs.tp} x PP {inputs.pp} "
                         f"({budget.engine}: weights {budget.weights_bytes / GIB:,.1f} GiB a GPU); "
                         "raise {tp} or {pp}, or give {kv_gib}", "tp", "pp", "kv_gib")
    served = resolve_kv_format(model, budget.kv_dtype)  # auto: the dtype the engine serves
    return FragBudget(budget.kv_pool_bytes, request_bytes(model, 1, served, inputs.tp, inputs.pp),
                      Caps(budget.max_num_seqs, budget.max_num_batched_tokens),
                      GIVEN if seqs else ENGINE_DEFAULT, GIVEN if tokens else ENGINE_DEFAULT)


# The setting of the vLLM paper's Figure 2 (Kwon et al., SOSP 2023, section 6.2): OPT-13B on one
# A100-40GB, ShareGPT-like chat requests, 2,048-token max length, blocks of 16, no shared prefix.
PAPER_SETTING = {"model": "opt-13b", "gpu": "a100-40gb-sxm", "workload": "chat", "max_len": 2048, "block": 16}


def is_paper_setting(model, gpu, workload: str, max_len: int, block: int, prefix: int, tp: int = 1) -> bool:
    return (model.name, gpu.name if gpu else None, workload, max_len, block, prefix, tp) == (
        *PAPER_SETTING.values(), 0, 1)


def with_prefix(requests: list[Request], prefix: int, max_len: int) -> list[Request]:
    """Every request's prompt starts with the same `prefix` tokens (a system prompt)."""
    return [Request(min(r.inp + prefix, max_len), max(0, min(r.out, max_len - r.inp - prefix)), r.arrival)
            for r in requests] if prefix else requests


def fragmentation(model, gpu, requests: list[Request], *, workload: str, seed: int, budget_bytes: int,
                  bytes_per_token: int, block: int = 16, max_len: int = 2048, prefix: int = 0,
                  strategies: tuple[str, ...] = STRATEGIES, sweep: bool = False,
                  step: Callable[[str], None] = lambda _label: None, tp: int = 1, pp: int = 1,
                  engine: str = DEFAULT_ENGINE, tick: Callable[[int], None] | None = None,
                  caps: Caps = Caps(), cap_sources: tuple[CapSource, CapSource] = (NO_CAP, NO_CAP)):
    """Simulate each strategy over the same requests and budget, admitted under the scheduler's caps
    (cap_sources: where max_num_seqs and max_num_batched_tokens came from); optionally sweep paged
    block sizes."""
    _check_caps(caps)
    if block < 1 or max_len < 1 or prefix < 0:
        raise InputError("{block_size} and {max_len} must be at least 1, {shared_prefix} not negative",
                         "block_size", "max_len", "shared_prefix")
    if prefix >= max_len:
        raise InputError(f"{{shared_prefix}} {prefix:,} leaves no room in {{max_len}} {max_len:,}; give a prefix "
                         "shorter than the max length", "shared_prefix", "max_len")
    capacity = budget_bytes // bytes_per_token
    if capacity < 1:
        raise InputError("the KV budget holds no token; raise {kv_gib} or pick a larger GPU", "kv_gib")
    requests = with_prefix(requests, prefix, max_len)
    rows = []
    for name in strategies:
        step(name)
        stats = simulate(make_strategy(name, capacity, max_len, block, prefix), requests, tick=tick, caps=caps)
        rows.append(summarize(name, stats, requests, block, max_len, bytes_per_token))
    sweep_rows = []
    for size in SWEEP_BLOCKS if sweep else ():
        step(f"paged, block {size}")
        stats = simulate(make_strategy("paged", capacity, max_len, size), requests, tick=tick, caps=caps)
        row = summarize("paged", stats, requests, size, max_len, bytes_per_token)
        sweep_rows.append(BlockSweepRow(block_size=size, internal_share=row.internal_share,
                                        internal_tokens_per_request=row.simulated_value,
                                        expected_tokens_per_request=(size - 1) / 2,
                                        mean_concurrency=row.mean_concurrency))
    n = len(requests)
    return FragResult(
        model_origin=model.origin,
        model=model.name, gpu=gpu.name if gpu else None, workload=workload, requests=n, seed=seed,
        kv_bytes_per_token=bytes_per_token, budget_tokens=capacity, budget_bytes=capacity * bytes_per_token,
        block_size=block, max_len=max_len, shared_prefix=prefix, mean_input=sum(r.inp for r in requests) / n,
        mean_output=sum(r.out for r in requests) / n, rows=tuple(rows), sweep=tuple(sweep_rows), tp=tp, pp=pp,
        engine=engine, paper_setting=is_paper_setting(model, gpu, workload, max_len, block, prefix, tp * pp),
        max_num_seqs=caps.max_num_seqs, max_num_seqs_source=cap_sources[0],
        max_num_batched_tokens=caps.max_num_batched_tokens, max_num_batched_tokens_source=cap_sources[1])


def _check_caps(caps: Caps) -> None:
    """The readers' ranges, for callers that did not come through a reader."""
    if caps.max_num_seqs is not None:
        bounds.requests(caps.max_num_seqs, "max_num_seqs")
    if caps.max_num_batched_tokens is not None:
        bounds.tokens(caps.max_num_batched_tokens, "max_num_batched_tokens")
