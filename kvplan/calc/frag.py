"""Fragmentation: continuous batching over a fixed KV budget, simulated with real allocators.

Requests arrive, are admitted first-come first-served when their allocation succeeds (a prefill of
their prompt), grow one token per decode step, and free everything when done. Five strategies:

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
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from kvplan.calc.allocators import BlockPool, ContiguousSpace
from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.capacity import doubling_capacity
from kvplan.calc.kv import request_bytes, resolve_kv_format
from kvplan.errors import InputError
from kvplan.results_frag import BlockSweepRow, FragResult, FragRow
from kvplan.workloads import Request

STRATEGIES = ("fixed", "exact", "doubling", "paged", "shared")
FINISH, GROW = 0, 1


@dataclass
class Running:
    rid: int
    inp: int  # tokens at admission
    out: int  # tokens still to generate at admission
    arrival: int
    start_step: int
    cap: int = 0  # contiguous strategies: tokens allocated
    start: int | None = None
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
    name, splits_by_final = "fixed", True

    def want(self, r: Running) -> int:
        return self.max_len


class Exact(Contiguous):
    name, splits_by_final = "exact", True
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
        r.blocks.extend(self.pool.alloc() for _ in range(n))
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
            self.prefix_blocks = [self.pool.alloc() for _ in range(fresh)]
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


@dataclass
class Stats:
    """Integrals over steps (token-steps) and peaks, filled by simulate()."""

    steps: int = 0
    live: float = 0.0  # token-steps holding a token (per request; shared prefixes counted once below)
    smf: float = 0.0  # token-steps of min(capacity, final length): live + reservation (fixed, exact)
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


class Simulation:
    def __init__(self, strategy: Strategy, requests: list[Request], check: bool = False):
        self.s, self.check = strategy, check
        self.arrivals = deque(sorted(enumerate(requests), key=lambda item: item[1].arrival))
        self.waiting: deque[Running] = deque()
        self.running: dict[int, Running] = {}
        self.buckets: dict[int, list[tuple[int, int, int, int]]] = {}  # step -> (kind, start_step, rid, version)
        self.steps: list[int] = []  # a heap of the steps that have a bucket
        self.stats = Stats()
        self.a_sum = 0  # sum over running of (inp - start_step): live tokens = a_sum + R x step
        self.smf = 0  # sum over running of min(cap, final)
        self.pressure = False  # a preemption happened: admit nothing until a request finishes
        self.watermark = 0 if strategy.splits_by_final else strategy.free_tokens() // 100

    # --- events -------------------------------------------------------------------------------
    def _at(self, step: int, event: tuple[int, int, int, int]) -> None:
        bucket = self.buckets.get(step)
        if bucket is None:
            self.buckets[step] = [event]
            heapq.heappush(self.steps, step)
        else:
            bucket.append(event)

    def _schedule(self, r: Running) -> None:
        finish = r.start_step + r.out
        self._at(finish, (FINISH, r.start_step, r.rid, r.version))
        grow = self.s.growth_step(r)
        if grow is not None and grow <= finish:
            self._at(grow, (GROW, r.start_step, r.rid, r.version))

    def _start(self, r: Running, step: int) -> None:
        r.start_step = step
        r.version += 1
        self.running[r.rid] = r
        self.a_sum += r.inp - step
        self.smf += min(r.cap, r.final) if self.s.splits_by_final else 0
        wait = step - r.arrival
        self.stats.wait_steps += wait
        self.stats.max_wait_steps = max(self.stats.max_wait_steps, wait)
        if isinstance(self.s, Shared) and self.s.partial and r.inp >= self.s.full * self.s.block:
            self.stats.cow_tokens += self.s.partial
        self._schedule(r)

    def _stop(self, r: Running) -> None:
        del self.running[r.rid]
        self.a_sum -= r.inp - r.start_step
        self.smf -= min(r.cap, r.final) if self.s.splits_by_final else 0
        self.s.release(r)
        r.version += 1

    def _preempt(self, step: int, grower: Running) -> Running:
        victim = grower if self.s.preempt_self else max(self.running.values(), key=lambda r: (r.start_step, r.rid))
        held = victim.cap or len(victim.blocks) * getattr(self.s, "block", 1)
        done = min(victim.tokens(step), held)  # tokens it had placed: prefilled again on re-admission
        self._stop(victim)
        final = victim.final
        victim.inp, victim.out = max(done, 1), final - max(done, 1)
        victim.arrival = step
        victim.cap, victim.start = 0, None
        self.waiting.appendleft(victim)
        self.stats.preemptions += 1
        self.pressure = True
        return victim

    def _grow(self, r: Running, step: int) -> None:
        while not self.s.grow(r, self.stats):
            if self._preempt(step, r) is r:
                return
        grow = self.s.growth_step(r)
        if grow is not None and grow <= r.start_step + r.out:
            self._at(grow, (GROW, r.start_step, r.rid, r.version))

    # --- the loop -------------------------------------------------------------------------------
    def _admit(self, step: int) -> None:
        while self.arrivals and self.arrivals[0][1].arrival <= step:
            rid, req = self.arrivals.popleft()
            self.waiting.append(Running(rid, req.inp, req.out, req.arrival, step))
        if not self.running:
            self.pressure = False  # nothing left to wait for
        while self.waiting and not self.pressure:
            r = self.waiting[0]
            r.start_step = step
            if not self.s.fits_ever(r):
                self.waiting.popleft()
                self.stats.rejected += 1
                continue
            if self.running and self.s.free_tokens() - r.inp < self.watermark:
                return  # keep room for the running requests to grow
            if not self.s.admit(r):
                if not self.running:  # nothing will ever free memory for it
                    self.waiting.popleft()
                    self.stats.rejected += 1
                    continue
                return
            self.waiting.popleft()
            self._start(r, step)

    def _integrate(self, a: int, b: int) -> None:
        n, stats, running = b - a, self.stats, len(self.running)
        live = self.a_sum * n + running * (a + b - 1) * n / 2
        stats.live += live
        stats.smf += self.smf * n if self.s.splits_by_final else live
        stats.allocated += self.s.allocated() * n
        stats.external += self.s.external() * n
        stats.saved += self.s.saved() * n
        stats.running += running * n
        stats.waiting += len(self.waiting) * n
        stats.steps = b

    def _observe(self, step: int) -> None:
        stats = self.stats
        stats.peak_running = max(stats.peak_running, len(self.running))
        allocated, external = self.s.allocated(), self.s.external()
        stats.peak_allocated = max(stats.peak_allocated, allocated)
        if allocated + external > stats.peak_footprint:
            live = self.a_sum + len(self.running) * step
            held = self.smf if self.s.splits_by_final else live
            stats.peak_footprint = allocated + external
            stats.peak_split = (live - self.s.saved(), held - live, allocated - held + self.s.saved(), external)
        stats.peak_waiting = max(stats.peak_waiting, len(self.waiting))
        if self.check:
            self._check(step)

    def run(self) -> Stats:
        step = 0
        self._admit(step)
        self._observe(step)
        while self.steps or self.arrivals or self.waiting:
            upcoming = [self.steps[0]] if self.steps else []
            upcoming += [self.arrivals[0][1].arrival] if self.arrivals else []
            nxt = max(min(upcoming), step) if upcoming else step  # else: admission rejects the rest
            self._integrate(step, nxt)
            step = nxt
            self._process(step)
            self._admit(step)
            self._observe(step)
        if not self.s.idle():
            raise AssertionError("memory left allocated after every request finished")
        return self.stats

    def _process(self, step: int) -> None:
        """This step's events: finishes first, then growth, oldest request first. A growth may
        schedule another growth at this same step (a one-token request crossing a block)."""
        running = self.running
        while self.steps and self.steps[0] == step:
            heapq.heappop(self.steps)
            bucket = self.buckets.pop(step)
            bucket.sort()
            self._run_bucket(step, bucket, running)

    def _run_bucket(self, step: int, bucket, running) -> None:
        for kind, _, rid, version in bucket:
            r = running.get(rid)
            if r is None or r.version != version:
                continue  # preempted or restarted since
            if kind == FINISH:
                self._stop(r)
                self.stats.finished += 1
                self.pressure = False
            else:
                self._grow(r, step)

    # --- invariants (tests) ---------------------------------------------------------------------
    def _check(self, step: int) -> None:
        s = self.s
        if isinstance(s, Contiguous):
            spans = sorted((r.start, r.start + r.cap) for r in self.running.values())
            spans += [(start, start + n) for start, n in s.space.holes()]
            spans.sort()
            assert spans[0][0] == 0 if spans else True
            for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
                assert a1 == b0, f"overlap or gap at {a1}/{b0}"
            assert not spans or spans[-1][1] == s.space.size
            for r in self.running.values():
                assert r.cap >= r.tokens(step), "a request holds more tokens than its slot"
        else:
            owned = [b for r in self.running.values() for b in r.blocks]
            assert set(owned) == s.pool.in_use(), "blocks in use and blocks owned differ"
            assert s.pool.used + s.pool.free_count == s.pool.num_blocks
            for r in self.running.values():
                held = len(r.blocks) * s.block
                assert held >= r.tokens(step) and held - r.tokens(step) < s.block, "paged waste of a block or more"
        assert s.allocated() <= (s.space.size if isinstance(s, Contiguous) else s.pool.num_blocks * s.block)


def simulate(strategy: Strategy, requests: list[Request], check: bool = False) -> Stats:
    return Simulation(strategy, requests, check).run()


# --- summaries ------------------------------------------------------------------------------------

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
    weight = sum(r.out for r in requests) or 1
    mean_held = sum(r.out * (r.inp + r.out / 2) for r in requests) / weight
    if name == "fixed":
        return "utilization = mean tokens held / max_len", mean_held / max_len
    if name == "exact":
        return "utilization = mean tokens held / mean final length", mean_held / (
            sum(r.out * r.final for r in requests) / weight)
    if name == "doubling":
        return "utilization of a doubling buffer ~ 3/4 (fill uniform in (1/2, 1])", 0.75
    return "internal waste per request ~ (block - 1) / 2 tokens", (block - 1) / 2


def summarize(name: str, stats: Stats, requests: list[Request], block: int, max_len: int,
              bytes_per_token: int) -> FragRow:
    live = stats.live - stats.saved
    splits = name in ("fixed", "exact")
    reservation = stats.smf - stats.live if splits else 0.0
    internal = stats.allocated - stats.smf if splits else stats.allocated - live
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


SWEEP_BLOCKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def kv_budget(model, gpu, kv_gib: float | None, kv_dtype: str = "auto") -> tuple[int, int]:
    """(KV budget bytes, KV bytes per token): --kv-gib, or vLLM's default pool for the model on gpu."""
    if (gpu is None) == (kv_gib is None):
        raise InputError("give the KV budget as --gpu G (vLLM's pool on it) or --kv-gib X, one of them")
    budget = (round(kv_gib * 2**30) if kv_gib is not None
              else memory_budget(model, gpu, BudgetInputs(kv_dtype=kv_dtype)).kv_pool_bytes)
    return max(budget, 0), request_bytes(model, 1, resolve_kv_format(model, kv_dtype))


