"""Real allocators over a KV address space counted in tokens (bytes = tokens x KV bytes per token).

ContiguousSpace: first-fit or best-fit over [0, size); free holes are kept sorted by address and
by size, coalesced on free; the largest (for the external-fragmentation metric) is the last by size.
BlockPool: fixed-size blocks from a free list, with reference counts for shared blocks.
"""

from __future__ import annotations

import bisect


class ContiguousSpace:
    """Holes as two parallel lists sorted by address (starts, lens: a plain list scans and shifts
    fastest) and one list sorted by (length, start): best-fit's search, and the largest hole as its
    last entry. Every operation is a bisection and a few list edits; no heap, no cache to keep."""

    def __init__(self, size: int, best_fit: bool = False):
        self.size, self.best_fit = size, best_fit
        self.starts: list[int] = [0] if size else []
        self.lens: list[int] = [size] if size else []
        self.by_size: list[tuple[int, int]] = [(size, 0)] if size else []  # (length, start)
        self.free_total = size

    def alloc(self, n: int) -> int | None:
        """First-fit: the lowest-addressed hole of at least n tokens; best-fit: the smallest such
        hole (lowest address among equals); None when no hole is large enough."""
        by_size = self.by_size
        if not by_size or by_size[-1][0] < n:  # fail fast: under memory pressure most attempts fail
            return None
        starts, lens = self.starts, self.lens
        if self.best_fit:
            j = bisect.bisect_left(by_size, (n, -1))
            length, start = by_size[j]
            i = bisect.bisect_left(starts, start)
        else:
            i = next(i for i, length in enumerate(lens) if length >= n)
            start, length = starts[i], lens[i]
            j = bisect.bisect_left(by_size, (length, start))
        del by_size[j]
        if length > n:  # the hole shrinks from its start and keeps its place by address
            starts[i], lens[i] = start + n, length - n
            bisect.insort(by_size, (length - n, start + n))
        else:
            del starts[i], lens[i]
        self.free_total -= n
        return start

    def free(self, start: int, n: int) -> None:
        """Return [start, start + n) and coalesce it with the holes on either side."""
        self.free_total += n
        starts, lens, by_size = self.starts, self.lens, self.by_size
        i = bisect.bisect_left(starts, start)
        end = start + n
        after = i < len(starts) and starts[i] == end
        if after:
            del by_size[bisect.bisect_left(by_size, (lens[i], end))]
        if i > 0 and starts[i - 1] + lens[i - 1] == start:  # grow the hole before over it (and the one after)
            i -= 1
            del by_size[bisect.bisect_left(by_size, (lens[i], starts[i]))]
            lens[i] += n + (lens[i + 1] if after else 0)
            if after:
                del starts[i + 1], lens[i + 1]
        elif after:  # the hole after starts earlier
            starts[i], lens[i] = start, lens[i] + n
        else:
            starts.insert(i, start)
            lens.insert(i, n)
        bisect.insort(by_size, (lens[i], starts[i]))

    def largest(self) -> int:
        return self.by_size[-1][0] if self.by_size else 0

    def holes(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.lens))


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

    def take(self) -> int:
        """A block the caller has checked is free (free_count): alloc without the None."""
        block = self.alloc()
        if block is None:
            raise AssertionError("take() on an exhausted pool: check free_count first")
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
