"""The one search kvplan runs wherever it asks "the largest X that still fits": a binary search over
a predicate that holds up to some value and fails beyond it (vLLM's estimate_max_model_len searches
fits_in_memory the same way)."""

from __future__ import annotations

from collections.abc import Callable


def largest_true(holds: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest n in lo..hi for which `holds(n)`, given that it holds up to some n and not after;
    lo - 1 when it does not even hold at lo."""
    if not holds(lo):
        return lo - 1
    if holds(hi):
        return hi
    while hi - lo > 1:  # holds(lo) and not holds(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return lo
