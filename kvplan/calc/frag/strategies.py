"""Allocation strategies over a KV address space counted in tokens: each policy's bookkeeping for
admitting a request, growing it by a token, and releasing it (see the package doc for the rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kvplan.calc.capacity import doubling_capacity
from kvplan.calc.frag.allocators import BlockPool, ContiguousSpace
from kvplan.errors import InputError

if TYPE_CHECKING:
    from kvplan.calc.frag.waste import Stats

STRATEGIES = ("fixed", "exact", "doubling", "paged", "shared")


@dataclass
class Running:
    rid: int
    inp: int  # tokens at admission
    out: int  # tokens still to generate at admission
    arrival: int
    start_step: int
    cap: int = 0  # contiguous strategies: tokens allocated
    start: int = -1  # contiguous strategies: where its slot begins (-1: none)
    blocks: list[int] = field(default_factory=list)
    version: int = 0

    @property
    def final(self) -> int:
        return self.inp + self.out

    def tokens(self, step: int) -> int:
        return self.inp + step - self.start_step


class Strategy:
    """An allocation policy over an address space of `capacity` tokens."""

    name = ""
    splits_by_final = False  # reservation vs internal split by the final length (fixed, exact)
    preempt_self = False  # on a failed growth, preempt the grower rather than the youngest request

    def admit(self, r: Running) -> bool:
        raise NotImplementedError

    def growth_step(self, r: Running) -> int | None:
        return None

    def grow(self, r: Running, stats: Stats) -> bool:
        return True

    def release(self, r: Running) -> None:
        raise NotImplementedError

    def allocated(self) -> int:
        raise NotImplementedError

    def external(self) -> int:
        return 0

    def saved(self) -> int:
        return 0

    def idle(self) -> bool:
        """Everything returned: what a run must end with."""
        raise NotImplementedError

    def free_tokens(self) -> int:
        raise NotImplementedError

    def fits_ever(self, r: Running) -> bool:
        """Whether the request could run to its end with the whole budget to itself."""
        raise NotImplementedError


class Contiguous(Strategy):
    best_fit = False

    def __init__(self, capacity: int, max_len: int, block: int):
        self.space, self.max_len, self.block = ContiguousSpace(capacity, self.best_fit), max_len, block

    def want(self, r: Running) -> int:
        raise NotImplementedError

    def admit(self, r: Running) -> bool:
        want = self.want(r)
        start = self.space.alloc(want)
        if start is None:
            return False
        r.start, r.cap = start, want
        return True

    def release(self, r: Running) -> None:
        self.space.free(r.start, r.cap)

    def allocated(self) -> int:
        return self.space.size - self.space.free_total

    def external(self) -> int:
        return self.space.free_total - self.space.largest()

    def idle(self) -> bool:
        return self.space.free_total == self.space.size and self.space.largest() == self.space.size

    def free_tokens(self) -> int:
        return self.space.free_total

    def fits_ever(self, r: Running) -> bool:
        return self.want(r) <= self.space.size


class Fixed(Contiguous):
    name = "fixed"
    splits_by_final = True

    def want(self, r: Running) -> int:
        return self.max_len


class Exact(Contiguous):
    name = "exact"
    splits_by_final = True
    best_fit = True  # the best a contiguous scheme can do: sizes vary, so the tightest hole

    def want(self, r: Running) -> int:
        return r.final


class Doubling(Contiguous):
    name = "doubling"
    best_fit = True
    preempt_self = True  # freeing a small young request rarely opens a hole twice the grower's size

    def want(self, r: Running) -> int:
        return doubling_capacity(r.inp, self.block)

    def fits_ever(self, r: Running) -> bool:
        last = doubling_capacity(r.final, self.block)  # the last copy needs the old and new buffers at once
        return (last if last == self.want(r) else last + last // 2) <= self.space.size

    def growth_step(self, r: Running) -> int | None:
        return r.start_step + r.cap + 1 - r.inp if r.final > r.cap else None

    def grow(self, r: Running, stats: Stats) -> bool:
        new = self.space.alloc(2 * r.cap)  # allocate, copy, free: both buffers live for a moment
        if new is None:
            return False
        stats.copied_tokens += r.cap
        self.space.free(r.start, r.cap)
        r.start, r.cap = new, 2 * r.cap
        return True


class Paged(Strategy):
    name = "paged"

    def __init__(self, capacity: int, max_len: int, block: int):
        self.pool, self.block = BlockPool(capacity // block), block

    def _take(self, r: Running, n: int) -> bool:
        if self.pool.free_count < n:
            return False
        r.blocks.extend(self.pool.take() for _ in range(n))
        return True

    def admit(self, r: Running) -> bool:
        return self._take(r, -(-r.inp // self.block))

    def growth_step(self, r: Running) -> int | None:
        held = len(r.blocks) * self.block
        return r.start_step + held + 1 - r.inp if r.final > held else None

    def grow(self, r: Running, stats: Stats) -> bool:  # the hot path: one block, no generator
        block = self.pool.alloc()
        if block is None:
            return False
        r.blocks.append(block)
        return True

    def release(self, r: Running) -> None:
        free = self.pool.free
        for block in r.blocks:
            free(block)
        r.blocks.clear()

    def allocated(self) -> int:
        return self.pool.used * self.block

    def idle(self) -> bool:
        return self.pool.free_count == self.pool.num_blocks

    def free_tokens(self) -> int:
        return self.pool.free_count * self.block

    def fits_ever(self, r: Running) -> bool:
        return -(-r.final // self.block) <= self.pool.num_blocks


class Shared(Paged):
    """Paged, with a prompt prefix of `prefix` tokens common to every request."""

    name = "shared"

    def __init__(self, capacity: int, max_len: int, block: int, prefix: int):
        super().__init__(capacity, max_len, block)
        self.full = prefix // block  # full blocks of the prefix: shared
        self.partial = prefix % block  # tokens of its last, partial block: copied on write
        self.prefix_blocks: list[int] = []
        self.sharers = 0

    def admit(self, r: Running) -> bool:
        if r.inp < self.full * self.block:
            return super().admit(r)  # too short to hold the prefix: nothing shared
        fresh = 0 if self.sharers else self.full
        own = -(-r.inp // self.block) - self.full
        if self.pool.free_count < fresh + own:
            return False
        if fresh:
            self.prefix_blocks = [self.pool.take() for _ in range(fresh)]
        else:
            for block in self.prefix_blocks:
                self.pool.share(block)
        self.sharers += 1
        r.blocks.extend(self.prefix_blocks)
        return self._take(r, own)

    def release(self, r: Running) -> None:
        if r.blocks[: self.full] == self.prefix_blocks and self.full and self.sharers:
            self.sharers -= 1
        super().release(r)
        if not self.sharers:
            self.prefix_blocks = []

    def saved(self) -> int:
        return max(self.sharers - 1, 0) * self.full * self.block


def make_strategy(name: str, capacity: int, max_len: int, block: int, prefix: int = 0) -> Strategy:
    classes = {"fixed": Fixed, "exact": Exact, "doubling": Doubling, "paged": Paged}
    if name == "shared":
        return Shared(capacity, max_len, block, prefix)
    if name not in classes:
        raise InputError(f"unknown strategy '{name}'; choose from {', '.join(STRATEGIES)}")
    return classes[name](capacity, max_len, block)
