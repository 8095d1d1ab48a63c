"""Real allocators over a KV address space counted in tokens (bytes = tokens x KV bytes per token).

ContiguousSpace: first-fit or best-fit over [0, size); free holes are kept sorted by address (and,
for best-fit, by size), coalesced on free, and the largest one is tracked (a heap with lazy
deletion) for the external-fragmentation metric.
BlockPool: fixed-size blocks from a free list, with reference counts for shared blocks.
"""

from __future__ import annotations

import bisect
import heapq


class ContiguousSpace:
    def __init__(self, size: int, best_fit: bool = False):
        self.size, self.best_fit = size, best_fit
        self.by_size: list[tuple[int, int]] = [(size, 0)] if size else []  # (length, start), best-fit
        self.starts: list[int] = [0] if size else []
        self.lens: list[int] = [size] if size else []  # parallel to starts: a plain list scans fastest
        self.lengths: dict[int, int] = {0: size} if size else {}
        self.free_total = size
        self._largest: list[tuple[int, int]] = [(-size, 0)] if size else []
        self._big: int | None = size  # largest(), until a hole is added or removed

    def _add_hole(self, start: int, length: int, i: int | None = None) -> None:
        i = bisect.bisect_left(self.starts, start) if i is None else i
        self.starts.insert(i, start)
        self.lens.insert(i, length)
        self.lengths[start] = length
        self._big = None
        heapq.heappush(self._largest, (-length, start))
        if self.best_fit:
            bisect.insort(self.by_size, (length, start))

    def _remove_hole(self, i: int) -> int:
        start = self.starts.pop(i)
        del self.lens[i]
        length = self.lengths.pop(start)
        self._big = None
        if self.best_fit:
            del self.by_size[bisect.bisect_left(self.by_size, (length, start))]
        return length

    def alloc(self, n: int) -> int | None:
        """First-fit: the lowest-addressed hole of at least n tokens; best-fit: the smallest such
        hole (lowest address among equals); None when no hole is large enough."""
        if self.largest() < n:  # fail fast: under memory pressure most attempts fail
            return None
        if self.best_fit:
            length, start = self.by_size[bisect.bisect_left(self.by_size, (n, -1))]
            i = bisect.bisect_left(self.starts, start)
            self._remove_hole(i)
            if length > n:
                self._add_hole(start + n, length - n, i)
            self.free_total -= n
            return start
        for i, length in enumerate(self.lens):
            if length >= n:
                start = self.starts[i]
                self._remove_hole(i)
                if length > n:
                    self._add_hole(start + n, length - n, i)
                self.free_total -= n
                return start
        return None

    def free(self, start: int, n: int) -> None:
        """Return [start, start + n) and coalesce it with the holes on either side."""
        self.free_total += n
        i = bisect.bisect_left(self.starts, start)
        if i < len(self.starts) and self.starts[i] == start + n:  # merge with the hole after
            n += self._remove_hole(i)
        if i > 0 and self.starts[i - 1] + self.lens[i - 1] == start:  # and the one before
            i -= 1
            start = self.starts[i]
            n += self._remove_hole(i)
        self._add_hole(start, n, i)

    def largest(self) -> int:
        if self._big is not None:
            return self._big
        while self._largest:
            length, start = self._largest[0]
            if self.lengths.get(start) == -length:
                self._big = -length
                return -length
            heapq.heappop(self._largest)
        self._big = 0
        return 0

    def holes(self) -> list[tuple[int, int]]:
        return [(s, self.lengths[s]) for s in self.starts]


class BlockPool:
    """Block ids handed out lowest first, a freed one before any never used; memory grows with the
    blocks in use, not the pool (a 16 TiB pool of a small model is ~10^9 blocks: 8 GB of lists)."""

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self._free: list[int] = []  # freed ids, a stack: the last freed comes out first
        self._fresh = 0  # ids from here up were never used
        self.refs: dict[int, int] = {}  # id -> references, for the ids in use

    @property
    def free_count(self) -> int:
        return len(self._free) + self.num_blocks - self._fresh

    @property
    def used(self) -> int:
        return self.num_blocks - self.free_count

    def alloc(self) -> int | None:
        if self._free:
            block = self._free.pop()
        elif self._fresh < self.num_blocks:
            block, self._fresh = self._fresh, self._fresh + 1
        else:
            return None
        self.refs[block] = 1
        return block

    def share(self, block: int) -> None:
        self.refs[block] += 1

    def free(self, block: int) -> None:
        refs = self.refs[block] - 1
        if refs:
            self.refs[block] = refs
        else:
            del self.refs[block]
            self._free.append(block)

    def in_use(self) -> set[int]:
        return set(self.refs)
