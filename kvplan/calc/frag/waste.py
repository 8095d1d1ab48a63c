"""Waste accounting: the integrals a simulation fills (token-steps live, reserved, allocated,
external) and their split into the vLLM paper's categories, beside each strategy's analytic
expectation."""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.results.frag import FragRow
from kvplan.specs.workloads import Request


@dataclass
class Stats:
    """Integrals over steps (token-steps) and peaks, filled by simulate()."""

    steps: int = 0
    live: float = 0.0  # token-steps holding a token (per request; shared prefixes counted once below)
    reserved_for_final: float = 0.0  # token-steps of min(capacity, final length): live + reservation (fixed, exact)
    allocated: float = 0.0
    external: float = 0.0
    saved: float = 0.0
    running: float = 0.0
    waiting: float = 0.0
    peak_running: int = 0
    peak_allocated: int = 0
    peak_waiting: int = 0
    copied_tokens: int = 0
    cow_tokens: int = 0
    preemptions: int = 0
    rejected: int = 0
    finished: int = 0
    wait_steps: int = 0
    max_wait_steps: int = 0
    peak_footprint: int = 0  # allocated + external at its largest, and its split at that step
    peak_split: tuple[int, int, int, int] = (0, 0, 0, 0)  # live, reservation, internal, external


RULES = {
    "fixed": "contiguous slot of max_len tokens, first-fit",
    "exact": "contiguous slot of in + out tokens, best-fit",
    "doubling": "contiguous, doubles when full (allocate, copy, free), best-fit",
    "paged": "blocks from a free list",
    "shared": "paged; a common prefix's full blocks held once",
}


def _expected(name: str, requests: list[Request], block: int, max_len: int) -> tuple[str, float]:
    """The analytic figure each strategy is known by. A request of in + out tokens holds, averaged
    over its out decode steps, in + out/2 tokens."""
    decoding = sum(r.out for r in requests)
    if decoding:  # weighted by decode steps: a request lives out steps
        mean_held = sum(r.out * (r.inp + r.out / 2) for r in requests) / decoding
        mean_final = sum(r.out * r.final for r in requests) / decoding
    else:  # no request decodes (every output empty): each holds its prompt for its one prefill step
        mean_held = mean_final = sum(r.final for r in requests) / max(len(requests), 1)
    if name == "fixed":
        return "utilization = mean tokens held / max_len", mean_held / max_len
    if name == "exact":
        return "utilization = mean tokens held / mean final length", mean_held / mean_final if mean_final else 0.0
    if name == "doubling":
        return "utilization of a doubling buffer ~ 3/4 (fill uniform in (1/2, 1])", 0.75
    return "internal waste per request ~ (block - 1) / 2 tokens", (block - 1) / 2


def summarize(name: str, stats: Stats, requests: list[Request], block: int, max_len: int,
              bytes_per_token: int) -> FragRow:
    live = stats.live - stats.saved
    splits = name in ("fixed", "exact")
    reservation = stats.reserved_for_final - stats.live if splits else 0.0
    internal = stats.allocated - stats.reserved_for_final if splits else stats.allocated - live
    total = stats.allocated + stats.external or 1.0
    running = stats.running or 1.0
    label, expected = _expected(name, requests, block, max_len)
    simulated = (internal / running) if name in ("paged", "shared") else (live / stats.allocated if stats.allocated else 0.0)
    admitted = stats.finished + stats.preemptions
    peak = stats.peak_footprint or 1
    return FragRow(
        peak_live_share=stats.peak_split[0] / peak, peak_reservation_share=stats.peak_split[1] / peak,
        peak_internal_share=stats.peak_split[2] / peak, peak_external_share=stats.peak_split[3] / peak,
        strategy=name, rule=RULES[name], live_share=live / total, reservation_share=reservation / total,
        internal_share=internal / total, external_share=stats.external / total,
        utilization=live / stats.allocated if stats.allocated else 0.0,
        mean_concurrency=stats.running / max(stats.steps, 1), peak_concurrency=stats.peak_running,
        peak_allocated_bytes=stats.peak_allocated * bytes_per_token,
        mean_wait_steps=stats.wait_steps / max(admitted, 1), max_wait_steps=stats.max_wait_steps,
        peak_queue=stats.peak_waiting, preemptions=stats.preemptions, rejected=stats.rejected,
        finished=stats.finished, copied_bytes=(stats.copied_tokens + stats.cow_tokens) * bytes_per_token,
        saved_bytes_mean=stats.saved / max(stats.steps, 1) * bytes_per_token, steps=stats.steps,
        expected=label, expected_value=expected, simulated_value=simulated,
    )
