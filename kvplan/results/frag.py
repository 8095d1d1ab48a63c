"""Results of `kvplan frag`."""

from __future__ import annotations

from typing import Literal

from kvplan.results.base import Result

CapSource = Literal["given", "engine default", "none"]


class FragRow(Result):
    """One allocation strategy over the whole run: shares of (allocated + external) memory,
    time-averaged, and what the run cost."""

    strategy: str
    rule: str
    live_share: float
    reservation_share: float
    internal_share: float
    external_share: float
    utilization: float  # live / allocated
    peak_live_share: float  # the same split at the step the footprint (allocated + external) peaked
    peak_reservation_share: float
    peak_internal_share: float
    peak_external_share: float
    mean_concurrency: float
    peak_concurrency: int
    peak_allocated_bytes: int
    mean_wait_steps: float
    max_wait_steps: int
    peak_queue: int
    preemptions: int
    rejected: int
    finished: int
    copied_bytes: int
    saved_bytes_mean: float
    steps: int
    expected: str  # the analytic expectation, with the simulated figure it compares with
    expected_value: float
    simulated_value: float


class BlockSweepRow(Result):
    block_size: int
    internal_share: float
    internal_tokens_per_request: float
    expected_tokens_per_request: float  # (block - 1) / 2
    mean_concurrency: float


class FragResult(Result):
    model: str
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
    gpu: str | None  # None: a budget given in GiB (--kv-gib), not an engine's pool on a GPU
    workload: str
    requests: int
    seed: int
    kv_bytes_per_token: int
    budget_tokens: int
    budget_bytes: int
    block_size: int
    max_len: int
    shared_prefix: int
    mean_input: float
    mean_output: float
    rows: tuple[FragRow, ...]
    sweep: tuple[BlockSweepRow, ...]
    tp: int = 1
    pp: int = 1
    engine: str  # the engine whose pool was simulated
    paper_setting: bool = False  # the vLLM paper's Figure 2 setting: its shares are comparable
    # The scheduler's admission caps (None: no cap), and where each came from: "given", "engine
    # default" (the engine's for the GPU), or "none" (a --kv-gib budget has no GPU, so no default)
    max_num_seqs: int | None = None
    max_num_seqs_source: CapSource = "none"
    max_num_batched_tokens: int | None = None
    max_num_batched_tokens_source: CapSource = "none"
