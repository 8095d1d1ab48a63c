"""`kvplan offload`: reload an evicted KV prefix, or recompute it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional, cast

import typer

from kvplan.cli.app import (
    DebugOpt, ExplainOpt, GpuOpt, JsonOpt, KvDtypeOpt, OfflineOpt, SpecsOpt, app, catalog, console, err_console,
    handle_errors,
    read_option,
)
from kvplan import bounds


@app.command()
@handle_errors
def offload(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id.")],
    gpu: GpuOpt,
    prefix: Annotated[int, read_option(bounds.tokens, "--prefix", "-p", metavar="TOKENS", help="Evicted prefix length.")] = 4096,
    links: Annotated[Optional[str], read_option(
        bounds.names, "--link", metavar="LIST", help="Tiers, comma-separated: pcie3, pcie4, pcie5, pcie6, nvlink-c2c, nvme, rdma (default: all).")] = None,
    link_gbps: Annotated[Optional[float], read_option(bounds.gbps, "--link-gbps", metavar="GB/s", help="A custom link, GB/s per direction.")] = None,
    latency_us: Annotated[Optional[float], read_option(bounds.latency_us, "--latency-us", metavar="US", help="Per-transfer latency (default: each link's).")] = None,
    mfu: Annotated[float, read_option(bounds.fraction, "--mfu", metavar="FRACTION", help="Prefill model FLOPs utilization, in (0, 1].")] = 0.5,
    tflops: Annotated[Optional[float], read_option(bounds.tflops, "--tflops", metavar="TFLOPS", help="Peak TFLOPS (default: the GPU's dense BF16).")] = None,
    params: Annotated[Optional[float], read_option(bounds.params, "--params", metavar="N", help="Parameters per token (default: active params).")] = None,
    no_attention: Annotated[bool, typer.Option("--no-attention", help="Leave out the attention term (as the course notes' example does).")] = False,
    kv_dtype: KvDtypeOpt = "auto",
    tp: Annotated[int, read_option(bounds.gpus, "--tp", metavar="N", help="GPUs sharing the prefill, each loading its KV shard.")] = 1,
    host_gib: Annotated[Optional[float], read_option(bounds.gib, "--host-gib", metavar="GiB", help="Host memory for offloaded KV, GiB.")] = None,
    nvme_gib: Annotated[Optional[float], read_option(bounds.gib, "--nvme-gib", metavar="GiB", help="NVMe space for offloaded KV, GiB.")] = None,
    sweep_prefix: Annotated[bool, typer.Option("--sweep-prefix", help="Where the verdict flips as prefixes grow.")] = False,
    measured: Annotated[Optional[Path], typer.Option("--measured", metavar="PROBE.json", help="Use the reload link and prefill rate that `kvplan probe --offload --json` measured.")] = None,
    explain: ExplainOpt = False, offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """Reload an evicted KV prefix over each memory tier, or recompute it? Times, ratios, break-evens.

    Example: kvplan offload llama3-8b --gpu a100 --prefix 4096 --link pcie4,nvme --host-gib 512
    """
    from kvplan.calc.offload import LINKS, OffloadInputs
    from kvplan.calc.offload import offload as offload_
    from kvplan.render.base import print_json
    from kvplan.render.offload import render_offload

    # typer reads --link as one string (a tuple annotation would make it take several values); the
    # parser, bounds.names, returns the tuple of names
    chosen = cast(Optional[tuple[str, ...]], links) or tuple(LINKS)
    cat = catalog(specs)
    spec = cat.model(model)
    inputs = OffloadInputs(kv_dtype=kv_dtype, mfu=mfu, tflops=tflops, params=None if params is None else int(params),
                           attention=not no_attention, latency_us=latency_us, links=chosen, link_gbps=link_gbps,
                           host_gib=host_gib, nvme_gib=nvme_gib, sweep=sweep_prefix, tp=tp,
                           measured=read_measured(measured, spec.name) if measured else None)
    result = offload_(spec, cat.gpu(gpu), prefix, inputs)
    if inputs.measured and inputs.measured.on_cpu:
        err_console.print(f"note: --measured {measured} ran on the CPU: its reload rate is a host memory copy and its "
                          f"prefill rate CPU arithmetic, not {result.gpu}'s link and tensor cores; run the probe on "
                          "the GPU for figures that apply to it", markup=False)
    print_json(console, result) if json else render_offload(console, result, explain=explain)


def read_measured(path: Path, model: str):
    """The measured host from a probe's JSON of this model: one line naming the file and the fix otherwise."""
    import json

    from pydantic import ValidationError

    from kvplan.errors import InputError
    from kvplan.results.probe import ProbeResult
    from kvplan.specs.jsonio import loads
    from kvplan.specs.yamlio import read_text

    fix = f"write it with kvplan probe {model} --offload --json > FILE"
    try:
        text = read_text(path, "probe JSON", InputError)
    except InputError as err:
        raise InputError(f"--measured {err}; {fix}") from None
    try:
        probe = ProbeResult.model_validate(loads(text, f"--measured {path}", InputError))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"--measured {path}: not JSON; {fix}") from None
    except ValidationError as err:
        where = ".".join(str(part) for part in err.errors()[0]["loc"]) or "the top level"
        raise InputError(f"--measured {path}: not the JSON of kvplan probe ({where}: {err.errors()[0]['msg']}); {fix}") from None
    host = probe.measured_host()
    if host is None:
        raise InputError(f"--measured {path}: the probe ran without --offload, so it measured no reload; {fix}")
    if probe.model != model:  # the prefill rate depends on the model's shapes
        raise InputError(f"--measured {path}: the probe measured {probe.model}, not {model}; {fix}")
    for key, number, read in (("measured.link_gbps", host.reload_gbps, bounds.gbps),
                             ("measured.latency_us", host.reload_latency_us, bounds.latency_us),
                             ("recompute.achieved_tflops", host.achieved_tflops, bounds.tflops),
                             ("recompute.peak_tflops", host.peak_tflops or 1.0, bounds.tflops)):
        read(number, f"--measured {path}: offload.{key}")
    return host
