"""Offload vs recompute: reload an evicted KV prefix of p tokens over a link, or compute it again?

    T_recompute = (2 x p x P_active + attention FLOPs of a causal prefill) / (peak x MFU)
    attention   = sum over layers of (FLOPs per query-key pair) x (pairs: p(p+1)/2, windowed)
    T_load      = KV bytes of the prefix / link bandwidth + per-transfer latency

Source note 001 keeps only the first term of T_recompute; the attention term grows with p squared
and dominates long prefixes. KV bytes come from the spec (GQA, MLA latents, windows, KV dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan import bounds
from kvplan.bounds import MAX_TOKENS
from kvplan.calc.kv import request_bytes, resolve_kv_format
from kvplan.calc.search import largest_true
from kvplan.errors import InputError
from kvplan.results.base import Step
from kvplan.results.offload import MeasuredHost, OffloadCapacity, OffloadResult, OffloadTier, ReloadVerdict, SweepRow
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import GIB

GB = 1e9


@dataclass(frozen=True)
class Link:
    name: str
    gbps: float  # decimal GB/s, one direction
    latency_s: float
    description: str


# PCIe x16 per direction: 16, 32, 64, 128 GB/s for generations 3 to 6 (the GPU database's convention).
LINKS = {
    "pcie3": Link("pcie3", 16, 10e-6, "PCIe 3.0 x16, host memory"),
    "pcie4": Link("pcie4", 32, 10e-6, "PCIe 4.0 x16, host memory"),
    "pcie5": Link("pcie5", 64, 10e-6, "PCIe 5.0 x16, host memory"),
    "pcie6": Link("pcie6", 128, 10e-6, "PCIe 6.0 x16, host memory"),
    "nvlink-c2c": Link("nvlink-c2c", 450, 5e-6, "NVLink-C2C to Grace memory (GH200, GB200)"),
    "nvme": Link("nvme", 7, 100e-6, "one PCIe 4.0 NVMe drive, 7 GB/s sequential read (Samsung 990 Pro class)"),
    "rdma": Link("rdma", 50, 5e-6, "400 Gb/s RDMA (InfiniBand NDR, RoCE) to a remote KV store"),
}
# Prefill of long prompts is compute-bound; engines reach roughly half the dense peak on H100 and
# A100 (FlashAttention-2 reports up to 73% for the attention kernel alone): use --mfu for yours.
DEFAULT_MFU = 0.5


def link(name: str) -> Link:
    try:
        return LINKS[name.lower()]
    except KeyError:
        raise InputError(f"unknown link '{name}'; choose from {', '.join(LINKS)}, or give {{link_gbps}}",
                         "link_gbps") from None


def host_tier(gpu: GpuSpec) -> Link:
    """The link `offload` assumes between this GPU and its host's memory: its PCIe generation (the
    database's per-direction figure) or NVLink-C2C."""
    h = gpu.host_link
    base = LINKS["nvlink-c2c" if h.kind == "nvlink-c2c" else f"pcie{h.generation}"]
    return Link(base.name, h.gbps_per_direction, base.latency_s, base.description)


def prefill_flops(model: ModelSpec, prefix: int, params: int, attention: bool = True) -> tuple[int, int]:
    """(2 x p x params, attention FLOPs of a causal prefill of p tokens)."""
    attn = sum(g.count * g.prefill_flops_per_pair(model.num_attention_heads) * g.attended_pairs(prefix)
               for g in model.layers) if attention else 0
    return 2 * prefix * params, attn


@dataclass(frozen=True)
class OffloadInputs:
    kv_dtype: str = "auto"
    mfu: float = DEFAULT_MFU
    tflops: float | None = None
    params: int | None = None  # parameters doing work per token; default: the spec's active count
    attention: bool = True
    latency_us: float | None = None  # None: each link's own
    links: tuple[str, ...] = tuple(LINKS)
    link_gbps: float | None = None
    host_gib: float | None = None
    nvme_gib: float | None = None
    sweep: bool = False
    tp: int = 1  # GPUs sharing the prefill, each loading its own KV shard over its own link
    measured: MeasuredHost | None = None  # a probe's reload link and prefill rate, from --measured

    def check(self) -> None:
        if not 0 < self.mfu <= 1:
            raise InputError(f"{{mfu}} {self.mfu} is outside (0, 1]; a typical prefill reaches 0.4-0.6", "mfu")
        if self.measured and self.tflops:
            raise InputError("{measured} takes the prefill rate from the probe; drop {tflops} (or {measured})",
                             "measured", "tflops")
        if self.tp < 1:
            raise InputError(f"{{tp}} {self.tp} must be at least 1 (the GPUs sharing the prefill)", "tp")
        for name, value in (("link_gbps", self.link_gbps), ("tflops", self.tflops), ("params", self.params)):
            if value is not None and value <= 0:
                raise InputError(f"{{{name}}} must be positive", name)
        for name, value in (("latency_us", self.latency_us), ("host_gib", self.host_gib), ("nvme_gib", self.nvme_gib)):
            if value is not None and value < 0:
                raise InputError(f"{{{name}}} must not be negative", name)


