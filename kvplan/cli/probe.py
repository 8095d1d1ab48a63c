"""`kvplan probe`: allocate paged KV on this device and check the plan against it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan.cli.app import (
    DebugOpt, JsonOpt, KvDtypeOpt, OfflineOpt, SpecsOpt, app, catalog, console, err_console, handle_errors, read_option,
)
from kvplan import bounds
from kvplan.errors import InputError

SECTIONS = "Offload and peers"


@app.command()
@handle_errors
def probe(
    model: Annotated[str, typer.Argument(help="Model whose KV layout to allocate and attend over.")],
    device: Annotated[Optional[str], typer.Option("--device", help="cuda:N (default when CUDA is present) or cpu.")] = None,
    ctx: Annotated[Optional[int], read_option(bounds.tokens, "--ctx", metavar="TOKENS", help="Tokens per request (default 4096 on CUDA, 1024 on CPU).")] = None,
    batch: Annotated[Optional[int], read_option(bounds.requests, "--batch", "-b", metavar="N", help="Requests (default 64 on CUDA, 4 on CPU).")] = None,
    kv_dtype: KvDtypeOpt = "auto",
    block_size: Annotated[int, read_option(bounds.block_size, "--block-size", metavar="TOKENS", help="Tokens per page.")] = 16,
    util: Annotated[float, read_option(bounds.fraction, "--util", metavar="FRACTION", help="Fraction of the free memory (less a margin) to use.")] = 0.9,
    max_gib: Annotated[Optional[float], read_option(bounds.gib, "--max-gib", metavar="GiB", help="Cap on what the probe takes (GiB; CPU default 1).")] = None,
    with_weights: Annotated[bool, typer.Option("--with-weights", help="First reserve the weights and activations.")] = False,
    impl: Annotated[str, typer.Option("--impl", help="Attention kernel: auto (Triton on CUDA), triton, torch.")] = "auto",
    seed: Annotated[int, read_option(bounds.seed, "--seed", metavar="N", help="Random seed for data and page order.")] = 0,
    offload: Annotated[bool, typer.Option("--offload", help="Also reload a prefix host <-> device and recompute it: measured GB/s, MFU, verdict.", rich_help_panel=SECTIONS)] = False,
    peers: Annotated[bool, typer.Option("--peers", help="Also move pages between every pair of GPUs (two CPU processes over gloo with --device cpu).", rich_help_panel=SECTIONS)] = False,
    prefix: Annotated[Optional[int], read_option(bounds.tokens, "--prefix", "-p", metavar="TOKENS", help="Prefix to reload, recompute and move (default 4096 on CUDA, 256 on CPU).", rich_help_panel=SECTIONS)] = None,
    peer_timeout: Annotated[Optional[float], read_option(bounds.seconds, "--peer-timeout", metavar="SECONDS", help="Deadline for the whole peer transfer (default 300).", rich_help_panel=SECTIONS)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", help="Draw GB/s against transfer size (.png/.svg).", rich_help_panel=SECTIONS)] = None,
    offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """Allocate paged KV on this device, run paged decode attention, and check the plan against it.

    Example: kvplan probe llama3-8b --device cuda:0 --ctx 4096 --batch 64 --offload --plot gbps.png
    """
    from kvplan.probe import require_torch

    if prefix is not None and not (offload or peers):
        raise InputError("--prefix sets what --offload and --peers move: add --offload or --peers")
    if peer_timeout is not None and not peers:
        raise InputError("--peer-timeout is the deadline of --peers: add --peers")
    if plot:
        from kvplan.render.output import output_path
        from kvplan.render.plot import PLOT_SUFFIXES

        output_path(plot, "--plot", PLOT_SUFFIXES)  # before any work
        if not (offload or peers):
            raise InputError("--plot draws the transfer sections: add --offload or --peers")
    require_torch()
    from rich.progress import Progress

    from kvplan.probe.runner import ProbeOptions, run_probe
    from kvplan.render.base import print_json
    from kvplan.render.probe import render_probe

    cat = catalog(specs)
    opts = ProbeOptions(device=device, ctx=ctx, batch=batch, kv_dtype=kv_dtype,
                        block_size=block_size, util=util, max_gib=max_gib, with_weights=with_weights, impl=impl,
                        seed=seed, offload=offload, peers=peers, prefix=prefix,
                        peer_timeout=peer_timeout or 300.0)
    with Progress(console=err_console, transient=True, disable=json or not err_console.is_terminal) as progress:
        task = progress.add_task("probe", total=8 + 5 * offload)
        step = lambda label: progress.update(task, advance=1, description=label)  # noqa: E731
        result = run_probe(cat.model(model), opts, cat.gpus.specs, step=step)
    print_json(console, result) if json else render_probe(console, result)
    if plot:
        from kvplan.render.plot import plot_transfer

        plot_transfer(result, plot)
        err_console.print(f"wrote {plot}", markup=False)
    if not result.ok:
        raise typer.Exit(1)
