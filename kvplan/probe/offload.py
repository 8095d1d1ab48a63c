"""`kvplan probe --offload`: reload an evicted prefix or recompute it, measured on this host.

The reload (kvplan.probe.reload) gives a link: the least-squares rate and latency of the faster way
to move the prefix's pages host -> device. The recompute (kvplan.probe.recompute) gives a prefill
rate. `kvplan offload`'s own model (kvplan.calc.offload) then turns each basis into a verdict: the
datasheet's (the GPU's host link, DEFAULT_MFU of its peak) and the measured one, side by side.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.offload import DEFAULT_MFU, Link, host_tier, reload_verdict
from kvplan.probe.device import device_info, host_memory, margin_bytes, spare_bytes
from kvplan.probe.pool import allocator_bytes, release_workspaces, tensor_bytes
from kvplan.probe.recompute import measure_recompute
from kvplan.probe.reload import ReloadLayout, check_room, measure, pools, reload_layout
from kvplan.results.probe import ProbeCheck
from kvplan.results.probe_offload import ProbeOffload, ProbeRecompute, ProbeReload, TransferCurve
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec


def host_spare() -> int:
    total, available = host_memory()
    return available - margin_bytes(total, False)


def plan_reload(model: ModelSpec, kv_dtype: str, block: int, prefix: int, device: torch.device) -> ReloadLayout:
    """The pools of the prefix, refused before anything is allocated when they do not fit."""
    layout = reload_layout(model, resolve_kv_format(model, kv_dtype), block, prefix)
    cuda = device.type == "cuda"
    check_room(layout, host_spare(), spare_bytes(device_info(device)) if cuda else 0, not cuda, prefix)
    return layout


def reload_link(curves: tuple[TransferCurve, ...] | list[TransferCurve]) -> tuple[TransferCurve, Link]:
    """The faster way host -> device at the whole pool, as a link (its fitted rate and latency)."""
    best = min((c for c in curves if c.name == "host -> device"), key=lambda c: c.points[-1].ms)
    return best, Link("measured", best.fitted_gbps, best.fitted_latency_us * 1e-6, f"host -> device, {best.method}")


def _verdicts(model: ModelSpec, kv_dtype: str, prefix: int, reload: ProbeReload, recompute: ProbeRecompute,
              gpu: GpuSpec | None, where: str):
    best, measured_link = reload_link(reload.curves)
    measured = reload_verdict(model, kv_dtype, prefix, measured_link, recompute.achieved_tflops * 1e12,
                              f"on {where}, {best.method} host -> device, prefill at "
                              f"{recompute.achieved_tflops:,.3g} TFLOPS achieved")
    peak = recompute.peak_tflops  # the datasheet's, known where the GPU is
    if gpu is None or peak is None:
        return None, measured
    tier = host_tier(gpu)
    predicted = reload_verdict(model, kv_dtype, prefix, tier, peak * 1e12 * DEFAULT_MFU,
                               f"kvplan offload's defaults: {tier.description} at {tier.gbps:g} GB/s, "
                               f"MFU {DEFAULT_MFU:g} of {peak:g} TFLOPS")
    return predicted, measured


def run_offload(model: ModelSpec, kv_dtype: str, block: int, prefix: int, device: torch.device, gpu: GpuSpec | None,
                seed: int, step: Callable[[str], None] = lambda _label: None) -> ProbeOffload:
    cuda = device.type == "cuda"
    layout = plan_reload(model, kv_dtype, block, prefix, device)
    release_workspaces(device)
    start = allocator_bytes(device)
    with pools(layout, device, seed) as p:
        allocated = sum(tensor_bytes(t) for t in p.host), sum(tensor_bytes(t) for t in p.device)
        curves = measure(p, layout, seed, step)
    step("recompute")
    spare = spare_bytes(device_info(device)) if cuda else host_spare()
    recompute = measure_recompute(model, prefix, device, spare, gpu if cuda else None, seed)
    release_workspaces(device)
    fmt = resolve_kv_format(model, kv_dtype)
    tier = host_tier(gpu) if gpu and cuda else None
    reload = ProbeReload(prefix_tokens=prefix, layers=len(layout.layers), pages=layout.pages,
                         host_bytes=allocated[0], device_bytes=allocated[1], predicted_bytes=layout.predicted_bytes,
                         pinned=cuda, curves=tuple(curves), datasheet_gbps=tier.gbps if tier else None,
                         datasheet_link=tier.description if tier else None, states_bytes=layout.states_bytes)
    predicted, measured = _verdicts(model, fmt.name, prefix, reload, recompute, gpu if cuda else None, str(device))
    return ProbeOffload(reload=reload, recompute=recompute, predicted=predicted, measured=measured,
                        released=allocator_bytes(device) == start)


def _verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


def offload_checks(o: ProbeOffload | None) -> list[ProbeCheck]:
    """Pass or fail: the pools hold the calculator's bytes, every page arrives, all is released.
    The rates themselves are figures, not verdicts: the sections show them."""
    if o is None:
        return []
    r = o.reload
    checked = sum(c.pages_checked for c in r.curves)
    arrived = sum(c.pages_ok for c in r.curves)
    checks = [
        ProbeCheck(check="reload pool bytes (each side)", predicted=f"{r.predicted_bytes:,} B ({r.layers} layers)",
                   measured=f"{r.host_bytes:,} B host" + (" (pinned)" if r.pinned else "") + f", {r.device_bytes:,} B device",
                   verdict=_verdict(r.host_bytes == r.device_bytes == r.predicted_bytes)),
        ProbeCheck(check="reload: every page arrives", predicted=f"{checked:,} pages byte for byte ({len(r.curves)} ways)",
                   measured=f"{arrived:,} pages", verdict=_verdict(all(c.verified for c in r.curves))),
    ]
    if not o.released:
        checks.append(ProbeCheck(check="reload and recompute released", predicted="allocator back where it was",
                                 measured="memory left allocated", verdict="fail"))
    return checks
