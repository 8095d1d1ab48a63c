"""The event loop of the fragmentation simulator: arrivals, admissions (first come, first served,
with vLLM's 1% watermark), growth, preemption (recompute) and finishes, integrated exactly between
events (see the package doc)."""

from __future__ import annotations

import gc
import heapq
from collections import deque

from kvplan.calc.frag.strategies import Contiguous, Paged, Running, Shared, Strategy
from kvplan.calc.frag.waste import Stats
from kvplan.specs.workloads import Request

FINISH, GROW = 0, 1


class Simulation:
    def __init__(self, strategy: Strategy, requests: list[Request], check: bool = False, tick=None):
        self.strategy, self.check, self.tick = strategy, check, tick
        self.arrivals = deque(sorted(enumerate(requests), key=lambda item: item[1].arrival))
        self.waiting: deque[Running] = deque()
        self.running: dict[int, Running] = {}
        self.buckets: dict[int, list[tuple[int, int, int, int]]] = {}  # step -> (kind, start_step, rid, version)
        self.steps: list[int] = []  # a heap of the steps that have a bucket
        self.stats = Stats()
        self.offset_sum = 0  # sum over running of (inp - start_step): live tokens = offset_sum + R x step
        self.reserved_for_final = 0  # sum over running of min(cap, final)
        self.pressure = False  # a preemption happened: admit nothing until a request finishes
        self.watermark = 0 if strategy.splits_by_final else strategy.free_tokens() // 100
        self.frees = 0  # releases so far: memory only comes back in _stop (and a doubling's copy)
        self.stuck = -1  # self.frees when the head of the queue last failed to fit
        self.snap = (0, 0, 0)  # allocated, external, saved: as _observe left them for _integrate

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
        grow = self.strategy.growth_step(r)
        if grow is not None and grow <= finish:
            self._at(grow, (GROW, r.start_step, r.rid, r.version))

    def _start(self, r: Running, step: int) -> None:
        r.start_step = step
        r.version += 1
        self.running[r.rid] = r
        self.offset_sum += r.inp - step
        self.reserved_for_final += min(r.cap, r.final) if self.strategy.splits_by_final else 0
        wait = step - r.arrival
        self.stats.wait_steps += wait
        self.stats.max_wait_steps = max(self.stats.max_wait_steps, wait)
        if isinstance(self.strategy, Shared) and self.strategy.partial and r.inp >= self.strategy.full * self.strategy.block:
            self.stats.cow_tokens += self.strategy.partial
        self._schedule(r)

    def _stop(self, r: Running) -> None:
        del self.running[r.rid]
        self.offset_sum -= r.inp - r.start_step
        self.reserved_for_final -= min(r.cap, r.final) if self.strategy.splits_by_final else 0
        self.strategy.release(r)
        self.frees += 1
        r.version += 1

    def _held(self, r: Running) -> int:
        """Token slots a running request holds now."""
        return r.cap or len(r.blocks) * getattr(self.strategy, "block", 1)

    def _preempt(self, step: int, grower: Running) -> Running:
        victim = grower if self.strategy.preempt_self else max(self.running.values(), key=lambda r: (r.start_step, r.rid))
        done = min(victim.tokens(step), self._held(victim))  # tokens it had placed: prefilled again on re-admission
        self._stop(victim)
        final = victim.final
        victim.inp, victim.out = max(done, 1), final - max(done, 1)
        victim.arrival = step
        victim.cap, victim.start = 0, -1
        self.waiting.appendleft(victim)
        self.stats.preemptions += 1
        self.pressure = True
        return victim

    def _grow(self, r: Running, step: int) -> None:
        self.frees += 1  # a doubling frees its old buffer, which may open a hole
        while not self.strategy.grow(r, self.stats):
            if self._preempt(step, r) is r:
                return
        grow = self.strategy.growth_step(r)
        if grow is not None and grow <= r.start_step + r.out:
            self._at(grow, (GROW, r.start_step, r.rid, r.version))

    # --- the loop -------------------------------------------------------------------------------
    def _admit(self, step: int) -> None:
        while self.arrivals and self.arrivals[0][1].arrival <= step:
            rid, req = self.arrivals.popleft()
            self.waiting.append(Running(rid, req.inp, req.out, req.arrival, step))
        if not self.running:
            self.pressure = False  # nothing left to wait for
        if self.stuck == self.frees:
            return  # the head did not fit and nothing was freed since: it would fail again
        while self.waiting and not self.pressure:
            r = self.waiting[0]
            r.start_step = step
            if not self.strategy.fits_ever(r):
                self.waiting.popleft()
                self.stats.rejected += 1
                continue
            if self.running and self.strategy.free_tokens() - r.inp < self.watermark:
                self.stuck = self.frees
                return  # keep room for the running requests to grow
            if not self.strategy.admit(r):
                if not self.running:  # nothing will ever free memory for it
                    self.waiting.popleft()
                    self.stats.rejected += 1
                    continue
                self.stuck = self.frees
                return
            self.waiting.popleft()
            self._start(r, step)

    def _integrate(self, a: int, b: int) -> None:
        n, stats, running = b - a, self.stats, len(self.running)
        live = self.offset_sum * n + running * (a + b - 1) * n / 2
        stats.live += live
        stats.reserved_for_final += self.reserved_for_final * n if self.strategy.splits_by_final else live
        allocated, external, saved = self.snap  # nothing has changed since _observe(a)
        stats.allocated += allocated * n
        stats.external += external * n
        stats.saved += saved * n
        stats.running += running * n
        stats.waiting += len(self.waiting) * n
        stats.steps = b

    def _observe(self, step: int) -> None:
        stats = self.stats
        stats.peak_running = max(stats.peak_running, len(self.running))
        strategy = self.strategy
        allocated, external, saved = self.snap = strategy.allocated(), strategy.external(), strategy.saved()
        stats.peak_allocated = max(stats.peak_allocated, allocated)
        if allocated + external > stats.peak_footprint:
            live = self.offset_sum + len(self.running) * step
            held = self.reserved_for_final if strategy.splits_by_final else live
            stats.peak_footprint = allocated + external
            stats.peak_split = (live - saved, held - live, allocated - held + saved, external)
        stats.peak_waiting = max(stats.peak_waiting, len(self.waiting))
        if self.check:
            self._check(step)

    def run(self) -> Stats:
        """The run, with the cyclic garbage collector paused: the loop makes no reference cycles, and
        with a million requests alive each of its passes walks them all (a third of the time at 1M)."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._loop()
        finally:
            if enabled:
                gc.enable()

    def _loop(self) -> Stats:
        step = 0
        self._admit(step)
        self._observe(step)
        loops = 0
        while self.steps or self.arrivals or self.waiting:
            loops += 1
            if self.tick is not None and not loops & 0x3FFF:  # every 16,384 event steps: cheap
                self.tick(self.stats.finished + self.stats.rejected)
            nxt = self._next(step)
            self._advance(step, nxt)
            step = nxt
            self._admit(step)
            self._observe(step)
        if not self.strategy.idle():
            raise AssertionError("memory left allocated after every request finished")
        return self.stats

    def _next(self, step: int) -> int:
        """The next step with an event: a scheduled finish or growth, or an arrival."""
        upcoming = [self.steps[0]] if self.steps else []
        upcoming += [self.arrivals[0][1].arrival] if self.arrivals else []
        return max(min(upcoming), step) if upcoming else step  # else: admission rejects the rest

    def _advance(self, step: int, nxt: int) -> None:
        """From one event step to the next: the memory terms integrated, then nxt's events."""
        self._integrate(step, nxt)
        self._process(nxt)

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
        strategy = self.strategy
        if isinstance(strategy, Contiguous):
            spans = sorted((r.start, r.start + r.cap) for r in self.running.values())
            spans += [(start, start + n) for start, n in strategy.space.holes()]
            spans.sort()
            assert spans[0][0] == 0 if spans else True
            for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
                assert a1 == b0, f"overlap or gap at {a1}/{b0}"
            assert not spans or spans[-1][1] == strategy.space.size
            for r in self.running.values():
                assert r.cap >= r.tokens(step), "a request holds more tokens than its slot"
            limit = strategy.space.size
        elif isinstance(strategy, Paged):
            owned = [b for r in self.running.values() for b in r.blocks]
            assert set(owned) == strategy.pool.in_use(), "blocks in use and blocks owned differ"
            assert strategy.pool.used + strategy.pool.free_count == strategy.pool.num_blocks
            for r in self.running.values():
                held = len(r.blocks) * strategy.block
                assert held >= r.tokens(step) and held - r.tokens(step) < strategy.block, "paged waste of a block or more"
            limit = strategy.pool.num_blocks * strategy.block
        else:
            raise AssertionError(f"no invariants written for {type(strategy).__name__}")
        assert strategy.allocated() <= limit


def simulate(strategy: Strategy, requests: list[Request], check: bool = False, tick=None) -> Stats:
    """Run the strategy over the requests, an event per block; tick(finished requests) now and then."""
    return Simulation(strategy, requests, check, tick).run()