def _rate(gpu: GpuSpec, inputs: OffloadInputs) -> tuple[float, float, str]:
    """(peak TFLOPS, MFU, where they come from). Measured: the probe's achieved rate, as a fraction
    of the peak the probe knew (the achieved rate itself, MFU 1, where it ran without one)."""
    m = inputs.measured
    if m:
        if m.peak_tflops:
            return m.peak_tflops, m.achieved_tflops / m.peak_tflops, f"measured by {m.source}"
        return m.achieved_tflops, 1.0, f"the achieved rate measured by {m.source} (no datasheet peak)"
    if inputs.tflops:
        return inputs.tflops, inputs.mfu, "the rate given"
    peak, source = gpu.dense_tflops()
    return peak, inputs.mfu, source


def _links(inputs: OffloadInputs, gpu: GpuSpec) -> list[Link]:
    chosen = [link(name) for name in inputs.links]
    if inputs.link_gbps:
        chosen = [Link("custom", inputs.link_gbps, 10e-6, f"the link given, {inputs.link_gbps:g} GB/s")]
    if inputs.measured:  # the measured link first, then the tiers asked for (default: this GPU's own)
        m = inputs.measured
        chosen = [Link("measured", m.reload_gbps, m.reload_latency_us * 1e-6, f"host -> device, {m.source}"),
                  *(chosen if inputs.links != tuple(LINKS) or inputs.link_gbps else [host_tier(gpu)])]
    if inputs.latency_us is not None:
        chosen = [Link(tier.name, tier.gbps, inputs.latency_us * 1e-6, tier.description) for tier in chosen]
    return chosen


class _PrefixTimes:
    """Times for one model, GPU and settings, as functions of the prefix. Under TP the prefill is
    shared by tp GPUs and each loads its own KV shard (an MLA latent whole) over its own link."""

    def __init__(self, model: ModelSpec, fmt, params: int, flops_per_s: float, attention: bool, tp: int):
        self.model, self.fmt, self.params, self.attention, self.tp = model, fmt, params, attention, tp
        self.rate = flops_per_s * tp

    def kv_bytes(self, p: int) -> int:
        return request_bytes(self.model, p, self.fmt, self.tp)

    def recompute_s(self, p: int) -> float:
        return sum(prefill_flops(self.model, p, self.params, self.attention)) / self.rate

    def load_s(self, p: int, tier: Link) -> float:
        return self.kv_bytes(p) / (tier.gbps * GB) + tier.latency_s

    def breakeven_prefix(self, tier: Link) -> int | None:
        """The shortest prefix from which loading is at least as fast (recompute - load is convex
        in p and negative at p = 0 when the link has latency, so the set is [p*, infinity))."""
        slower = largest_true(lambda p: self.recompute_s(p) < self.load_s(p, tier), 1, MAX_TOKENS)
        return slower + 1 if slower < MAX_TOKENS else None


def _tier(m: _PrefixTimes, p: int, tier: Link, recompute: float) -> OffloadTier:
    load = m.load_s(p, tier)
    ratio = recompute / load
    verdict = (f"load, {ratio:,.1f}x faster" if ratio >= 1 else f"recompute, {1 / ratio:,.1f}x faster")
    spare = recompute - tier.latency_s
    breakeven = m.kv_bytes(p) / spare / GB if spare > 0 else None  # the latency alone outlasts recompute
    return OffloadTier(tier=tier.name, description=tier.description, gbps=tier.gbps, latency_s=tier.latency_s, load_s=load,
                       ratio=ratio, winner="load" if ratio >= 1 else "recompute", verdict=verdict,
                       breakeven_gbps=breakeven,
                       breakeven_prefix_tokens=m.breakeven_prefix(tier))


def _sweep_prefixes(model: ModelSpec) -> list[int]:
    prefixes, p = [], 16
    while p <= model.max_context:
        prefixes.append(p)
        p *= 2
    return prefixes


