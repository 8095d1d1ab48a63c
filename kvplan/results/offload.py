"""Results of `kvplan offload`."""

from __future__ import annotations

from kvplan.results.base import Result, Step


class OffloadTier(Result):
    """One memory tier: reload the prefix over its link, against recomputing it."""

    tier: str
    description: str
    gbps: float
    latency_s: float
    load_s: float
    ratio: float  # recompute time / load time: > 1 means loading wins
    winner: str  # "load" or "recompute": the faster way back
    verdict: str  # in words, with the factor: "load, 12.2x faster"
    breakeven_gbps: float | None  # None: no bandwidth makes loading win, the link's latency alone is longer
    breakeven_prefix_tokens: int | None  # None: one side wins at every prefix


class ReloadVerdict(Result):
    """Reload a prefix or recompute it, on one basis: assumed (datasheet, MFU) or measured."""

    basis: str
    prefix_tokens: int
    kv_bytes: int
    link_gbps: float
    latency_us: float
    tflops: float  # the prefill rate: peak x MFU, or the achieved rate
    recompute_s: float
    load_s: float
    ratio: float  # recompute time / load time: > 1 means reloading wins
    breakeven_prefix_tokens: int | None  # the shortest prefix from which reloading wins; None: never


class MeasuredHost(Result):
    """What `kvplan offload --measured` takes from a probe's JSON."""

    source: str
    reload_gbps: float
    reload_latency_us: float
    achieved_tflops: float
    peak_tflops: float | None
    on_cpu: bool = False  # measured on the CPU: host memory copies and CPU arithmetic, not a GPU's


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
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
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
