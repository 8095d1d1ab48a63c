"""`kvplan probe --peers`: two processes over gloo on the CPU (NCCL between GPUs where present), every
page checked byte for byte, and every process reaped on every way out: success, a failing rank,
a rank that hangs."""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from kvplan.cli import main  # noqa: E402
from kvplan.errors import InputError  # noqa: E402
from kvplan.probe import transfer  # noqa: E402
from kvplan.probe.transfer import TransferFailed, TransferPlan, check_peer_room, peer_world, run_transfer  # noqa: E402
from kvplan.units import GIB, MIB  # noqa: E402

PLAN = TransferPlan("gloo", 2, "cpu", pages=8, page_bytes=4096, seed=0, timeout_s=120)


def scratch() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("kvplan-peers-*")}


def test_two_processes_move_every_page():
    before = scratch()
    t = run_transfer(PLAN, None)
    assert [c.name for c in t.pairs] == ["rank 0 -> rank 1", "rank 1 -> rank 0"]
    for c in t.pairs:
        assert [p.pages for p in c.points] == [1, 2, 4, 8]
        assert [p.bytes for p in c.points] == [4096, 8192, 16_384, 32_768]
        assert c.pages_checked == 8 and c.verified and c.fitted_gbps > 0
    # all to rank 0: one sender here, 8 pages of 4,096 B
    assert t.all_to_one.verified and t.all_to_one.pages_checked == 8 and t.all_to_one.points[-1].bytes == 32_768
    assert t.teardown_ok and t.peer_copies == () and len(t.topology) == 2
    # each rank holds its 8 pages and the 8 it receives: 2 x 8 x 4,096 B
    assert [(d.rank, d.pool_bytes) for d in t.devices] == [(0, 65_536), (1, 65_536)]
    assert multiprocessing.active_children() == [] and scratch() == before


def test_the_receiver_checks_the_senders_pages():
    # what rank 1 expects from rank 0 is rank 0's pool, regenerated from its seed, in its page order
    a, b = transfer.pattern(PLAN, 0), transfer.pattern(PLAN, 0)
    assert torch.equal(a, b) and not torch.equal(a, transfer.pattern(PLAN, 1))
    order = transfer.order(PLAN, 0)
    assert sorted(order.tolist()) == list(range(8)) and order.tolist() != list(range(8))


def failing_worker(rank, plan, port, folder):
    if rank == 1:
        raise RuntimeError("injected failure")
    transfer.worker(rank, plan, port, folder)


def hanging_worker(rank, plan, port, folder):
    if rank == 1:
        time.sleep(600)
    transfer.worker(rank, plan, port, folder)


def test_a_failing_rank_stops_every_process():
    before = scratch()
    with pytest.raises(TransferFailed, match="failed on rank 1: RuntimeError: injected failure"):
        run_transfer(PLAN, None, target=failing_worker)
    assert multiprocessing.active_children() == [] and scratch() == before


def test_a_hanging_rank_meets_the_deadline():
    before = scratch()
    plan = TransferPlan("gloo", 2, "cpu", pages=8, page_bytes=4096, seed=0, timeout_s=4)
    start = time.monotonic()
    with pytest.raises(TransferFailed, match="did not finish in 4 s"):
        run_transfer(plan, None, target=hanging_worker)
    assert time.monotonic() - start < 60  # not the 600 s the rank would sleep
    assert multiprocessing.active_children() == [] and scratch() == before


def test_peer_world():
    assert peer_world(torch.device("cpu")) == ("gloo", 2)


def test_a_single_gpu_host_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match="--peers needs two GPUs or more: this host has 1"):
        peer_world(torch.device("cuda", 0))


def test_peer_room():
    # each rank: its pool, the received pool and a staging buffer; on the CPU all ranks in host
    # memory, with the pool regenerated to check: 2 x (3 + 1) x 8 x 4,096 B = 262,144 B
    check_peer_room(PLAN, host_spare=262_144, device_spare=0)
    with pytest.raises(InputError, match="lower --prefix"):
        check_peer_room(PLAN, host_spare=262_143, device_spare=0)
    big = TransferPlan("nccl", 8, "cuda", pages=65_536, page_bytes=MIB, seed=0, timeout_s=60)
    with pytest.raises(InputError, match="of each GPU"):  # (3 + 6) x 64 GiB on each of 8 GPUs
        check_peer_room(big, host_spare=0, device_spare=500 * GIB)


def test_probe_peers_cli(capsys):
    assert main(["probe", "smollm2-135m", "--device", "cpu", "--ctx", "64", "--batch", "2", "--max-gib", "0.02",
                 "--impl", "torch", "--peers", "--prefix", "64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    t = data["transfer"]
    assert t["backend"] == "gloo" and t["world"] == 2 and t["teardown_ok"]
    # a page: 16 tokens of all 30 layers, 16 x 30 x 2 x 3 x 64 x 2 B = 368,640 B; 64 tokens = 4 pages
    assert (t["page_bytes"], t["pages"]) == (368_640, 4)
    checks = {c["check"]: c["verdict"] for c in data["checks"]}
    assert checks["peers: every page arrives (gloo)"] == checks["peers: processes torn down"] == "pass"
    assert checks["peers: each rank's pools"] == "pass"
    assert multiprocessing.active_children() == []


def test_probe_peers_on_one_gpu_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main(["probe", "smollm2-135m", "--device", "cuda:0", "--peers"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --peers needs two GPUs or more") and captured.err.count("\n") == 1
    assert captured.out == "" and multiprocessing.active_children() == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_nccl_between_gpus(catalog):
    from kvplan.probe.device import database_gpu_name

    backend, world = peer_world(torch.device("cuda", 0))
    plan = TransferPlan(backend, world, "cuda", pages=256, page_bytes=2 * MIB, seed=0, timeout_s=300)
    gpu = catalog.gpus.specs.get(database_gpu_name(torch.cuda.get_device_name(0)) or "")
    t = run_transfer(plan, gpu)
    assert backend == "nccl" and t.teardown_ok and all(c.verified for c in (*t.pairs, *t.peer_copies))
    assert len(t.pairs) == world * (world - 1) == len(t.peer_copies)


def test_the_nvlink_figure_is_per_direction(catalog):
    # the database gives NVLink 4 on an H100 SXM as 900 GB/s both ways together: 450 GB/s each way
    assert catalog.gpu("h100").scale_up.gbps_per_direction == 900 / 2
