"""Frozen results. Calculators fill them with every intermediate term, so that the table, the
`--explain` derivation, `--json` and the tests all read the same numbers. Field names carry units."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Step(Result):
    """One line of a derivation: what is computed, the formula with numbers in, the value."""

    label: str
    formula: str
    value: str


class LayerKv(Result):
    """One layer group's share of the KV cache, on one GPU (one tensor-parallel rank)."""

    kind: str
    count: int
    description: str
    cached_tokens: int
    bytes_per_token_per_layer: int
    state_bytes_per_layer: int
    bytes_per_request_per_layer: int
    page_bytes_per_layer: int
    pages_per_request_per_layer: int
    bytes_per_token: int
    bytes_per_request: int
    paged_bytes_per_request: int


class MhaComparison(Result):
    """The same model with every KV head un-shared (MHA) and MLA decompressed."""

    bytes_per_token: int
    bytes_per_request: int
    ratio: float


class KvSize(Result):
    """KV cache of one model at one context. `*_per_gpu` is one tensor-parallel rank;
    `*_all_gpus` adds the ranks up (replicated heads and MLA latents counted on every rank)."""

    model: str
    display_name: str
    ctx_tokens: int
    batch: int
    tp: int
    block_size: int
    kv_dtype: str
    kv_dtype_note: str
    state_dtype: str
    max_context: int
    beyond_max_context: bool
    layers: tuple[LayerKv, ...]
    bytes_per_token_per_gpu: int
    bytes_per_token_all_gpus: int
    bytes_per_request_per_gpu: int
    bytes_per_request_all_gpus: int
    bytes_per_request_unsharded: int
    bytes_per_batch_per_gpu: int
    bytes_per_batch_all_gpus: int
    page_bytes_per_gpu: int
    pages_per_request: int
    paged_bytes_per_request_per_gpu: int
    paged_bytes_per_batch_per_gpu: int
    without_gqa: MhaComparison
    explain: tuple[Step, ...]


class MemoryBudget(Result):
    """One GPU's memory, term by term, and the KV pool an engine leaves in it."""

    engine: str
    engine_formula: str
    engine_source: str
    model: str
    gpu: str
    tp: int
    pp: int
    kv_dtype: str
    block_size: int
    util: float
    util_flag: str
    util_source: str
    total_bytes: int
    total_source: str
    weights_bytes: int
    weights_source: str
    activation_bytes: int
    activation_source: str
    overhead_bytes: int
    overhead_source: str
    kv_pool_bytes: int
    weights_fit: bool
    page_bytes: int
    kv_bytes_per_token: int
    num_blocks: int
    token_capacity: int
    explain: tuple[Step, ...]


class StrategyRow(Result):
    """Requests that fit under one allocation strategy, at average and at peak occupancy."""

    strategy: str
    rule: str
    reserved_tokens_avg: int
    bytes_per_request_avg: int
    concurrency_avg: int
    reserved_tokens_peak: int
    bytes_per_request_peak: int
    concurrency_peak: int


class Roofline(Result):
    """One decode step on one GPU at a batch: bytes over bandwidth vs FLOPs over peak."""

    batch: int
    context_tokens: int
    hbm_bandwidth_gbps: float
    peak_tflops: float
    peak_source: str
    weight_bytes: int
    kv_bytes: int
    flops: int
    memory_time_s: float
    compute_time_s: float
    step_time_s: float
    bound: str
    tokens_per_s: float
    compute_bound_batch: int


class BatchResult(Result):
    """`kvplan batch`: the budget, the strategies side by side, the engine's own figures."""

    model: str
    gpu: str
    in_tokens: int
    out_tokens: int
    avg_tokens: int
    peak_tokens: int
    max_len: int
    budget: MemoryBudget
    strategies: tuple[StrategyRow, ...]
    max_concurrency_at_max_len: float
    roofline: Roofline | None
    max_ctx_for_batch: int | None = None
    max_ctx_batch: int | None = None
    realistic_kv_pool_bytes: int | None = None
    realistic_paged: StrategyRow | None = None


class Knob(Result):
    """One change and what it gives: the concurrency at the workload after the change."""

    change: str
    flags: str
    kv_pool_bytes: int
    concurrency: int
    fits: bool


class FitResult(Result):
    """`kvplan fit`: the whole memory breakdown of one GPU, a verdict, and what would fit."""

    model: str
    gpu: str
    ctx_tokens: int
    budget: MemoryBudget
    bytes_per_request: int
    concurrency: int
    kv_used_bytes: int
    free_bytes: int
    fits: bool
    verdict: str
    knobs: tuple[Knob, ...]


class Deployment(Result):
    """One way to serve the load: replicas of tp x pp GPUs."""

    kv_dtype: str
    tp: int
    pp: int
    concurrency_per_replica: int
    replicas: int
    gpus: int
    nodes: int
    kv_pool_bytes_per_gpu: int
    bytes_per_request_per_gpu: int


class PlanResult(Result):
    """`kvplan plan`: the smallest deployment for N concurrent requests at a context, per KV dtype."""

    model: str
    gpu: str
    concurrency: int
    ctx_tokens: int
    gpus_per_node: int
    best: tuple[Deployment, ...]
    candidates: tuple[Deployment, ...]
    infeasible: tuple[str, ...]
    explain: tuple[Step, ...] = ()


class OverviewRow(Result):
    """`kvplan batch --gpu G` without a model: one model at the smallest TP that serves a request."""

    model: str
    params_total: int
    tp: int | None
    weights_bytes_per_gpu: int | None
    kv_pool_bytes_per_gpu: int | None
    concurrency_avg: int
    concurrency_peak: int
    note: str


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
    batch: int
    ctx_tokens: int
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
    copy_gbps: float | None
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


class OffloadTier(Result):
    """One memory tier: reload the prefix over its link, against recomputing it."""

    tier: str
    description: str
    gbps: float
    latency_s: float
    load_s: float
    ratio: float  # recompute time / load time: > 1 means loading wins
    verdict: str
    breakeven_gbps: float
    breakeven_prefix_tokens: int | None  # None: one side wins at every prefix


class OffloadCapacity(Result):
    tier: str
    budget_bytes: int
    tokens: int
    requests: int


class SweepRow(Result):
    prefix_tokens: int
    recompute_s: float
    load_s: dict[str, float]
    winner: dict[str, str]


class OffloadResult(Result):
    model: str
    gpu: str
    tp: int
    prefix_tokens: int
    kv_dtype: str
    kv_bytes: int
    params_per_token: int
    tflops: float
    tflops_source: str
    mfu: float
    linear_flops: int
    attention_flops: int
    recompute_linear_s: float
    recompute_attention_s: float
    recompute_s: float
    tiers: tuple[OffloadTier, ...]
    gpu_kv_tokens: int
    capacity: tuple[OffloadCapacity, ...]
    sweep: tuple[SweepRow, ...]
    explain: tuple[Step, ...]