def _capacity(model: ModelSpec, fmt, p: int, inputs: OffloadInputs) -> list[OffloadCapacity]:
    """A host or NVMe tier keeps one copy of each prefix, unsharded."""
    per_token = request_bytes(model, 1, fmt)
    rows = []
    for tier, gib in (("host memory", inputs.host_gib), ("nvme", inputs.nvme_gib)):
        if gib:
            budget = round(gib * GIB)
            tokens = budget // per_token
            rows.append(OffloadCapacity(tier=tier, budget_bytes=budget, tokens=tokens,
                                        requests=budget // request_bytes(model, p, fmt)))
    return rows


def offload(model: ModelSpec, gpu: GpuSpec, prefix: int, inputs: OffloadInputs = OffloadInputs()) -> OffloadResult:
    inputs.check()
    bounds.tokens(prefix, "prefix")
    fmt = resolve_kv_format(model, inputs.kv_dtype)
    peak, mfu, source = _rate(gpu, inputs)
    params = inputs.params or model.params_per_token
    m = _PrefixTimes(model, fmt, params, peak * 1e12 * mfu, inputs.attention, inputs.tp)
    linear, attention = prefill_flops(model, prefix, params, inputs.attention)
    recompute = (linear + attention) / m.rate
    tiers = tuple(_tier(m, prefix, tier, recompute) for tier in _links(inputs, gpu))
    sweep = tuple(SweepRow(prefix_tokens=p, recompute_s=m.recompute_s(p),
                           load_s={tier.name: m.load_s(p, tier) for tier in _links(inputs, gpu)},
                           winner={tier.name: "load" if m.recompute_s(p) >= m.load_s(p, tier) else "recompute"
                                   for tier in _links(inputs, gpu)})
                  for p in _sweep_prefixes(model)) if inputs.sweep else ()
    budget = memory_budget(model, gpu, BudgetInputs(kv_dtype=inputs.kv_dtype, tp=inputs.tp))
    return OffloadResult(
        model_origin=model.origin,
        model=model.name, gpu=gpu.name, tp=inputs.tp, prefix_tokens=prefix, kv_dtype=fmt.name, kv_bytes=m.kv_bytes(prefix),
        params_per_token=params, tflops=peak, tflops_source=source, mfu=mfu, linear_flops=linear,
        attention_flops=attention, recompute_linear_s=linear / m.rate, recompute_attention_s=attention / m.rate,
        recompute_s=recompute, tiers=tiers, gpu_kv_tokens=budget.token_capacity,
        capacity=tuple(_capacity(model, fmt, prefix, inputs)), sweep=sweep,
        explain=tuple(_explain(model, prefix, params, peak, mfu, linear, attention, recompute, m, tiers)),
    )


def _explain(model, p, params, peak, mfu, linear, attention, recompute, m, tiers) -> list[Step]:
    steps = [
        Step(label="recompute, weights", formula=f"2 x {p:,} tokens x {params:,} params", value=f"{linear:,} FLOP"),
        Step(label="recompute, attention",
             formula=" + ".join(f"{g.count} x {g.prefill_flops_per_pair(model.num_attention_heads):,} x "
                                f"{g.attended_pairs(p):,} pairs" for g in model.layers if g.attended_pairs(p))
             or "no attention term", value=f"{attention:,} FLOP"),
        Step(label="recompute time", formula=f"{linear + attention:,} FLOP / ({m.tp} GPU x {peak:g} TFLOPS x {mfu:g} MFU)",
             value=f"{recompute * 1e3:,.3f} ms"),
        Step(label="KV bytes of the prefix, per GPU", formula=f"request bytes at {p:,} tokens ({m.fmt.name}, TP {m.tp})",
             value=f"{m.kv_bytes(p):,} B"),
    ]
    for t in tiers:
        steps.append(Step(label=f"load over {t.tier}",
                          formula=f"{m.kv_bytes(p):,} B / {t.gbps:g} GB/s + {t.latency_s * 1e6:g} us",
                          value=f"{t.load_s * 1e3:,.3f} ms"))
    return steps


def reload_verdict(model: ModelSpec, kv_dtype: str, prefix: int, tier: Link, flops_per_s: float, basis: str) -> ReloadVerdict:
    """Reload `prefix` tokens over tier, or recompute them at flops_per_s: one GPU, attention counted."""
    fmt = resolve_kv_format(model, kv_dtype)
    m = _PrefixTimes(model, fmt, model.params_per_token, flops_per_s, True, 1)
    recompute, load = m.recompute_s(prefix), m.load_s(prefix, tier)
    return ReloadVerdict(basis=basis, prefix_tokens=prefix, kv_bytes=m.kv_bytes(prefix), link_gbps=tier.gbps,
                         latency_us=tier.latency_s * 1e6, tflops=flops_per_s / 1e12, recompute_s=recompute,
                         load_s=load, ratio=recompute / load, breakeven_prefix_tokens=m.breakeven_prefix(tier))
