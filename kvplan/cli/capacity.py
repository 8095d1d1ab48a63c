"""`kvplan batch`, `fit` and `plan`: how many requests fit, and how many GPUs a load needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional, cast

import typer

from kvplan.cli.app import (
    BUDGET, AllowLongOpt, DEFAULT_ENGINE, ActivationGibOpt, BlockOpt, DebugOpt, EngineOpt, ExplainOpt, GpuMemOpt, GpuOpt, JsonOpt, KvDtypeOpt,
    ChunkedOpt, SamplerOpt, SpecTokensOpt, MmLimitOpt, MmTpModeOpt, EnableLoraOpt, MaxLorasOpt, MaxLoraRankOpt, MaxCpuLorasOpt, LoraGibOpt, with_lora, MaxBatchedTokensOpt, MaxLenOpt, MaxSeqsOpt, OfflineOpt, OverheadGibOpt, PpOpt, SpecsOpt, TpOpt, UtilOpt, WeightsDtypeOpt,
    WeightsGibOpt, FromLogOpt, app, budget_inputs, catalog, console, err_console, handle_errors, read_option, with_log,
    SpecMethodOpt, DraftModelOpt, DraftGibOpt, with_draft,
    KvOffloadGibOpt, KvOffloadBackendOpt, KvOffloadDiskGibOpt, HicacheRatioOpt, HicacheSizeOpt, CpuOffloadGibOpt,
    DisaggModeOpt,
)
from kvplan import bounds
from kvplan.errors import InputError


@app.command()
@handle_errors
def batch(
    model: Annotated[Optional[str], typer.Argument(help="Model; leave out to see every model on the GPU.")] = None,
    *,
    gpu: GpuOpt,
    in_tokens: Annotated[Optional[int], read_option(bounds.tokens, "--in", metavar="TOKENS",
                                               help="Input (prompt) tokens per request (default 1,024).")] = None,
    out_tokens: Annotated[Optional[int], read_option(bounds.tokens_or_zero, "--out", metavar="TOKENS",
                                                help="Output tokens per request (default 1,024).")] = None,
    ctx: Annotated[Optional[int], read_option(bounds.tokens, "--ctx", metavar="TOKENS",
                                         help="Shorthand: requests of CTX tokens (--in CTX --out 0).")] = None,
    max_len: MaxLenOpt = None, allow_long: AllowLongOpt = False, max_num_seqs: MaxSeqsOpt = None,
    max_num_batched_tokens: MaxBatchedTokensOpt = None, chunked_prefill: ChunkedOpt = None, sampler: SamplerOpt = None,
    num_speculative_tokens: SpecTokensOpt = 0, from_log: FromLogOpt = None,
    enable_lora: EnableLoraOpt = False, max_loras: MaxLorasOpt = 1, max_lora_rank: MaxLoraRankOpt = 16,
    max_cpu_loras: MaxCpuLorasOpt = None, lora_gib: LoraGibOpt = None,
    speculative_method: SpecMethodOpt = None, speculative_model: DraftModelOpt = None,
    draft_weights_gib: DraftGibOpt = None,
    limit_mm_per_prompt: MmLimitOpt = None, mm_encoder_tp_mode: MmTpModeOpt = None,
    disaggregation_mode: DisaggModeOpt = None,
    kv_offload_gib: KvOffloadGibOpt = None, kv_offload_backend: KvOffloadBackendOpt = None,
    kv_offload_disk_gib: KvOffloadDiskGibOpt = None, hicache_ratio: HicacheRatioOpt = None,
    hicache_size: HicacheSizeOpt = None, cpu_offload_gib: CpuOffloadGibOpt = None,
    at_batch: Annotated[Optional[int], read_option(
        bounds.requests, "--batch", "-b", metavar="N", help="Batch for the roofline (default: the paged concurrency, at most max_num_seqs).")] = None,
    max_ctx: Annotated[Optional[int], read_option(
        bounds.requests, "--max-ctx", metavar="B", help="Also find the longest context at which B requests fit.")] = None,
    tflops: Annotated[Optional[float], read_option(bounds.tflops, "--tflops", metavar="TFLOPS",
                                              help="Peak TFLOPS for the roofline.")] = None,
    hbm_gbps: Annotated[Optional[float], read_option(bounds.gbps, "--hbm-gbps", metavar="GB/s",
                                                help="HBM GB/s for the roofline.")] = None,
    engine: EngineOpt = DEFAULT_ENGINE, tp: TpOpt = 1, pp: PpOpt = 1, kv_dtype: KvDtypeOpt = "auto",
    weights_dtype: WeightsDtypeOpt = "auto", util: UtilOpt = None, gpu_mem: GpuMemOpt = None,
    weights_gib: WeightsGibOpt = None, activation_gib: ActivationGibOpt = None,
    overhead_gib: OverheadGibOpt = None, block_size: BlockOpt = None,
    explain: ExplainOpt = False, offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """How many concurrent requests fit on one GPU (or a TP/PP replica), under each allocation strategy.

    Example: kvplan batch llama3-8b --gpu h100 --in 1024 --out 1024
    (--engine vllm==0.19,vllm==0.26 compares releases side by side)
    """
    from kvplan.calc.capacity import Workload, batch_capacity, overview_result
    from kvplan.render.base import print_json
    from kvplan.render.capacity import render_batch, render_overview, render_releases

    if ctx and (in_tokens is not None or out_tokens is not None):
        raise InputError(f"{{ctx}} {ctx:,} and {{in_tokens}}/{{out_tokens}} both set the request length; give {{ctx}} alone "
                         "(requests of CTX tokens) or {in_tokens} and {out_tokens}", "ctx", "in_tokens", "out_tokens")
    workload = (Workload(ctx, 0, max_len) if ctx else
                Workload(1024 if in_tokens is None else in_tokens, 1024 if out_tokens is None else out_tokens, max_len))
    engines = bounds.names(engine, "engine")
    per_engine = [budget_inputs(name, tp, pp, kv_dtype, weights_dtype, util, gpu_mem, weights_gib,
                           activation_gib, overhead_gib, block_size, max_num_seqs, allow_long, max_len=max_len,
                           max_num_batched_tokens=max_num_batched_tokens, chunked_prefill=chunked_prefill,
                           sampler=sampler, num_speculative_tokens=num_speculative_tokens,
                           limit_mm_per_prompt=limit_mm_per_prompt, mm_encoder_tp_mode=mm_encoder_tp_mode,
                           kv_offload_gib=kv_offload_gib, kv_offload_backend=kv_offload_backend,
                           kv_offload_disk_gib=kv_offload_disk_gib, hicache_ratio=hicache_ratio,
                           hicache_size_gb=hicache_size, cpu_offload_gib=cpu_offload_gib,
                           disaggregation_mode=disaggregation_mode) for name in engines]
    cat = catalog(specs)
    per_engine = [with_draft(with_log(from_log, with_lora(one, enable_lora, max_loras, max_lora_rank, max_cpu_loras,
                                                         lora_gib), model, cat.gpu(gpu), cat),
                             cat, speculative_method, speculative_model, draft_weights_gib) for one in per_engine]
    inputs = per_engine[0]
    if len(per_engine) > 1:  # releases side by side: what an upgrade does to capacity before it ships
        if model is None:
            raise InputError("comparing engines needs a model; name one, or give one --engine")
        results = [batch_capacity(cat.model(model), cat.gpu(gpu), workload, one) for one in per_engine]
        print_json(console, results) if json else render_releases(console, results, engines)
        return
    if model is None:
        every = overview_result(sorted(cat.models.specs.values(), key=lambda m: m.name), cat.gpu(gpu), workload, inputs)
        print_json(console, list(every.rows)) if json else render_overview(console, every)
        return
    result = batch_capacity(cat.model(model), cat.gpu(gpu), workload, inputs, batch=at_batch,
                            longest_ctx_requests=max_ctx, peak_tflops=tflops, hbm_gbps=hbm_gbps)
    print_json(console, result) if json else render_batch(console, result, explain=explain)


@app.command()
@handle_errors
def fit(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id.")],
    gpu: GpuOpt,
    ctx: Annotated[int, read_option(bounds.tokens, "--ctx", "-c", metavar="TOKENS", help="Tokens per request.")] = 4096,
    target: Annotated[int, read_option(bounds.requests, "--concurrency", "-n", metavar="N",
                                 help="Concurrent requests to serve.")] = 1,
    max_len: MaxLenOpt = None, max_num_seqs: MaxSeqsOpt = None, allow_long: AllowLongOpt = False,
    max_num_batched_tokens: MaxBatchedTokensOpt = None, chunked_prefill: ChunkedOpt = None, sampler: SamplerOpt = None,
    num_speculative_tokens: SpecTokensOpt = 0, from_log: FromLogOpt = None,
    enable_lora: EnableLoraOpt = False, max_loras: MaxLorasOpt = 1, max_lora_rank: MaxLoraRankOpt = 16,
    max_cpu_loras: MaxCpuLorasOpt = None, lora_gib: LoraGibOpt = None,
    speculative_method: SpecMethodOpt = None, speculative_model: DraftModelOpt = None,
    draft_weights_gib: DraftGibOpt = None,
    limit_mm_per_prompt: MmLimitOpt = None, mm_encoder_tp_mode: MmTpModeOpt = None,
    disaggregation_mode: DisaggModeOpt = None,
    kv_offload_gib: KvOffloadGibOpt = None, kv_offload_backend: KvOffloadBackendOpt = None,
    kv_offload_disk_gib: KvOffloadDiskGibOpt = None, hicache_ratio: HicacheRatioOpt = None,
    hicache_size: HicacheSizeOpt = None, cpu_offload_gib: CpuOffloadGibOpt = None,
    engine: EngineOpt = DEFAULT_ENGINE, tp: TpOpt = 1, pp: PpOpt = 1, kv_dtype: KvDtypeOpt = "auto",
    weights_dtype: WeightsDtypeOpt = "auto", util: UtilOpt = None, gpu_mem: GpuMemOpt = None,
    weights_gib: WeightsGibOpt = None, activation_gib: ActivationGibOpt = None,
    overhead_gib: OverheadGibOpt = None, block_size: BlockOpt = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", help="Draw the breakdown (.png/.svg).")] = None,
    explain: ExplainOpt = False, offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """The whole memory breakdown of one GPU, whether the engine starts, a verdict, and what would make it fit.

    Example: kvplan fit llama3-70b --gpu h100 --ctx 8192 --tp 4 --concurrency 64
    """
    from kvplan.calc.fit import fit as fit_
    from kvplan.render.base import print_json
    from kvplan.render.capacity import render_fit

    if plot:
        from kvplan.render.output import output_path
        from kvplan.render.plot import PLOT_SUFFIXES

        output_path(plot, "--plot", PLOT_SUFFIXES)  # before any work
    inputs = budget_inputs(engine, tp, pp, kv_dtype, weights_dtype, util, gpu_mem, weights_gib,
                           activation_gib, overhead_gib, block_size, max_num_seqs, allow_long, max_len=max_len,
                           max_num_batched_tokens=max_num_batched_tokens, chunked_prefill=chunked_prefill, sampler=sampler, num_speculative_tokens=num_speculative_tokens,
                           limit_mm_per_prompt=limit_mm_per_prompt, mm_encoder_tp_mode=mm_encoder_tp_mode,
                           kv_offload_gib=kv_offload_gib, kv_offload_backend=kv_offload_backend,
                           kv_offload_disk_gib=kv_offload_disk_gib, hicache_ratio=hicache_ratio,
                           hicache_size_gb=hicache_size, cpu_offload_gib=cpu_offload_gib,
                           disaggregation_mode=disaggregation_mode)
    cat = catalog(specs)
    inputs = with_draft(with_log(from_log, with_lora(inputs, enable_lora, max_loras, max_lora_rank, max_cpu_loras,
                                                     lora_gib), model, cat.gpu(gpu), cat),
                        cat, speculative_method, speculative_model, draft_weights_gib)
    result = fit_(cat.model(model), cat.gpu(gpu), ctx, inputs, max_len=max_len or inputs.max_model_len, target=target)
    if plot:
        from kvplan.render.plot import plot_fit

        plot_fit(result, plot)
        err_console.print(f"wrote {plot}", markup=False)
    print_json(console, result) if json else render_fit(console, result, explain=explain)


@app.command()
@handle_errors
def plan(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id.")],
    gpu: GpuOpt,
    concurrency: Annotated[int, read_option(bounds.requests, "--concurrency", "-n", metavar="N",
                                      help="Concurrent requests to serve.")] = 64,
    ctx: Annotated[int, read_option(bounds.tokens, "--ctx", "-c", metavar="TOKENS", help="Tokens per request.")] = 4096,
    kv_dtypes: Annotated[str, read_option(
        bounds.names, "--kv-dtype", metavar="LIST", help="KV dtypes to plan for, comma-separated: e.g. bf16,fp8.",
        rich_help_panel=BUDGET)] = "auto",
    gpus_per_node: Annotated[int, read_option(bounds.gpus, "--gpus-per-node", metavar="N",
                                        help="GPUs per node (TP stays inside one).")] = 8,
    cross_node_tp: Annotated[bool, typer.Option("--cross-node-tp", help="Let TP span nodes (up to the heads).")] = False,
    disaggregated: Annotated[bool, typer.Option("--disaggregated", help="Plan prefill workers and decode workers "
                                                "apart, each on its own budget.")] = False,
    prompt: Annotated[Optional[int], read_option(bounds.tokens, "--prompt", metavar="TOKENS", help="Prompt tokens "
                                                 "of each request, for --disaggregated (default: --ctx).")] = None,
    max_len: MaxLenOpt = None, max_num_seqs: MaxSeqsOpt = None, allow_long: AllowLongOpt = False,
    max_num_batched_tokens: MaxBatchedTokensOpt = None, chunked_prefill: ChunkedOpt = None, sampler: SamplerOpt = None,
    num_speculative_tokens: SpecTokensOpt = 0, from_log: FromLogOpt = None,
    enable_lora: EnableLoraOpt = False, max_loras: MaxLorasOpt = 1, max_lora_rank: MaxLoraRankOpt = 16,
    max_cpu_loras: MaxCpuLorasOpt = None, lora_gib: LoraGibOpt = None,
    speculative_method: SpecMethodOpt = None, speculative_model: DraftModelOpt = None,
    draft_weights_gib: DraftGibOpt = None,
    limit_mm_per_prompt: MmLimitOpt = None, mm_encoder_tp_mode: MmTpModeOpt = None,
    engine: EngineOpt = DEFAULT_ENGINE, weights_dtype: WeightsDtypeOpt = "auto", util: UtilOpt = None,
    gpu_mem: GpuMemOpt = None, overhead_gib: OverheadGibOpt = None, block_size: BlockOpt = None,
    explain: ExplainOpt = False, offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """The smallest deployment (TP, PP, replicas, GPUs, nodes) serving N concurrent requests of CTX tokens,
    and the engine command line that deploys it.

    Example: kvplan plan llama3.1-405b --gpu h100 --concurrency 512 --ctx 32k --kv-dtype bf16,fp8
    """
    from kvplan.calc.plan import plan as plan_
    from kvplan.render.base import print_json
    from kvplan.render.capacity import render_plan

    inputs = budget_inputs(engine, 1, 1, "auto", weights_dtype, util, gpu_mem, None, None, overhead_gib,
                           block_size, max_num_seqs, allow_long, max_len=max_len,
                           max_num_batched_tokens=max_num_batched_tokens, chunked_prefill=chunked_prefill, sampler=sampler, num_speculative_tokens=num_speculative_tokens,
                           limit_mm_per_prompt=limit_mm_per_prompt, mm_encoder_tp_mode=mm_encoder_tp_mode)
    cat = catalog(specs)
    inputs = with_draft(with_log(from_log, with_lora(inputs, enable_lora, max_loras, max_lora_rank, max_cpu_loras,
                                                     lora_gib), model, cat.gpu(gpu), cat),
                        cat, speculative_method, speculative_model, draft_weights_gib)
    dtypes = cast(tuple[str, ...], kv_dtypes)  # typer is told str; bounds.names reads it into a tuple
    if disaggregated:
        from kvplan.calc.disagg import disaggregated as disaggregated_
        from kvplan.render.disagg import render_disaggregated

        split = disaggregated_(cat.model(model), cat.gpu(gpu), concurrency, ctx, prompt or ctx, dtypes, inputs,
                               gpus_per_node, max_len=max_len or inputs.max_model_len, cross_node_tp=cross_node_tp)
        print_json(console, split) if json else render_disaggregated(console, split, explain=explain)
        return
    result = plan_(cat.model(model), cat.gpu(gpu), concurrency, ctx, dtypes, inputs, gpus_per_node,
                   max_len=max_len or inputs.max_model_len, cross_node_tp=cross_node_tp)
    print_json(console, result) if json else render_plan(console, result, explain=explain)
