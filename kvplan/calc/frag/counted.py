"""The paged strategy simulated without an event per block: the same run, counted in closed form.

A paged request of t tokens holds ceil(t / B) blocks, and which blocks it holds changes nothing
that the simulation reports. So between two events (an arrival, a finish) the blocks in use at
step s are, over the running requests r with a_r = inp_r - start_r,

    U(s) = sum_r ceil((a_r + s) / B) = (A + R s + sum_k cnt[k] ((-(k + s)) mod B)) / B

where A = sum_r a_r, R = the requests running and cnt[k] = how many have a_r = k (mod B). Each
request grows once every B steps, so the blocks in use climb by R a period; the step at which they
would pass the pool is found by bisection on U, and only that step is simulated request by
request (growers oldest first, the youngest request preempted when a block is missing), as the
event loop does. The integrals of the memory terms over an interval are closed sums of the same
periodic sequence. Everything else (admission, the watermark, preemption and recompute, the
statistics) is the event loop's own code (simulation.Simulation), so the two agree exactly: a
test runs both on random workloads and compares every figure.

The event loop spends about 21 growth events a chat request (one per block); this spends none.
Shared-prefix paging is counted the same way: a sharer holds ceil(t / B) blocks of which the
prefix's full blocks are held once however many share them.
"""

from __future__ import annotations

from kvplan.calc.frag.simulation import FINISH, Caps, Simulation
from kvplan.calc.frag.simulation import simulate as simulate_events
from kvplan.calc.frag.strategies import Paged, Running, Shared, Strategy