def with_prefix(requests: list[Request], prefix: int, max_len: int) -> list[Request]:
    """Every request's prompt starts with the same `prefix` tokens (a system prompt)."""
    return [Request(min(r.inp + prefix, max_len), max(0, min(r.out, max_len - r.inp - prefix)), r.arrival)
            for r in requests] if prefix else requests


def fragmentation(model, gpu, requests: list[Request], *, workload: str, seed: int, budget_bytes: int,
                  bytes_per_token: int, block: int = 16, max_len: int = 2048, prefix: int = 0,
                  strategies: tuple[str, ...] = STRATEGIES, sweep: bool = False,
                  step: Callable[[str], None] = lambda _label: None):
    """Simulate each strategy over the same requests and budget; optionally sweep paged block sizes."""
    if block < 1 or max_len < 1 or prefix < 0:
        raise InputError("--block-size and --max-len must be at least 1, --shared-prefix not negative")
    capacity = budget_bytes // bytes_per_token
    if capacity < 1:
        raise InputError("the KV budget holds no token; raise --kv-gib or pick a larger GPU")
    requests = with_prefix(requests, prefix, max_len)
    rows = []
    for name in strategies:
        step(name)
        stats = simulate(make_strategy(name, capacity, max_len, block, prefix), requests)
        rows.append(summarize(name, stats, requests, block, max_len, bytes_per_token))
    sweep_rows = []
    for size in SWEEP_BLOCKS if sweep else ():
        step(f"paged, block {size}")
        stats = simulate(make_strategy("paged", capacity, max_len, size), requests)
        row = summarize("paged", stats, requests, size, max_len, bytes_per_token)
        sweep_rows.append(BlockSweepRow(block_size=size, internal_share=row.internal_share,
                                        internal_tokens_per_request=row.simulated_value,
                                        expected_tokens_per_request=(size - 1) / 2,
                                        mean_concurrency=row.mean_concurrency))
    n = len(requests)
    return FragResult(
        model=model.name, gpu=gpu.name if gpu else "--kv-gib", workload=workload, requests=n, seed=seed,
        kv_bytes_per_token=bytes_per_token, budget_tokens=capacity, budget_bytes=capacity * bytes_per_token,
        block_size=block, max_len=max_len, shared_prefix=prefix, mean_input=sum(r.inp for r in requests) / n,
        mean_output=sum(r.out for r in requests) / n, rows=tuple(rows), sweep=tuple(sweep_rows))
