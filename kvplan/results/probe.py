"""Results of `kvplan probe`."""

from __future__ import annotations

from kvplan.results.base import Result
from kvplan.results.offload import MeasuredHost
from kvplan.results.probe_offload import ProbeOffload, ProbeTransfer


class ProbeMemory(Result):
    """What the device has, and what the probe allowed itself."""

    total_bytes: int
    free_bytes: int
    nvml_total_bytes: int | None
    nvml_used_bytes: int | None
    margin_bytes: int
    cap_bytes: int | None
    weights_reserved_bytes: int
    activation_reserved_bytes: int
    budget_bytes: int


class ProbePool(Result):
    """The paged KV pool: the calculator's prediction against what was allocated."""

    page_bytes: int
    predicted_blocks: int
    predicted_bytes: int
    allocated_blocks: int
    allocated_bytes: int
    allocator_bytes: int | None
    allocator_predicted_bytes: int | None
    layers_allocated: int
    left_unused_bytes: int
    exact: bool
    note: str


class ProbePageTable(Result):
    batch: int  # the requests placed: --batch, or fewer where the pool holds fewer
    requested_batch: int = 0  # the --batch asked for (or its default)
    ctx_tokens: int
    held_tokens: int  # what a request keeps paged: its window where every cached layer is windowed
    page_size: int
    pages_used: int
    problems: tuple[str, ...]


class ProbeCorrectness(Result):
    impl: str
    dtype: str
    batch: int
    seq_lens: tuple[int, ...]
    q_heads: int
    kv_heads: int
    relative_error: float
    bound: float
    all_written: bool
    ok: bool


class ProbeBandwidth(Result):
    """Achieved bandwidth = bytes the kernel must move / median time, against the ceilings."""

    impl: str
    batch: int
    ctx_tokens: int
    bytes_moved: int
    kernel_ms: float
    kernel_gbps: float
    copy_gbps: float  # always measured: the device-copy ceiling
    sdpa_ms: float | None
    sdpa_gbps: float | None
    datasheet_gbps: float | None
    predicted_ms: float | None
    fraction_of_copy: float | None
    ratio_to_sdpa: float | None


class ProbeCheck(Result):
    check: str
    predicted: str
    measured: str
    verdict: str  # "pass", "fail" or "info"


class ProbeResult(Result):
    released: bool
    model: str
    device: str
    device_name: str
    torch_version: str
    triton_version: str | None
    nvml: bool
    kv_dtype: str
    memory: ProbeMemory
    pool: ProbePool
    page_table: ProbePageTable
    correctness: tuple[ProbeCorrectness, ...]
    bandwidth: ProbeBandwidth | None
    checks: tuple[ProbeCheck, ...]
    ok: bool
    offload: ProbeOffload | None = None  # --offload: reload and recompute, measured
    transfer: ProbeTransfer | None = None  # --peers: pages between devices

    @property
    def place(self) -> str:
        """Where the probe ran, as prose: 'the CPU', or 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
        return "the CPU" if self.device == "cpu" else f"{self.device} ({self.device_name})"

    def measured_host(self) -> MeasuredHost | None:
        """The link and prefill rate `kvplan offload --measured` reasons with; None without --offload."""
        if self.offload is None:
            return None
        o = self.offload
        return MeasuredHost(source=f"kvplan probe {self.model} on {self.place}",
                            reload_gbps=o.measured.link_gbps, reload_latency_us=o.measured.latency_us,
                            achieved_tflops=o.recompute.achieved_tflops, peak_tflops=o.recompute.peak_tflops,
                            on_cpu=self.device == "cpu")
