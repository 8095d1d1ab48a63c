"""The event loop of the fragmentation simulator: arrivals, admissions (first come, first served,
with vLLM's 1% watermark, under the scheduler's caps), growth, preemption (recompute) and finishes,
integrated exactly between events (see the package doc).

The caps are vLLM V1's (vllm/v1/core/sched/scheduler.py, Scheduler.schedule): no request is admitted
while max_num_seqs run, and each step has max_num_batched_tokens for every running request's decode
token first and then for new prompts, admitted while any budget is left. A prompt longer than what
is left is admitted and its rest carried (chunked prefill) as a backlog that the next steps' budgets
pay before any new prompt; the simulator still places the whole prompt in memory at admission.

Requests that arrived and wait hold no object of their own until they reach the head of the queue
(the queue is the request list and two cursors), so memory grows with the requests running, not
with a million waiting at once."""

from __future__ import annotations

import gc
import heapq
from collections import deque
from dataclasses import dataclass

from kvplan.calc.frag.strategies import Contiguous, Paged, Running, Shared, Strategy
from kvplan.calc.frag.waste import Stats
from kvplan.specs.workloads import Request

FINISH, GROW, WAKE = 0, 1, 2  # WAKE: the first step whose token budget has room again (no request)
NO_CAP = 2**62  # more requests or tokens than any run holds


@dataclass(frozen=True)
class Caps:
    """The scheduler's admission caps: requests running at once, and tokens in one step (decode
    tokens of the running requests, then new prompts). None: no cap."""

    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None


class Simulation:
    def __init__(self, strategy: Strategy, requests: list[Request], check: bool = False, tick=None,
                 caps: Caps = Caps()):
        self.strategy, self.check, self.tick = strategy, check, tick
        ordered = all(requests[i].arrival <= requests[i + 1].arrival for i in range(len(requests) - 1))
        order = None if ordered else sorted(range(len(requests)), key=lambda i: requests[i].arrival)
        self.queue = requests if order is None else [requests[i] for i in order]  # by arrival
        self.rids = order  # a request's id is its index in `requests` (queue[i] is rids[i])
        self.arrived = 0  # queue[:arrived] have arrived by the current step
        self.fresh = 0  # queue[fresh:arrived] wait behind self.waiting, not yet made Running
        self.waiting: deque[Running] = deque()  # the head of the queue: preempted, then the oldest
        self.max_seqs = caps.max_num_seqs or NO_CAP
        self.max_tokens = caps.max_num_batched_tokens or 0  # 0: no token budget
        self.budget_left = NO_CAP  # tokens the current step has left for new prompts
        self.budget_step = -1  # the step budget_left belongs to
        self.backlog = 0  # prompt tokens admitted, not yet prefilled: the next steps' budgets pay them
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
    def queued(self) -> int:
        """Requests waiting: those at the head (preempted, or looked at), and those arrived behind."""
        return len(self.waiting) + self.arrived - self.fresh

    def _head(self) -> Running | None:
        """The request at the head of the queue, made Running when first looked at."""
        if self.waiting:
            return self.waiting[0]
        if self.fresh == self.arrived:
            return None
        i = self.fresh
        req, rid = self.queue[i], i if self.rids is None else self.rids[i]
        self.fresh += 1
        r = Running(rid, req.inp, req.out, req.arrival, req.arrival)
        self.waiting.append(r)
        return r

    def _admit(self, step: int) -> None:
        queue, arrived = self.queue, self.arrived
        while arrived < len(queue) and queue[arrived].arrival <= step:
            arrived += 1
        self.arrived = arrived
        if not self.running:
            self.pressure = False  # nothing left to wait for
        if self.max_tokens:
            self._step_budget(step)
        if self.stuck == self.frees:
            return  # the head did not fit and nothing was freed since: it would fail again
        while not self.pressure:
            if len(self.running) >= self.max_seqs:
                return  # max_num_seqs running: a finish or a preemption makes room
            if self.budget_left <= 0 and self.queued():
                self._wake(step)
                return  # this step's tokens are spent
            r = self._head()
            if r is None:
                return
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
            self.budget_left -= r.inp  # its prefill (uncapped: NO_CAP never runs out)
            if self.budget_left < 0:  # a prompt past the budget: its rest is prefilled in later steps
                self.backlog, self.budget_left = self.backlog - self.budget_left, 0

    # --- the token budget (max_num_batched_tokens) ----------------------------------------------
    def _step_budget(self, step: int) -> None:
        """This step's tokens for new prompts: the budget less a decode token per running request,
        less the backlog of chunked prompts (paid first). Once a step: a step seen again keeps its own."""
        if step == self.budget_step:
            return
        free = self.max_tokens - len(self.running)
        paid = min(self.backlog, free) if free > 0 else 0
        self.backlog -= paid
        self.budget_left, self.budget_step = free - paid, step

    def _carry(self, step: int, nxt: int) -> None:
        """The backlog paid by the steps strictly between two event steps (no request starts or
        stops there, so each pays the budget less the running requests' decode tokens)."""
        free = self.max_tokens - len(self.running)
        if self.backlog and nxt > step + 1 and free > 0:
            self.backlog = max(0, self.backlog - (nxt - step - 1) * free)

    def _wake(self, step: int) -> None:
        """An event at the first later step whose budget has room for a prompt: the backlog paid in
        full steps of `free` tokens, and the step after."""
        free = self.max_tokens - len(self.running)
        if free > 0:
            self._at(step + self.backlog // free + 1, (WAKE, 0, -1, 0))

    def _integrate(self, a: int, b: int) -> None:
        n, stats, running = b - a, self.stats, len(self.running)
        live = self.offset_sum * n + running * ((a + b - 1) * n // 2)  # exact: sum of a..b-1 is whole
        stats.live += live
        stats.reserved_for_final += self.reserved_for_final * n if self.strategy.splits_by_final else live
        allocated, external, saved = self.snap  # nothing has changed since _observe(a)
        stats.allocated += allocated * n
        stats.external += external * n
        stats.saved += saved * n
        stats.running += running * n
        stats.waiting += self.queued() * n
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
        stats.peak_waiting = max(stats.peak_waiting, self.queued())
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
        while self.steps or self.arrived < len(self.queue) or self.queued():
            loops += 1
            if self.tick is not None and not loops & 0x3FFF:  # every 16,384 event steps: cheap
                self.tick(self.stats.finished + self.stats.rejected)
            nxt = self._next(step)
            if self.backlog:
                self._carry(step, nxt)
            self._advance(step, nxt)
            step = nxt
            self._admit(step)
            self._observe(step)
        if not self.strategy.idle():
            raise AssertionError("memory left allocated after every request finished")
        return self.stats

    def _next(self, step: int) -> int:
        """The next step with an event: a scheduled finish, growth or wake, or an arrival."""
        upcoming = [self.steps[0]] if self.steps else []
        upcoming += [self.queue[self.arrived].arrival] if self.arrived < len(self.queue) else []
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
        assert len(self.running) <= self.max_seqs, "more requests running than max_num_seqs"
        assert not self.max_tokens or len(self.running) <= self.max_tokens, "more decodes than the token budget"
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


def simulate(strategy: Strategy, requests: list[Request], check: bool = False, tick=None,
             caps: Caps = Caps()) -> Stats:
    """Run the strategy over the requests, an event per block; tick(finished requests) now and then."""
    return Simulation(strategy, requests, check, tick, caps).run()
