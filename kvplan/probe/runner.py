"""`kvplan probe`: capacity check, page table, attention correctness, bandwidth. One run.

The capacity calculator predicts how many pages fit in what this device has free (less a margin,
capped by --max-gib, and less the weights and activations with --with-weights); the pool is then
allocated for real, and every byte must match. Everything allocated is released on the way out,
whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.specs.engines import DEFAULT_ENGINE, TEXTBOOK_ENGINE
from kvplan.specs.engines.registry import Replica
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.weights import weights_bytes
from kvplan.errors import InputError
from kvplan.probe import attention, bench
from kvplan.probe.device import (
    CPU_CAP_BYTES, DeviceInfo, database_gpu_name, device_info, margin_bytes, resolve_device, spare_bytes,
)
from kvplan.probe.offload import host_spare, offload_checks, plan_reload, run_offload
from kvplan.probe.reload import reload_layout
from kvplan.probe.transfer import TransferPlan, check_peer_room, peer_world, run_transfer, transfer_checks
from kvplan.probe.page_table import PageTable, build_page_table, check_page_table
from kvplan.probe.pool import (
    allocated,
    allocator_bytes,
    caching_allocator_bytes,
    expandable_segments,
    Layout,
    held_tokens,
    pages_per_request,
    plan_layout,
    release_workspaces,
    tensor_bytes,
)
from kvplan.results.probe import (
    ProbeBandwidth,
    ProbeCheck,
    ProbeCorrectness,
    ProbeMemory,
    ProbePageTable,
    ProbePool,
    ProbeResult,
)
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import GIB, MIB, fmt_binary

COPY_BYTES = {"cuda": 2 * GIB, "cpu": 64 * MIB}
CORRECTNESS_REQUESTS = 4  # requests checked against the float64 reference on the real pool


@dataclass(frozen=True)
class ProbeOptions:
    device: str | None = None
    ctx: int | None = None  # default: 4096 on CUDA, 1024 on the CPU
    batch: int | None = None  # default: 64 on CUDA, 4 on the CPU
    kv_dtype: str = "auto"
    block_size: int = 16
    util: float = 0.9
    max_gib: float | None = None
    with_weights: bool = False
    impl: str = "auto"  # auto, triton, torch
    seed: int = 0
    offload: bool = False  # reload and recompute a prefix, measured (kvplan.probe.offload)
    peers: bool = False  # pages between devices (kvplan.probe.transfer)
    prefix: int | None = None  # the evicted prefix: default 4096 tokens on CUDA, 256 on the CPU
    peer_timeout: float = 300.0  # seconds for the whole peer transfer


def _budget(model: ModelSpec, info: DeviceInfo, opts: ProbeOptions) -> tuple[ProbeMemory, object]:
    margin = margin_bytes(info.total_bytes, info.is_cuda)
    spare = info.free_bytes - margin
    if opts.max_gib is not None and round(opts.max_gib * GIB) > spare:
        raise InputError(f"--max-gib {opts.max_gib:g} is more than {info.name} can spare: {fmt_binary(info.free_bytes)} "
                         f"free less a {fmt_binary(margin)} margin is {fmt_binary(max(spare, 0))}; lower --max-gib")
    cap = (round(opts.max_gib * GIB) if opts.max_gib is not None
           else None if info.is_cuda else CPU_CAP_BYTES)
    usable = spare if cap is None else min(spare, cap)
    weights = activation = 0
    if opts.with_weights:
        weights = weights_bytes(model, "auto")[0]
        engine = engine_entry(DEFAULT_ENGINE)  # its profile run is what the weights are held beside
        activation = engine.activation(model, Replica(None, dtype=model.compute_dtype),
                                       engine.batch_limits(None, info.total_bytes, model.max_context)).value
        if weights + activation >= usable:
            raise InputError(f"{model.name} does not fit on {info.name}: weights {fmt_binary(weights)} + activations "
                             f"{fmt_binary(activation)} exceed the {fmt_binary(usable)} the probe may use; "
                             "drop --with-weights or pick a smaller model")
    budget = memory_budget(model, None, BudgetInputs(
        engine=TEXTBOOK_ENGINE, util=opts.util, gpu_mem_bytes=max(usable, 0), weights_bytes=weights,
        activation_bytes=activation, overhead_bytes=0, kv_dtype=opts.kv_dtype, block_size=opts.block_size))
    memory = ProbeMemory(total_bytes=info.total_bytes, free_bytes=info.free_bytes, nvml_total_bytes=info.nvml_total_bytes,
                         nvml_used_bytes=info.nvml_used_bytes, margin_bytes=margin, cap_bytes=cap,
                         weights_reserved_bytes=weights, activation_reserved_bytes=activation,
                         budget_bytes=max(usable, 0))
    return memory, budget


def _check_inputs(model: ModelSpec, opts: ProbeOptions, ctx: int, batch: int) -> None:
    if not 0 < opts.util <= 1:
        raise InputError(f"--util {opts.util} is outside (0, 1]")
    if ctx < 1 or batch < 1:
        raise InputError("--ctx and --batch must be at least 1")
    if ctx > model.max_context:
        raise InputError(f"--ctx {ctx:,} is beyond {model.name}'s max context {model.max_context:,}; lower --ctx")
    if opts.impl not in ("auto", "triton", "torch"):
        raise InputError(f"--impl {opts.impl} is not one of auto, triton, torch")
    if opts.max_gib is not None and opts.max_gib <= 0:
        raise InputError("--max-gib must be positive")


def _impl(opts: ProbeOptions, device: torch.device) -> tuple[str, Callable]:
    if opts.impl == "torch" or (opts.impl == "auto" and device.type != "cuda"):
        return "torch", attention.paged_decode_torch
    try:
        import triton  # noqa: F401
    except ImportError:
        if opts.impl == "triton":
            raise InputError("--impl triton needs Triton: pip install triton") from None
        return "torch", attention.paged_decode_torch
    if device.type != "cuda":
        import os

        if os.environ.get("TRITON_INTERPRET") != "1":
            raise InputError("--impl triton on the CPU needs TRITON_INTERPRET=1 (Triton's interpreter)")
    return "triton", attention.paged_decode_triton


def _fill_random(cache: torch.Tensor, table: PageTable, generator: torch.Generator) -> None:
    """Random K/V in the pages the requests use: never time or test on zeros."""
    pages = table.kv_indices.long().to(cache.device)
    for chunk in pages.split(4096):
        shape = (chunk.numel(), *cache.shape[1:])
        cache[chunk] = torch.randn(shape, generator=generator, device=cache.device, dtype=torch.float32).to(cache.dtype)


def _correctness(run: Callable, impl: str, q: torch.Tensor, cache: torch.Tensor, table: PageTable) -> ProbeCorrectness:
    n = min(table.batch, CORRECTNESS_REQUESTS)
    sub = PageTable(table.kv_indptr[: n + 1], table.kv_indices[: int(table.kv_indptr[n])],
                    table.kv_last_page_len[:n], table.page_size)
    out = torch.full_like(q[:n], float("nan"))  # poisoned: every element must be written
    run(q[:n].contiguous(), cache, sub, out=out) if impl == "triton" else out.copy_(run(q[:n].contiguous(), cache, sub))
    keys, values = zip(*(attention.gather_kv(cache, sub, i) for i in range(n)))
    ref = attention.dense_reference(q[:n], list(keys), list(values))
    error = attention.relative_error(out, ref) if bool(torch.isfinite(out).all()) else float("inf")
    bound = attention.ERROR_BOUNDS.get(q.dtype, 2e-2)
    return ProbeCorrectness(impl=impl, dtype=str(q.dtype).removeprefix("torch."), batch=n,
                            seq_lens=tuple(sub.seq_lens().tolist()), q_heads=q.shape[1], kv_heads=cache.shape[3],
                            relative_error=error, bound=bound, all_written=bool(torch.isfinite(out).all()),
                            ok=error <= bound)


def _attention_layer(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """The first layer laid out [pages, 2, page_size, kv_heads, head_dim] in a float dtype."""
    return next((t for t in tensors if t.dim() == 5 and t.dtype.is_floating_point and t.element_size() >= 2), None)


def run_probe(model: ModelSpec, opts: ProbeOptions, gpus: dict[str, GpuSpec],
              step: Callable[[str], None] = lambda _label: None) -> ProbeResult:
    device = resolve_device(opts.device)
    cuda = device.type == "cuda"
    ctx, batch = opts.ctx or (4096 if cuda else 1024), opts.batch or (64 if cuda else 4)
    _check_inputs(model, opts, ctx, batch)
    fmt = resolve_kv_format(model, opts.kv_dtype)
    prefix, plan = _sections_planned(model, opts, device, fmt)  # refused here, before anything is allocated
    info = device_info(device)
    impl, run = _impl(opts, device)
    step("budget")
    memory, budget = _budget(model, info, opts)
    copy_before = bench.copy_gbps(device, COPY_BYTES[device.type])  # the ceiling, before anything else runs
    gpu = gpus.get(database_gpu_name(info.name) or "", None) if cuda else None
    release_workspaces(device)
    start = allocator_bytes(device)
    correctness, bandwidth = [], None
    step("reserve weights" if opts.with_weights else "allocate pool")
    with reserved(memory, device):
        before = allocator_bytes(device)
        layout = plan_layout(model, fmt, budget, ctx)
        with allocated(layout.shapes, device) as tensors:
            pool = _pool_result(budget, layout, tensors, before, allocator_bytes(device), memory, fmt.name)
            step("page table")
            table, page_table = _page_table(model, fmt, budget, layout, pool, ctx, batch, opts.seed)
            cache = _attention_layer(tensors)
            if cache is not None:
                correctness, bandwidth = _attend(model, run, impl, cache, table, opts.seed, gpu, copy_before, step)
            del cache
    released = allocator_bytes(device) == start
    checks = _checks(pool, page_table, correctness, bandwidth)
    step("offload")
    off = run_offload(model, fmt.name, opts.block_size, prefix, device, gpu, opts.seed, step) if opts.offload else None
    step("peers")
    transfer = run_transfer(plan, gpus.get(database_gpu_name(info.name) or "") if cuda else None) if plan else None
    checks += offload_checks(off) + transfer_checks(transfer)
    if cuda:
        checks.append(ProbeCheck(check="everything released", predicted=f"{start:,} B allocated, as at the start",
                                 measured=f"{allocator_bytes(device):,} B", verdict="pass" if released else "fail"))
    return ProbeResult(
        released=released, model=model.name, device=str(device), device_name=info.name,
        torch_version=torch.__version__, triton_version=_triton_version(), nvml=info.nvml_total_bytes is not None,
        kv_dtype=fmt.name, memory=memory, pool=pool, page_table=page_table, correctness=tuple(correctness),
        bandwidth=bandwidth, checks=tuple(checks), ok=all(c.verdict != "fail" for c in checks), offload=off,
        transfer=transfer,
    )


def _sections_planned(model: ModelSpec, opts: ProbeOptions, device: torch.device, fmt) -> tuple[int, TransferPlan | None]:
    """The prefix, and the peer transfer's plan: each checked against the memory it needs now."""
    prefix = opts.prefix or (4096 if device.type == "cuda" else 256)
    backend, world = peer_world(device) if opts.peers else ("", 0)
    if opts.offload:
        plan_reload(model, opts.kv_dtype, opts.block_size, prefix, device)
    if not opts.peers:
        return prefix, None
    layout = reload_layout(model, fmt, opts.block_size, prefix)
    plan = TransferPlan(backend, world, device.type, -(-prefix // opts.block_size),
                        sum(size for _, size in layout.layers), opts.seed, opts.peer_timeout)
    check_peer_room(plan, host_spare(), spare_bytes(device_info(device)) if device.type == "cuda" else 0)
    return prefix, plan


@contextmanager
def reserved(memory: ProbeMemory, device: torch.device):
    """With --with-weights: buffers the size of the weights and the activations, held meanwhile."""
    buffers = [torch.empty(size, dtype=torch.uint8, device=device)
               for size in (memory.weights_reserved_bytes, memory.activation_reserved_bytes) if size]
    try:
        yield buffers
    finally:
        buffers.clear()
        release_workspaces(device)


def _page_table(model: ModelSpec, fmt, budget, layout: Layout, pool: ProbePool, ctx: int, batch: int,
                seed: int) -> tuple[PageTable, ProbePageTable]:
    """As many of the requests as the pool holds, on shuffled pages, every invariant checked. A
    request takes the pages of the tokens it keeps (its window, where every layer is windowed; each
    kind's share of a hybrid's pool); the table attends over the tokens its longest layer keeps."""
    held = held_tokens(model, ctx)
    need, _ = pages_per_request(model, fmt, budget, ctx)
    fit = min(batch, layout.pages // need, layout.states or batch) if held and need else 0
    if fit < 1:
        raise InputError(f"not one {ctx:,}-token request fits the {fmt_binary(pool.allocated_bytes)} pool; "
                         "lower --ctx or raise --max-gib")
    lens = [held] * fit
    table = build_page_table(lens, budget.block_size, layout.pages, seed=seed)
    problems = check_page_table(table, layout.pages, lens)
    return table, ProbePageTable(batch=fit, requested_batch=batch, ctx_tokens=ctx, held_tokens=held,
                                 page_size=budget.block_size,
                                 pages_used=fit * need, problems=tuple(problems))


def _attend(model: ModelSpec, run: Callable, impl: str, cache: torch.Tensor, table: PageTable, seed: int,
            gpu: GpuSpec | None, copy_before: float, step: Callable[[str], None]):
    """Random K/V and queries on the real pool: correctness against float64, then the timing."""
    step("attention")
    device = cache.device
    generator = torch.Generator(device=device).manual_seed(seed)
    table_d = table.to(device)
    _fill_random(cache, table_d, generator)
    q = torch.randn((table.batch, model.num_attention_heads, cache.shape[-1]), generator=generator,
                    device=device).to(cache.dtype)
    correctness = [_correctness(run, impl, q, cache, table_d)]
    step("bandwidth")
    return correctness, _time_kernel(run, impl, q, cache, table_d, gpu, copy_before)


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def _pool_result(budget, layout: Layout, tensors, before: int | None, after: int | None, memory: ProbeMemory,
                 kv_dtype: str) -> ProbePool:
    predicted = layout.predicted_bytes
    allocated_bytes = sum(tensor_bytes(t) for t in tensors)
    by_allocator = None if before is None or after is None else after - before  # both or neither: CUDA
    rounded = None if by_allocator is None else sum(caching_allocator_bytes(tensor_bytes(t)) for t in tensors)
    return ProbePool(
        page_bytes=budget.page_bytes, predicted_blocks=layout.blocks, predicted_bytes=predicted,
        allocated_blocks=tensors[0].shape[0] if tensors else 0, allocated_bytes=allocated_bytes,
        allocator_bytes=by_allocator, allocator_predicted_bytes=rounded, layers_allocated=len(tensors),
        left_unused_bytes=memory.budget_bytes - memory.weights_reserved_bytes - memory.activation_reserved_bytes
        - allocated_bytes, exact=allocated_bytes == predicted and by_allocator in (None, rounded),
        note=layout.note(len(tensors), kv_dtype),
    )


def _kv_bytes(q: torch.Tensor, cache: torch.Tensor, table: PageTable) -> int:
    """Bytes one decode step must move: every cached K and V element read once, q read, out written."""
    tokens = int(table.seq_lens().sum())
    per_token = 2 * cache.shape[3] * cache.shape[4] * cache.element_size()
    return tokens * per_token + 2 * q.numel() * q.element_size()


def _time_kernel(run: Callable, impl: str, q: torch.Tensor, cache: torch.Tensor, table: PageTable,
                 gpu: GpuSpec | None, copy_before: float) -> ProbeBandwidth:
    """The kernel on the pool against SDPA on a contiguous copy of the same K/V, timed in
    alternating rounds; then the copy ceiling (the better of before the pool and now)."""
    out = torch.empty_like(q)
    longest = int(table.seq_lens().max())  # once, outside the timed calls
    call = ((lambda: run(q, cache, table, out=out, max_seq_len=longest)) if impl == "triton"
            else (lambda: run(q, cache, table)))
    lens = table.seq_lens().tolist()
    fns = {"kernel": call}
    if len(set(lens)) == 1:  # SDPA needs equal lengths: [B, Hkv, L, D]
        try:
            keys, values = (torch.stack([attention.gather_kv(cache, table, i)[j] for i in range(table.batch)])
                            .transpose(1, 2).contiguous() for j in (0, 1))
            fns["sdpa"] = bench.sdpa_fn(q, keys, values)
        except torch.cuda.OutOfMemoryError:
            pass  # no room beside the pool for a contiguous copy: the baseline is left out
    cuda = q.device.type == "cuda"
    times = bench.interleaved_ms(fns, q.device, rounds=5 if cuda else 1, runs=20 if cuda else 2)
    fns.clear()
    moved = _kv_bytes(q, cache, table)
    copy = max(copy_before, bench.copy_gbps(q.device, COPY_BYTES[q.device.type] // 4))
    kernel_gbps, sdpa = bench.gbps(moved, times["kernel"]), times.get("sdpa")
    sdpa_gbps = bench.gbps(moved, sdpa) if sdpa else None
    datasheet = gpu.hbm_bandwidth_gbps if gpu else None
    return ProbeBandwidth(
        impl=impl, batch=table.batch, ctx_tokens=max(lens), bytes_moved=moved, kernel_ms=times["kernel"],
        kernel_gbps=kernel_gbps, copy_gbps=copy, sdpa_ms=sdpa, sdpa_gbps=sdpa_gbps, datasheet_gbps=datasheet,
        predicted_ms=moved / (datasheet * 1e9) * 1e3 if datasheet else None,
        fraction_of_copy=kernel_gbps / copy if copy else None,
        ratio_to_sdpa=kernel_gbps / sdpa_gbps if sdpa_gbps else None,
    )


def _rate(gb_per_s: float) -> str:
    return f"{gb_per_s:,.0f}" if gb_per_s >= 100 else f"{gb_per_s:.2f}"


def _checks(pool: ProbePool, table: ProbePageTable, correctness: list[ProbeCorrectness],
            bw: ProbeBandwidth | None) -> list[ProbeCheck]:
    verdict = lambda ok: "pass" if ok else "fail"  # noqa: E731
    checks = [
        ProbeCheck(check="KV pool bytes", predicted=f"{pool.predicted_bytes:,} B ({pool.predicted_blocks:,} pages)",
                   measured=f"{pool.allocated_bytes:,} B allocated", verdict=verdict(pool.allocated_bytes == pool.predicted_bytes)),
        ProbeCheck(check="page table (FlashInfer CSR)", predicted="all invariants hold",
                   measured="; ".join(table.problems) or f"{table.batch} x {table.ctx_tokens:,} tokens"
                   + (f" ({table.held_tokens:,} held)" if table.held_tokens < table.ctx_tokens else "")
                   + f" in {table.pages_used:,} shuffled pages",
                   verdict=verdict(not table.problems)),
    ]
    if pool.allocator_bytes is not None and pool.allocator_predicted_bytes is not None:  # both on CUDA
        extra = pool.allocator_predicted_bytes - pool.predicted_bytes
        checks.insert(1, ProbeCheck(
            check="allocator's own count", measured=f"{pool.allocator_bytes:,} B (torch.cuda.memory_allocated)",
            predicted=f"{pool.allocator_predicted_bytes:,} B" + (f" (pool + {extra:,} B of 2 MiB rounding)" if extra else ""),
            verdict="info" if expandable_segments() else verdict(pool.allocator_bytes == pool.allocator_predicted_bytes)))
    for c in correctness:
        checks.append(ProbeCheck(check=f"{c.impl} paged attention vs float64 ({c.dtype})", predicted=f"rel. error <= {c.bound:g}",
                                 measured=f"{c.relative_error:.2e}" + ("" if c.all_written else ", outputs left unwritten"),
                                 verdict=verdict(c.ok)))
    if bw:
        checks.append(ProbeCheck(check="bandwidth vs device copy", predicted=">= 80% of the copy (GPU target)",
                                 measured=f"{_rate(bw.kernel_gbps)} of {_rate(bw.copy_gbps)} GB/s = {bw.fraction_of_copy:.0%}",
                                 verdict="info"))
        if bw.sdpa_gbps:
            checks.append(ProbeCheck(check="paged vs contiguous SDPA", predicted=">= 0.9x (GPU target)",
                                     measured=f"{_rate(bw.kernel_gbps)} vs {_rate(bw.sdpa_gbps)} GB/s = "
                                              f"{bw.ratio_to_sdpa:.2f}x", verdict="info"))
        if bw.predicted_ms is not None:
            checks.append(ProbeCheck(check="roofline, one layer's decode attention",
                                     predicted=f"{bw.predicted_ms:.3f} ms at {bw.datasheet_gbps:,g} GB/s (datasheet)",
                                     measured=f"{bw.kernel_ms:.3f} ms", verdict="info"))
    return checks
