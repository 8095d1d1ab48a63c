"""Reload, measured: a prefix's KV pages copied between a pinned host pool and the device pool.

Both pools are laid out alike, one tensor per paged layer holding the prefix's pages (a windowed
layer only its window's), each page a row of its bytes, and each side has its own shuffled page
table, so a prefix's pages are scattered on both. Two ways to move them, as engines do:
- gathered: the pages are gathered into a staging buffer, moved in one copy, and scattered
  through the other side's page table (LMCache, vLLM's CPU offloading connector);
- per page: one copy per page and layer (vLLM's swap_blocks issues one cudaMemcpyAsync a block),
  here from a Python loop, so its per-copy cost includes the interpreter's.
Each is timed in both directions at 1, 2, 4, ... pages up to the whole pool, and checked byte for
byte after one untimed copy of the whole pool onto a poisoned destination.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from kvplan.calc.kv import layers_kv, paged_request_bytes
from kvplan.errors import InputError
from kvplan.probe.bench import gbps, wall_ms
from kvplan.probe.page_table import build_page_table
from kvplan.probe.pool import paged_groups, release_workspaces
from kvplan.results.probe_offload import TransferCurve, TransferPoint
from kvplan.specs.model import ModelSpec
from kvplan.units import KvFormat, fmt_binary


@dataclass(frozen=True)
class ReloadLayout:
    layers: tuple[tuple[int, int], ...]  # (pages, page bytes) of each paged layer
    predicted_bytes: int  # the calculator's paged bytes of the prefix, less its constant states
    states_bytes: int  # one request's constant (Mamba, DeltaNet) state: not paged, not copied

    @property
    def pool_bytes(self) -> int:
        return sum(pages * size for pages, size in self.layers)

    @property
    def pages(self) -> int:
        return max((pages for pages, _ in self.layers), default=0)

    def bytes_at(self, k: int) -> int:
        """Bytes of the first k pages of the prefix, in every layer (a window holds fewer)."""
        return sum(min(k, pages) * size for pages, size in self.layers)


def reload_layout(model: ModelSpec, fmt: KvFormat, block: int, prefix: int) -> ReloadLayout:
    layers = tuple((-(-group.cached_tokens(prefix) // block), layer.page_bytes_per_layer)
                   for group, layer in paged_groups(model, fmt, block) for _ in range(group.count))
    states = sum(layer.count * layer.state_bytes_per_layer for layer in layers_kv(model, 1, fmt, 1, block))
    return ReloadLayout(layers, paged_request_bytes(model, prefix, fmt, 1, block) - states, states)


def sizes(pages: int) -> list[int]:
    """1, 2, 4, ... pages, and the whole pool."""
    out = [2**i for i in range(pages.bit_length()) if 2**i < pages]
    return out + [pages]


def word(page_bytes: int) -> torch.dtype:
    """The widest integer that tiles a page: the same bytes, moved in words (torch gathers and
    scatters rows of uint8 several times slower than rows of int32 on the CPU)."""
    return next(dtype for dtype, size in ((torch.int32, 4), (torch.int16, 2), (torch.uint8, 1)) if page_bytes % size == 0)


def random_pages(shape: tuple[int, int], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """Random bytes (never time or check on zeros), viewed as rows of the given word."""
    rows, row = shape
    return torch.randint(0, 256, (rows, row * dtype.itemsize), dtype=torch.uint8, generator=generator).view(dtype)


@dataclass
class Pools:
    host: list[torch.Tensor]
    device: list[torch.Tensor]
    host_stage: torch.Tensor
    device_stage: torch.Tensor
    host_pages: list[list[int]]  # each layer's page table: the prefix's i-th page is at row [i]
    device_pages: list[list[int]]


def check_room(layout: ReloadLayout, host_spare: int, device_spare: int, on_cpu: bool, prefix: int) -> None:
    """Refuse, before anything is allocated, a prefix whose pools do not fit: the host holds its
    pool and a staging buffer (on the CPU the device's two as well)."""
    need_host = 2 * layout.pool_bytes * (2 if on_cpu else 1)
    if need_host > host_spare:
        raise InputError(f"--prefix {prefix:,} tokens needs {fmt_binary(need_host)} of host memory (pool and staging "
                         f"buffer{', each on both sides' if on_cpu else ''}), more than the "
                         f"{fmt_binary(max(host_spare, 0))} this host can spare; lower --prefix")
    if not on_cpu and 2 * layout.pool_bytes > device_spare:
        raise InputError(f"--prefix {prefix:,} tokens needs {fmt_binary(2 * layout.pool_bytes)} on the device (pool and "
                         f"staging), more than the {fmt_binary(max(device_spare, 0))} it can spare; lower --prefix")


def _tables(layout: ReloadLayout, seed: int) -> list[list[int]]:
    tables: dict[int, list[int]] = {}
    for pages, _ in layout.layers:
        if pages not in tables:
            tables[pages] = build_page_table([pages], 1, pages, seed=seed).kv_indices.tolist()
    return [tables[pages] for pages, _ in layout.layers]


@contextmanager
def pools(layout: ReloadLayout, device: torch.device, seed: int):
    """Both pools and both staging buffers; released however the block ends."""
    pinned = device.type == "cuda"
    made: list[torch.Tensor] = []

    def empty(shape, dtype, where) -> torch.Tensor:
        made.append(torch.empty(shape, dtype=dtype, device=where, pin_memory=pinned and where == "cpu"))
        return made[-1]

    try:
        rows = [((pages, size // word(size).itemsize), word(size)) for pages, size in layout.layers]
        try:
            host = [empty(shape, dtype, "cpu") for shape, dtype in rows]
            dev = [empty(shape, dtype, device) for shape, dtype in rows]
            host_stage, device_stage = (empty(layout.pool_bytes, torch.uint8, where) for where in ("cpu", device))
        except RuntimeError as err:  # pinned memory is capped by the OS, free memory is a moment's
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"could not allocate the reload pools ({fmt_binary(layout.pool_bytes)} a side, "
                             f"{'pinned' if pinned else 'host'}): {first[:120]}; lower --prefix") from None
        yield Pools(host, dev, host_stage, device_stage, _tables(layout, seed), _tables(layout, seed + 1))
    finally:
        made.clear()
        release_workspaces(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gathered(p: Pools, k: int, to_device: bool) -> Callable[[], None]:
    """The first k pages of every layer: gather into the source side's staging buffer, one copy,
    scatter through the destination's page table."""
    src, dst = (p.host, p.device) if to_device else (p.device, p.host)
    src_stage, dst_stage = (p.host_stage, p.device_stage) if to_device else (p.device_stage, p.host_stage)
    src_pages, dst_pages = (p.host_pages, p.device_pages) if to_device else (p.device_pages, p.host_pages)
    plan, offset = [], 0
    for layer, (s, d) in enumerate(zip(src, dst)):
        n = min(k, s.shape[0])
        view = slice(offset, offset + n * s.shape[1] * s.element_size())
        plan.append((s, d, torch.tensor(src_pages[layer][:n], device=s.device),
                     torch.tensor(dst_pages[layer][:n], device=d.device), view, n))
        offset = view.stop
    device = p.device[0].device

    def run() -> None:
        for s, _, si, _, view, n in plan:
            torch.index_select(s, 0, si, out=src_stage[view].view(s.dtype).view(n, -1))
        dst_stage[:offset].copy_(src_stage[:offset], non_blocking=to_device)
        for _, d, _, di, view, n in plan:
            d.index_copy_(0, di, dst_stage[view].view(d.dtype).view(n, -1))
        _sync(device)

    return run


def per_page(p: Pools, k: int, to_device: bool) -> Callable[[], None]:
    """The first k pages of every layer, one copy each, straight from page to page."""
    src, dst = (p.host, p.device) if to_device else (p.device, p.host)
    src_pages, dst_pages = (p.host_pages, p.device_pages) if to_device else (p.device_pages, p.host_pages)
    pairs = [(s[i], d[j]) for layer, (s, d) in enumerate(zip(src, dst))
             for i, j in zip(src_pages[layer][:k], dst_pages[layer][:k])]
    device = p.device[0].device

    def run() -> None:
        for s, d in pairs:
            d.copy_(s, non_blocking=True)
        _sync(device)

    return run


def verify(p: Pools, layout: ReloadLayout, method: Callable, to_device: bool, generator: torch.Generator) -> int:
    """Random source pages, a zeroed destination, one copy of the whole pool: the pages that
    arrived byte for byte (every one of them, or the method is wrong)."""
    src, dst = (p.host, p.device) if to_device else (p.device, p.host)
    for s, d in zip(src, dst):
        rows, row = s.shape  # each layer's pool is 2-D: pages x words
        s.copy_(random_pages((rows, row), s.dtype, generator))
        d.zero_()
    method(p, layout.pages, to_device)()
    src_pages, dst_pages = (p.host_pages, p.device_pages) if to_device else (p.device_pages, p.host_pages)
    ok = 0
    for layer, (s, d) in enumerate(zip(src, dst)):
        got = d[torch.tensor(dst_pages[layer], device=d.device)].cpu()
        want = s[torch.tensor(src_pages[layer], device=s.device)].cpu()
        ok += int((got == want).all(dim=1).sum())
    return ok


MIN_R2 = 0.9  # the share of the times' variance a line must explain before its slope is a rate


def fit(points: list[TransferPoint]) -> tuple[float, float]:
    """(GB/s, latency in us) of time = latency + bytes / rate, least squares over every size.

    Where a line does not explain the times (R^2 under MIN_R2: sizes too small to show the rate,
    so the slope is noise), the best rate measured and no latency: the link is then what was
    seen, never more. A negative intercept (noise, not a latency) refits through the origin."""
    xs, ys = [p.bytes for p in points], [p.ms * 1e-3 for p in points]
    best = max(p.gbps for p in points)
    try:
        slope, intercept = statistics.linear_regression(xs, ys)
        r2 = statistics.correlation(xs, ys) ** 2
    except statistics.StatisticsError:  # one size, or times all equal
        return best, 0.0
    if not (slope > 0 and math.isfinite(slope) and r2 >= MIN_R2):
        return best, 0.0
    if intercept < 0:  # no latency: the least-squares line through the origin, never faster than seen
        slope = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
        return min(1 / slope / 1e9, best), 0.0
    return 1 / slope / 1e9, intercept * 1e6


def curve(name: str, method: str, points: list[TransferPoint], checked: int, ok: int) -> TransferCurve:
    rate, latency = fit(points)
    return TransferCurve(name=name, method=method, points=tuple(points), fitted_gbps=rate,
                         fitted_latency_us=latency, pages_checked=checked, pages_ok=ok)


def measure(p: Pools, layout: ReloadLayout, seed: int, step: Callable[[str], None]) -> list[TransferCurve]:
    """Every method, both directions, every size; then the byte-for-byte check of each."""
    device = p.device[0].device
    cuda = device.type == "cuda"
    generator = torch.Generator().manual_seed(seed)
    checked = sum(pages for pages, _ in layout.layers)
    curves = []
    for to_device in (True, False):
        name = "host -> device" if to_device else "device -> host"
        for label, method in (("gathered", gathered), ("per page", per_page)):
            step(f"reload: {name}, {label}")
            ok = verify(p, layout, method, to_device, generator)
            points = []
            for k in sizes(layout.pages):
                ms = wall_ms(method(p, k, to_device), warmup=2 if cuda else 1, runs=9 if cuda else 3)
                points.append(TransferPoint(pages=k, bytes=layout.bytes_at(k), ms=ms, gbps=gbps(layout.bytes_at(k), ms)))
            curves.append(curve(name, label, points, checked, ok))
    return curves
