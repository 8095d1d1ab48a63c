"""KV pages between devices: one process per device over torch.distributed, and direct peer copies.

kvplan starts the processes itself (torch.multiprocessing, spawned: a fresh interpreter each, as
torchrun would start them), NCCL between GPUs and gloo between CPU processes, so CI runs the same
code in two processes. Every rank holds a pool of pages filled from its own seed and its own
shuffled page table. For every ordered pair, and for all ranks to rank 0 at once, the source
gathers the first k pages of its prefix, sends them, and the receiver scatters them through its
page table; the receiver times it, from the barrier both leave to the last page in place. The
receiver regenerates the sender's pages from its seed and compares every page byte for byte.

Teardown: each rank destroys its process group however it leaves; the parent waits under a
deadline, kills what is left, joins every process and removes its scratch folder.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from kvplan.errors import InputError, KvplanError
from kvplan.probe.bench import gbps, wall_ms
from kvplan.probe.device import host_memory
from kvplan.probe.pool import tensor_bytes
from kvplan.probe.reload import curve, random_pages, sizes, word
from kvplan.results.probe import ProbeCheck
from kvplan.results.probe_offload import PeerDevice, ProbeTransfer, TransferCurve, TransferPoint
from kvplan.specs.gpu import GpuSpec
from kvplan.units import fmt_binary

WARMUP, RUNS = 2, 7


class TransferFailed(KvplanError):
    """A rank failed or the transfer ran past its deadline; every process was stopped."""


@dataclass(frozen=True)
class TransferPlan:
    backend: str
    world: int
    device_type: str
    pages: int
    page_bytes: int
    seed: int
    timeout_s: float


def peer_world(device: torch.device) -> tuple[str, int]:
    """(backend, processes): every GPU over NCCL, or two CPU processes over gloo."""
    if device.type != "cuda":
        return "gloo", 2
    count = torch.cuda.device_count()
    if count < 2:
        raise InputError(f"--peers needs two GPUs or more: this host has {count} ({device}); drop --peers, or "
                         "use --device cpu to run the same transfer between two CPU processes over gloo")
    if not torch.distributed.is_nccl_available():
        raise InputError("--peers on GPUs needs NCCL, which this torch build lacks; use --device cpu for gloo")
    return "nccl", count


def pattern(plan: TransferPlan, rank: int) -> torch.Tensor:
    """Rank r's pages, the same in every process that asks: seeded by (seed, r)."""
    generator = torch.Generator().manual_seed(plan.seed * 1_000 + rank)
    dtype = word(plan.page_bytes)
    return random_pages((plan.pages, plan.page_bytes // dtype.itemsize), dtype, generator)


def order(plan: TransferPlan, rank: int) -> torch.Tensor:
    """Rank r's page table for the prefix: where its i-th page lives in its pool."""
    generator = torch.Generator().manual_seed(plan.seed * 1_000 + 500 + rank)
    return torch.randperm(plan.pages, generator=generator)


class _Rank:
    def __init__(self, rank: int, plan: TransferPlan, device: torch.device):
        self.rank, self.plan, self.device = rank, plan, device
        self.pool = pattern(plan, rank).to(device)
        self.recv = torch.zeros_like(self.pool)
        self.orders = [order(plan, r).to(device) for r in range(plan.world)]

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def pair(self, src: int, dst: int, k: int) -> float:
        """One transfer of k pages from src to dst, and its ms on this rank's clock from the barrier
        every rank leaves together (the barrier itself is not timed)."""
        dist = torch.distributed
        dist.barrier()
        start = time.perf_counter()
        if self.rank == src:
            dist.send(self.pool.index_select(0, self.orders[src][:k]), dst)
        elif self.rank == dst:
            stage = torch.empty((k, self.pool.shape[1]), dtype=self.pool.dtype, device=self.device)
            dist.recv(stage, src)
            self.recv.index_copy_(0, self.orders[dst][:k], stage)
        self.sync()
        return (time.perf_counter() - start) * 1e3

    def all_to_one(self, k: int) -> tuple[float, list[torch.Tensor]]:
        dist = torch.distributed
        dist.barrier()
        start = time.perf_counter()
        stages = []
        if self.rank == 0:
            stages = [torch.empty((k, self.pool.shape[1]), dtype=self.pool.dtype, device=self.device)
                      for _ in range(self.plan.world - 1)]
            works = [dist.irecv(stage, src) for src, stage in enumerate(stages, start=1)]
        else:
            works = [dist.isend(self.pool.index_select(0, self.orders[self.rank][:k]), 0)]
        for work in works:
            assert work is not None  # None only for a rank outside the group; every rank is in the default one
            work.wait()
        self.sync()
        return (time.perf_counter() - start) * 1e3, stages

    def expected(self, src: int) -> torch.Tensor:
        return pattern(self.plan, src)[order(self.plan, src)]

    def timed(self, fn, record: bool) -> float | None:
        """The median ms fn reports, after the warm-up, on the receiver; every rank calls fn as
        often (each call starts with a barrier)."""
        times = [fn() for _ in range(WARMUP + RUNS)][WARMUP:]
        return statistics.median(times) if record else None


def _device(rank: int, device: torch.device, r: _Rank) -> dict:
    """This rank's device as the probe sees it: its memory before the pools, and the pools' bytes."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        name = torch.cuda.get_device_name(device)
    else:
        total, free = host_memory()
        name = "CPU process"
    return {"rank": rank, "device": str(device), "name": name, "total_bytes": int(total), "free_bytes": int(free),
            "pool_bytes": tensor_bytes(r.pool) + tensor_bytes(r.recv)}


def _measure(rank: int, plan: TransferPlan, device: torch.device) -> dict:
    free_before = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    r = _Rank(rank, plan, device)
    out: dict = {"pairs": {}, "checked": {}, "device": _device(rank, device, r)}
    if free_before is not None:
        out["device"]["free_bytes"] = int(free_before)
    for src in range(plan.world):
        for dst in range(plan.world):
            if src == dst:
                continue
            times = {k: r.timed(lambda k=k: r.pair(src, dst, k), rank == dst) for k in sizes(plan.pages)}
            r.recv.zero_()
            r.pair(src, dst, plan.pages)  # untimed, onto a zeroed pool: every page must arrive
            if rank == dst:
                got = r.recv[r.orders[dst]].cpu()
                out["pairs"][f"{src}->{dst}"] = times
                out["checked"][f"{src}->{dst}"] = int((got == r.expected(src)).all(dim=1).sum())
    if plan.world > 2 or plan.device_type == "cpu":
        times = {k: r.timed(lambda k=k: r.all_to_one(k)[0], rank == 0) for k in sizes(plan.pages)}
        stages = r.all_to_one(plan.pages)[1]
        if rank == 0:
            out["all"] = times
            out["all_checked"] = sum(int((s.cpu() == r.expected(src)).all(dim=1).sum())
                                     for src, s in enumerate(stages, start=1))
    return out


def worker(rank: int, plan: TransferPlan, port: int, folder: str) -> None:
    """One rank: join the group, measure, write what this rank received, leave the group."""
    device = torch.device("cuda", rank) if plan.device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    bound = device if device.type == "cuda" else None  # NCCL knows its GPU from the start
    torch.distributed.init_process_group(plan.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=plan.world, timeout=timedelta(seconds=plan.timeout_s),
                                         device_id=bound)
    try:
        result = _measure(rank, plan, device)
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(plan: TransferPlan, target=worker) -> tuple[list[dict], bool]:
    """Start one process per rank, wait under the deadline, and always reap them: (each rank's
    results, whether every process exited)."""
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    folder = tempfile.mkdtemp(prefix="kvplan-peers-")
    context = mp.start_processes(target, args=(plan, _free_port(), folder), nprocs=plan.world, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + plan.timeout_s
    try:
        while not context.join(timeout=0.5):
            if time.monotonic() > deadline:
                raise TransferFailed(f"peer transfer did not finish in {plan.timeout_s:g} s; every process was "
                                     "stopped; raise --peer-timeout or lower --prefix")
        results = [json.loads((Path(folder) / f"rank{r}.json").read_text()) for r in range(plan.world)]
    except ProcessException as err:
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise TransferFailed(f"peer transfer failed on rank {err.error_index}: {last}; every process was stopped; "
                             "on GPUs, NCCL_DEBUG=INFO says why, or --device cpu runs it over gloo") from None
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join(5)
        shutil.rmtree(folder, ignore_errors=True)
    return results, all(process.exitcode == 0 for process in context.processes)


def _curve(name: str, method: str, times: dict, page_bytes: int, checked: int, ok: int) -> TransferCurve:
    points = [TransferPoint(pages=int(k), bytes=int(k) * page_bytes, ms=ms, gbps=gbps(int(k) * page_bytes, ms))
              for k, ms in times.items()]
    return curve(name, method, points, checked, ok)


def peer_copies(plan: TransferPlan) -> list[TransferCurve]:
    """cuda:i -> cuda:j with one copy_ (P2P where the driver allows it, else staged through the host)."""
    if plan.device_type != "cuda":
        return []
    curves = [_peer_copy(plan, i, j) for i in range(plan.world) for j in range(plan.world) if i != j]
    torch.cuda.empty_cache()
    return curves


def _peer_copy(plan: TransferPlan, i: int, j: int) -> TransferCurve:
    """One pair, cuda:i -> cuda:j; its two buffers are freed on return."""
    src = pattern(plan, i).to(f"cuda:{i}")
    dst = torch.zeros_like(src, device=f"cuda:{j}")

    def copy(k: int):
        def run():
            dst[:k].copy_(src[:k])
            torch.cuda.synchronize(i)
            torch.cuda.synchronize(j)
        return run

    times = {k: wall_ms(copy(k), warmup=WARMUP, runs=RUNS) for k in sizes(plan.pages)}
    ok = int((dst.cpu() == src.cpu()).all(dim=1).sum())
    p2p = torch.cuda.can_device_access_peer(i, j)
    return _curve(f"cuda:{i} -> cuda:{j}", "peer copy" + (" (P2P)" if p2p else " (via host)"),
                  times, plan.page_bytes, plan.pages, ok)


def topology(curves: list[TransferCurve], plan: TransferPlan, gpu: GpuSpec | None) -> list[str]:
    """What each pair's rate implies: faster than the host link can carry is NVLink."""
    if plan.device_type != "cuda":
        return [f"{c.name}: host memory over loopback TCP (gloo), {c.fitted_gbps:,.2f} GB/s" for c in curves]
    pcie = gpu.host_link.gbps_per_direction if gpu else None
    nvlink = gpu.scale_up.gbps_per_direction if gpu and gpu.scale_up else None
    lines = []
    for c in curves:
        rate = c.fitted_gbps
        if pcie and rate > 1.2 * pcie:
            kind = "NVLink" + (f", {rate / nvlink:.0%} of the database's {nvlink:,g} GB/s" if nvlink else "")
        else:
            kind = "PCIe or staged through the host" + (f" (PCIe x16 carries {pcie:,g} GB/s)" if pcie else "")
        lines.append(f"{c.name}: {rate:,.1f} GB/s: {kind}")
    return lines


def run_transfer(plan: TransferPlan, gpu: GpuSpec | None, target=worker) -> ProbeTransfer:
    ranks, teardown = launch(plan, target)
    pairs = [_curve(f"rank {src} -> rank {dst}", "send/recv", times, plan.page_bytes, plan.pages,
                    results["checked"][key])
             for results in ranks for key, times in results["pairs"].items()
             for src, dst in [map(int, key.split("->"))]]
    pairs.sort(key=lambda c: c.name)
    every = ranks[0].get("all")
    all_to_one = (_curve("all -> rank 0", "isend/irecv", every, (plan.world - 1) * plan.page_bytes,
                         (plan.world - 1) * plan.pages, ranks[0]["all_checked"]) if every else None)
    copies = peer_copies(plan)
    return ProbeTransfer(
        backend=plan.backend, world=plan.world, launcher="torch.multiprocessing (spawn), one process per device",
        devices=tuple(PeerDevice(**results["device"]) for results in ranks),
        page_bytes=plan.page_bytes, pages=plan.pages, pairs=tuple(pairs), all_to_one=all_to_one,
        peer_copies=tuple(copies), topology=tuple(topology(pairs, plan, gpu)),
        nvlink_gbps=gpu.scale_up.gbps_per_direction if gpu and gpu.scale_up else None,
        pcie_gbps=gpu.host_link.gbps_per_direction if gpu else None, teardown_ok=teardown)


def check_peer_room(plan: TransferPlan, host_spare: int, device_spare: int) -> None:
    """Each rank holds its pool, a received pool and a staging buffer (rank 0 one per sender); on
    the CPU every rank's sit in host memory, with the pages regenerated to check them."""
    pool = plan.pages * plan.page_bytes
    per_rank = (3 + max(plan.world - 2, 0)) * pool
    if plan.device_type == "cuda":
        need, spare, where = per_rank, device_spare, "each GPU"
    else:
        need, spare, where = plan.world * (per_rank + pool), host_spare, "host memory"
    if need > spare:
        raise InputError(f"--peers with --prefix of {plan.pages:,} pages needs {fmt_binary(need)} of {where}, more than "
                         f"the {fmt_binary(max(spare, 0))} it can spare; lower --prefix")


def transfer_checks(t: ProbeTransfer | None) -> list[ProbeCheck]:
    if t is None:
        return []
    curves = [*t.pairs, *([t.all_to_one] if t.all_to_one else []), *t.peer_copies]
    checked, arrived = sum(c.pages_checked for c in curves), sum(c.pages_ok for c in curves)
    pools = 2 * t.pages * t.page_bytes  # its own pages and the pages it receives
    return [
        ProbeCheck(check="peers: each rank's pools", predicted=f"{pools:,} B on each of {t.world}",
                   measured=", ".join(f"{d.pool_bytes:,} B" for d in t.devices),
                   verdict="pass" if all(d.pool_bytes == pools for d in t.devices) else "fail"),
        ProbeCheck(check=f"peers: every page arrives ({t.backend})", predicted=f"{checked:,} pages byte for byte",
                   measured=f"{arrived:,} pages", verdict="pass" if all(c.verified for c in curves) else "fail"),
        ProbeCheck(check="peers: processes torn down", predicted=f"{t.world} exited and joined",
                   measured="all" if t.teardown_ok else "some left running", verdict="pass" if t.teardown_ok else "fail"),
    ]