class CountedPool(Strategy):
    """The paged strategy's answers, from the simulation's counts at its current step."""

    name = "paged"

    def __init__(self, paged: Paged):
        self.block, self.num_blocks, self.name = paged.block, paged.pool.num_blocks, paged.name
        # shared: the prefix's full blocks are held once by every request that holds the prefix
        self.full, self.partial = getattr(paged, "full", 0), getattr(paged, "partial", 0)
        self.sim: CountedSimulation  # set by the simulation that owns this pool

    def sharer(self, r: Running) -> bool:
        return self.full > 0 and r.inp >= self.full * self.block

    def free_tokens(self) -> int:
        return (self.num_blocks - self.sim.used) * self.block

    def fits_ever(self, r: Running) -> bool:
        return -(-r.final // self.block) <= self.num_blocks

    def admit(self, r: Running) -> bool:
        shared = self.full if self.sharer(r) and self.sim.sharers else 0  # already held: not taken again
        return self.num_blocks - self.sim.used >= -(-r.inp // self.block) - shared

    def saved(self) -> int:
        return max(self.sim.sharers - 1, 0) * self.full * self.block

    def release(self, r: Running) -> None:  # the counts are kept by the simulation
        pass

    def allocated(self) -> int:
        return self.sim.used * self.block

    def idle(self) -> bool:
        return not self.sim.running


class CountedSimulation(Simulation):
    def __init__(self, strategy: Paged | Shared, requests, tick=None, caps: Caps = Caps()):
        pool = CountedPool(strategy)
        self.block, self.num_blocks = pool.block, pool.num_blocks
        self.sum_offsets = 0  # A: the sum of a_r over running requests
        self.cnt = [0] * self.block  # running requests by a_r mod B
        self.by_residue: list[set[int]] = [set() for _ in range(self.block)]
        self.now = 0
        self.used = 0  # blocks in use at self.now
        self.growing = False  # within a step: its growers are counted but not yet given their block
        self.grow_res = 0  # the residue (a_r mod B) of this step's growers
        self.granted: set[int] = set()  # growers already given their block, when they go one by one
        self.full, self.partial = pool.full, pool.partial
        self.sharers = 0  # requests holding the shared prefix
        self.sharing: set[int] = set()
        pool.sim = self
        self.pool = pool  # the strategy, typed as what it is (Simulation knows it as a Strategy)
        super().__init__(pool, requests, False, tick, caps)

    # --- the counts ---------------------------------------------------------------------------
    def blocks_at(self, s: int) -> int:
        """U(s): blocks the running requests hold at step s, once every growth up to s is done."""
        B, g = self.block, 0
        for k, n in enumerate(self.cnt):
            if n:
                g += n * ((-(k + s)) % B)
        return (self.sum_offsets + len(self.running) * s + g) // B

    def _interval_sum(self, a: int, b: int) -> int:
        """sum of U(s) for s in [a, b), times B: the allocated token-steps of the interval."""
        n, B = b - a, self.block
        total = self.sum_offsets * n + len(self.running) * (a + b - 1) * n // 2
        full, m = divmod(n, B)
        for k, count in enumerate(self.cnt):
            if not count:
                continue
            c = (-(k + a)) % B  # the sequence c, c-1, ..., 0, B-1, ... (offsets 0..n-1)
            part = m * c - m * (m - 1) // 2 if m <= c + 1 else \
                c * (c + 1) // 2 + (m - c - 1) * (B - 1) - (m - c - 1) * (m - c - 2) // 2
            total += count * (full * B * (B - 1) // 2 + part)
        return total

    def used_at(self, s: int) -> int:
        """Blocks in use at step s: U(s), less the prefix blocks counted once per extra sharer."""
        return self.blocks_at(s) - self.full * max(self.sharers - 1, 0)

    def _move_to(self, s: int) -> None:
        """To step s, no request started or stopped since self.now: within a period, add the
        growers of each step (most intervals are a step or two); else the closed form."""
        n = s - self.now
        if 0 < n <= self.block:
            cnt, B = self.cnt, self.block
            self.used += sum(cnt[(1 - t) % B] for t in range(self.now + 1, s + 1))
        elif n:
            self.used = self.used_at(s)
        self.now = s

    # --- the event loop's hooks -----------------------------------------------------------------
    def _schedule(self, r: Running) -> None:  # a finish event only: growth is counted
        self._at(r.start_step + r.out, (FINISH, r.start_step, r.rid, r.version))
        k = (r.inp - r.start_step) % self.block
        self.sum_offsets += r.inp - r.start_step
        self.cnt[k] += 1
        self.by_residue[k].add(r.rid)
        self.used += -(-r.inp // self.block)
        if self.partial and r.inp >= self.full * self.block:  # its copy of the prefix's partial block
            self.stats.cow_tokens += self.partial
        if self.pool.sharer(r):
            self.used -= self.full if self.sharers else 0
            self.sharers += 1
            self.sharing.add(r.rid)

    def _pending(self, r: Running) -> bool:
        """A grower of this step still waiting for its block (it holds one fewer than ceil(t / B))."""
        return self.growing and (r.inp - r.start_step) % self.block == self.grow_res and r.rid not in self.granted

    def _stop(self, r: Running) -> None:
        held = -(-r.tokens(self.now) // self.block) - self._pending(r)
        k = (r.inp - r.start_step) % self.block
        self.sum_offsets -= r.inp - r.start_step
        self.cnt[k] -= 1
        self.by_residue[k].discard(r.rid)
        if r.rid in self.sharing:
            self.sharing.discard(r.rid)
            self.sharers -= 1
            held -= self.full if self.sharers else 0  # the prefix stays while another holds it
        self.used -= held
        super()._stop(r)

    def _held(self, r: Running) -> int:  # for _preempt: its blocks are counted, not listed
        return (-(-r.tokens(self.now) // self.block) - self._pending(r)) * self.block

    def _integrate(self, a: int, b: int) -> None:
        n, stats, running = b - a, self.stats, len(self.running)
        if not n:
            return
        live = self.offset_sum * n + running * ((a + b - 1) * n // 2)  # exact, as the event loop's
        stats.live += live
        stats.reserved_for_final += live
        if n <= self.block:  # blocks in use at a, and the growth of each later step, summed directly
            cnt, B = self.cnt, self.block
            grown = sum((n - j) * cnt[(1 - a - j) % B] for j in range(1, n))
            stats.allocated += (n * self.used + grown) * B
        else:
            stats.allocated += self._interval_sum(a, b) - self.full * self.block * max(self.sharers - 1, 0) * n
        stats.saved += self.strategy.saved() * n
        stats.running += running * n
        stats.waiting += self.queued() * n
        stats.steps = b

    def _observe(self, step: int) -> None:
        if step != self.now:  # a growth step inside an interval: its counts, in closed form
            self._move_to(step)
        super()._observe(step)

    def _last_growth(self, a: int, b: int) -> int | None:
        """The last step in (a, b) at which some running request grows, or None."""
        for s in range(b - 1, max(a, b - 1 - self.block), -1):
            if self.cnt[(1 - s) % self.block]:
                return s
        return None

    def _exhaustion(self, a: int, b: int) -> int | None:
        """The first step in (a, b) at which the pool runs out, or None (U grows with s)."""
        if b - a < 2:
            return None
        if self.used + len(self.running) * -(-(b - 1 - a) // self.block) <= self.num_blocks:
            return None  # each request grows at most once a period: no run-out possible
        if self.used_at(b - 1) <= self.num_blocks:
            return None
        lo, hi = a + 1, b - 1  # U(hi) > N; find the first such step
        while lo < hi:
            mid = (lo + hi) // 2
            if self.used_at(mid) > self.num_blocks:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _next(self, step: int) -> int:  # the pool may run out before the next event
        nxt = super()._next(step)
        return self._exhaustion(step, nxt) or nxt

    def _advance(self, step: int, nxt: int) -> None:
        self._integrate(step, nxt)
        last = self._last_growth(step, nxt) if nxt > step + 1 else None
        if last is not None:  # the event loop observed every growth step; the last holds the peak
            self._observe(last)
        if nxt == step:  # the same step again (a request of no output finishes where it starts)
            Simulation._process(self, step)
            return
        self._move_to(nxt)
        self._process(nxt)
        self._grow_all(nxt)

    def _process(self, step: int) -> None:
        """This step's finishes. The counts at this step include its growth, so the growers are
        first taken back out (pending) until _grow_all hands out their blocks."""
        self.grow_res, self.growing, self.granted = (1 - step) % self.block, True, set()
        self.used -= self.cnt[self.grow_res]
        super()._process(step)  # finishes: _stop subtracts what each held

    def _grow_all(self, step: int) -> None:
        """Growth at this step, oldest request first, preempting the youngest when a block is missing;
        all at once where the pool has a block for every grower."""
        growers = self.cnt[self.grow_res]
        if self.num_blocks - self.used >= growers:
            self.used += growers
            self.growing = False
            return
        order = sorted((self.running[rid] for rid in self.by_residue[self.grow_res]),
                       key=lambda r: (r.start_step, r.rid))
        for r in order:
            if r.rid not in self.running:
                continue  # preempted by an older grower
            while self.used >= self.num_blocks:
                if self._preempt(step, r) is r:
                    break
            else:
                self.granted.add(r.rid)
                self.used += 1
        self.growing = False


def simulate(strategy: Strategy, requests, check: bool = False, tick=None, caps: Caps = Caps()):
    """Run the strategy over the requests under the scheduler's caps; tick(finished requests) now
    and then, for a progress bar. Paging without the invariant checks is counted in closed form: the
    same figures, without an event per block (tests/test_frag.py compares the two)."""
    if isinstance(strategy, Paged) and type(strategy) in (Paged, Shared) and not check:
        return CountedSimulation(strategy, requests, tick, caps).run()
    return simulate_events(strategy, requests, check, tick, caps)
