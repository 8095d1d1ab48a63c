"""`kvplan sweep`: how capacity moves along one axis, compared along another."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional, cast

import typer

from kvplan.cli.app import (
    DEFAULT_ENGINE, OUTPUT, AllowLongOpt, ChunkedOpt, SamplerOpt, DebugOpt, JsonOpt, MaxBatchedTokensOpt, MaxLenOpt, MaxSeqsOpt, OfflineOpt, SpecsOpt, UtilOpt,
    WeightsDtypeOpt, FromLogOpt, app, budget_inputs, catalog, console, err_console, handle_errors, read_option,
    with_log, SpecTokensOpt, EnableLoraOpt, MaxLorasOpt, MaxLoraRankOpt, MaxCpuLorasOpt, LoraGibOpt, with_lora,
    SpecMethodOpt, DraftModelOpt, DraftGibOpt, with_draft, MmLimitOpt, MmTpModeOpt,
    KvOffloadGibOpt, KvOffloadBackendOpt, KvOffloadDiskGibOpt, HicacheRatioOpt, HicacheSizeOpt, CpuOffloadGibOpt,
)
from kvplan import bounds


@app.command()
@handle_errors
def sweep(
    models: Annotated[list[str], typer.Argument(help="One or more models (several: one line each).")],
    gpus: Annotated[str, read_option(bounds.names, "--gpu", "-g", metavar="LIST", help="GPU, or several comma-separated (one line each).")] = "h100",
    ctx: Annotated[Optional[str], typer.Option("--ctx", metavar="RANGE", help="The context swept: 1k..128k (log-spaced, "
                   "the default) or a list 4k,32k; with --batch or --sweep-tp, the one context of every point "
                   "(default 4096).")] = None,
    batch: Annotated[Optional[str], typer.Option("--batch", metavar="RANGE", help="Sweep the batch instead: 1..512.")] = None,
    tps: Annotated[str, typer.Option("--tp", metavar="LIST", help="TP sizes: one value, a list (one line each), "
                                     "or the swept axis with --sweep-tp.")] = "1",
    sweep_tp: Annotated[bool, typer.Option("--sweep-tp", help="Sweep the --tp list on the x axis.")] = False,
    kv_dtypes: Annotated[str, read_option(bounds.names, "--kv-dtype", metavar="LIST", help="KV dtypes, comma-separated (one line each).")] = "auto",
    metric: Annotated[str, typer.Option("--metric", help="concurrency, kv_gib, tokens_per_s, kv_pool_gib, weights_gib, "
                                        "or waste_fixed / waste_exact / waste_doubling / waste_paged.")] = "concurrency",
    engine: Annotated[str, read_option(
        bounds.names, "--engine", metavar="LIST", help="Engine, or several to compare (one line each): releases "
        "side by side show what an upgrade does, e.g. vllm==0.19,vllm==0.26 (`kvplan engines`).",
        rich_help_panel="Memory budget (every term can be overridden)")] = DEFAULT_ENGINE,
    util: UtilOpt = None, max_len: MaxLenOpt = None,
    weights_dtype: WeightsDtypeOpt = "auto", max_num_seqs: MaxSeqsOpt = None, allow_long: AllowLongOpt = False,
    max_num_batched_tokens: MaxBatchedTokensOpt = None, chunked_prefill: ChunkedOpt = None, sampler: SamplerOpt = None,
    from_log: FromLogOpt = None, num_speculative_tokens: SpecTokensOpt = 0,
    enable_lora: EnableLoraOpt = False, max_loras: MaxLorasOpt = 1, max_lora_rank: MaxLoraRankOpt = 16,
    max_cpu_loras: MaxCpuLorasOpt = None, lora_gib: LoraGibOpt = None,
    speculative_method: SpecMethodOpt = None, speculative_model: DraftModelOpt = None,
    draft_weights_gib: DraftGibOpt = None,
    limit_mm_per_prompt: MmLimitOpt = None, mm_encoder_tp_mode: MmTpModeOpt = None,
    kv_offload_gib: KvOffloadGibOpt = None, kv_offload_backend: KvOffloadBackendOpt = None,
    kv_offload_disk_gib: KvOffloadDiskGibOpt = None, hicache_ratio: HicacheRatioOpt = None,
    hicache_size: HicacheSizeOpt = None, cpu_offload_gib: CpuOffloadGibOpt = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", help="Also draw it to FILE (.png or .svg).")] = None,
    log_y: Annotated[bool, typer.Option("--log-y", help="A log-scale y axis in the plot.", rich_help_panel=OUTPUT)] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV.", rich_help_panel=OUTPUT)] = False,
    offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """How capacity moves along one axis (context, batch, TP), compared across models, GPUs, KV dtypes or TP.

    Example: kvplan sweep llama3.1-8b --gpu h100,h200,b200 --ctx 1k..128k --plot concurrency.png
    """
    import itertools

    from kvplan.calc.sweep import sweep as sweep_
    from kvplan.render.base import print_json
    from kvplan.render.sweep import render_sweep, to_csv

    if plot:
        from kvplan.render.output import output_path
        from kvplan.render.plot import PLOT_SUFFIXES

        output_path(plot, "--plot", PLOT_SUFFIXES)  # before any work
    cat = catalog(specs)
    gpu_names, dtypes = gpus, kv_dtypes
    engines = cast(tuple[str, ...], engine)  # typer is told str; bounds.names reads a tuple
    tp_values = bounds.axis(tps, "tp")
    if batch is not None or sweep_tp:
        x_axis = "batch" if batch is not None else "tp"
        xs = bounds.axis(batch, "batch") if batch is not None else tp_values
        fixed_ctx = one_context(ctx)
    else:
        x_axis, xs, fixed_ctx = "ctx", bounds.axis("1k..128k" if ctx is None else ctx, "ctx"), 0
    series_tps = (1,) if x_axis == "tp" else tp_values
    series = []
    for name, gpu_name, dtype, tp, eng in itertools.product(models, gpu_names, dtypes, series_tps, engines):
        parts = [p for p, many in ((name, len(models) > 1), (gpu_name, len(gpu_names) > 1),
                                   (f"KV {dtype}", len(dtypes) > 1), (f"TP {tp}", len(series_tps) > 1),
                                   (eng, len(engines) > 1)) if many]
        inputs = budget_inputs(eng, tp, 1, dtype, weights_dtype, util, None, None, None, None, None, max_num_seqs,
                               allow_long, max_len=max_len, max_num_batched_tokens=max_num_batched_tokens,
                               chunked_prefill=chunked_prefill, sampler=sampler,
                               num_speculative_tokens=num_speculative_tokens, limit_mm_per_prompt=limit_mm_per_prompt,
                               mm_encoder_tp_mode=mm_encoder_tp_mode, kv_offload_gib=kv_offload_gib,
                               kv_offload_backend=kv_offload_backend, kv_offload_disk_gib=kv_offload_disk_gib,
                               hicache_ratio=hicache_ratio, hicache_size_gb=hicache_size, cpu_offload_gib=cpu_offload_gib)
        inputs = with_lora(inputs, enable_lora, max_loras, max_lora_rank, max_cpu_loras, lora_gib)  # as batch does
        inputs = with_draft(with_log(from_log, inputs, name, cat.gpu(gpu_name), cat), cat, speculative_method,
                            speculative_model, draft_weights_gib)
        series.append((" · ".join(parts) or name, cat.model(name), cat.gpu(gpu_name), inputs))
    result = sweep_(series, x_axis, xs, fixed_ctx, None, metric, max_len)
    if plot:
        on = ", ".join(gpu_names) + (f" (TP {tps})" if tps != "1" and x_axis != "tp" else "")
        from kvplan.render.plot import plot_sweep

        at = f" at {fixed_ctx:,} tokens" if x_axis != "ctx" else ""
        title = f"{result.metric_label} vs {x_axis}: {', '.join(models)} on {on}{at} ({', '.join(engines)}, KV {', '.join(dtypes)})"
        plot_sweep(result, plot, title, log_y=log_y)
        err_console.print(f"wrote {plot}", markup=False)
    if json:
        print_json(console, result)
    elif csv_out:
        console.out(to_csv(result), highlight=False)
    else:
        render_sweep(console, result)


def one_context(ctx: Optional[str]) -> int:
    """The context of every point of a batch or TP sweep: one value (default 4,096 tokens)."""
    from kvplan.errors import InputError

    values = bounds.axis("4096" if ctx is None else ctx, "ctx")
    if len(values) != 1:
        raise InputError(f"--ctx {ctx}: a batch or TP sweep runs at one context; give one value, e.g. --ctx 8k")
    return values[0]
