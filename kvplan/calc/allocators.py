"""Real allocators over a KV address space counted in tokens (bytes = tokens x KV bytes per token).

ContiguousSpace: first-fit over [0, size); free holes are kept sorted by address, coalesced on free,
and the largest one is tracked (a heap with lazy deletion) for the external-fragmentation metric.
BlockPool: fixed-size blocks from a free list, with reference counts for shared blocks.
"""

from __future__ import annotations

import bisect
import heapq


class ContiguousSpace:
    def __init__(self, size: int):
        self.size = size
        self.starts: list[int] = [0] if size else []
        self.lengths: dict[int, int] = {0: size} if size else {}
        self.free_total = size
        self._largest: list[tuple[int, int]] = [(-size, 0)] if size else []

    def _add_hole(self, start: int, length: int) -> None:
        bisect.insort(self.starts, start)
        self.lengths[start] = length
        heapq.heappush(self._largest, (-length, start))

    def alloc(self, n: int) -> int | None:
        """The lowest-addressed hole of at least n tokens, or None."""
        if self.largest() < n:  # fail fast: under memory pressure most attempts fail
            return None
        for i, start in enumerate(self.starts):
            length = self.lengths[start]
            if length >= n:
                del self.starts[i]
                del self.lengths[start]
                if length > n:
                    self._add_hole(start + n, length - n)
                self.free_total -= n
                return start
        return None

    def free(self, start: int, n: int) -> None:
        """Return [start, start + n) and coalesce it with the holes on either side."""
        self.free_total += n
        i = bisect.bisect_left(self.starts, start)
        if i < len(self.starts) and self.starts[i] == start + n:  # merge with the hole after
            n += self.lengths.pop(self.starts.pop(i))
        if i > 0 and self.starts[i - 1] + self.lengths[self.starts[i - 1]] == start:  # and the one before
            before = self.starts.pop(i - 1)
            start, n = before, n + self.lengths.pop(before)
        self._add_hole(start, n)

    def largest(self) -> int:
        while self._largest:
            length, start = self._largest[0]
            if self.lengths.get(start) == -length:
                return -length
            heapq.heappop(self._largest)
        return 0

    def holes(self) -> list[tuple[int, int]]:
        return [(s, self.lengths[s]) for s in self.starts]


class BlockPool:
    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))  # a stack: the lowest ids come out first
        self.refs = [0] * num_blocks

    @property
    def free_count(self) -> int:
        return len(self._free)

    @property
    def used(self) -> int:
        return self.num_blocks - len(self._free)

    def alloc(self) -> int | None:
        if not self._free:
            return None
        block = self._free.pop()
        self.refs[block] = 1
        return block

    def share(self, block: int) -> None:
        self.refs[block] += 1

    def free(self, block: int) -> None:
        refs = self.refs[block] - 1
        self.refs[block] = refs
        if not refs:
            self._free.append(block)

    def in_use(self) -> set[int]:
        return {b for b, n in enumerate(self.refs) if n}
