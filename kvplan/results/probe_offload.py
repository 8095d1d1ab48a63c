"""Results of `kvplan probe --offload` and `--peers`: copies timed on this host, and what they imply.

A curve is one way of moving pages (host to device through a staging buffer, one copy per page,
rank 0 to rank 1 over NCCL or gloo), timed at growing sizes. Its fit, time = latency + bytes /
bandwidth by least squares over every size, gives the link `kvplan offload` reasons with.
"""

from __future__ import annotations

from kvplan.results.base import Result
from kvplan.results.offload import ReloadVerdict


class TransferPoint(Result):
    pages: int
    bytes: int
    ms: float  # median wall time, synchronized, from the first byte read to the last page in place
    gbps: float  # bytes / time, decimal GB/s


class TransferCurve(Result):
    name: str  # "host -> device", "device -> host", "rank 0 -> rank 1", "all -> rank 0", "cuda:0 -> cuda:1"
    method: str  # "gathered" (through a staging buffer), "per page", "send/recv", "peer copy"
    points: tuple[TransferPoint, ...]
    fitted_gbps: float  # the slope of the least-squares fit, decimal GB/s
    fitted_latency_us: float  # its intercept: the fixed cost of one transfer
    pages_checked: int  # pages compared byte for byte after one untimed copy of the largest size
    pages_ok: int

    @property
    def peak_gbps(self) -> float:
        return max(p.gbps for p in self.points)

    @property
    def verified(self) -> bool:
        return self.pages_checked > 0 and self.pages_ok == self.pages_checked


class ProbeReload(Result):
    """A pinned host pool laid out like the device pool, and the prefix's pages copied both ways."""

    prefix_tokens: int
    layers: int  # tensors on each side: one per paged layer
    pages: int  # pages of the prefix in its longest layer: the sweep's largest size
    host_bytes: int  # allocated for the pool on each side (the staging buffers as much again)
    device_bytes: int
    predicted_bytes: int  # the calculator's paged bytes of the prefix, less its constant states
    pinned: bool  # page-locked host memory (CUDA only; the CPU has no DMA to pin for)
    curves: tuple[TransferCurve, ...]
    datasheet_gbps: float | None  # the host link `kvplan offload` assumes for this GPU
    datasheet_link: str | None
    states_bytes: int  # constant (Mamba) state of one request: not paged, left out of the copies

    def datasheet_share(self, c: TransferCurve) -> float | None:
        """The rate at the whole pool as a share of the host link `kvplan offload` assumes."""
        return c.points[-1].gbps / self.datasheet_gbps if self.datasheet_gbps else None


class ProbeRecompute(Result):
    """A prefill at the model's shapes on a subset of its layers, scaled to the whole model."""

    prefix_tokens: int
    dtype: str
    layers_timed: int
    layers_total: int
    shapes: str  # what one timed layer computes
    flops_timed: int  # model FLOPs of the timed layers (causal attention counted as p(p+1)/2 pairs)
    ms: float
    achieved_tflops: float
    peak_tflops: float | None  # the GPU's dense datasheet peak in this dtype; None on the CPU
    peak_source: str | None
    mfu: float | None
    assumed_mfu: float  # what `kvplan offload` assumes (DEFAULT_MFU)


class PeerDevice(Result):
    """One rank's device: its memory when the rank started, and the bytes of its two pools."""

    rank: int
    device: str
    name: str
    total_bytes: int
    free_bytes: int
    pool_bytes: int


class ProbeTransfer(Result):
    """Pages between processes, one per device (torch.distributed), and direct peer copies."""

    backend: str  # nccl or gloo
    world: int
    launcher: str
    devices: tuple[PeerDevice, ...]  # every rank's, in rank order
    page_bytes: int
    pages: int
    pairs: tuple[TransferCurve, ...]  # every ordered pair
    all_to_one: TransferCurve | None
    peer_copies: tuple[TransferCurve, ...]
    topology: tuple[str, ...]  # one line a pair: what its rate implies
    nvlink_gbps: float | None  # the database's NVLink figure per direction, for this GPU
    pcie_gbps: float | None
    teardown_ok: bool  # every process exited and joined, nothing left running


class ProbeOffload(Result):
    reload: ProbeReload
    recompute: ProbeRecompute
    predicted: ReloadVerdict | None  # datasheet link and DEFAULT_MFU; None on the CPU (no datasheet)
    measured: ReloadVerdict
    released: bool
