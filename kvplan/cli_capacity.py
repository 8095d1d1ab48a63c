"""`kvplan batch`, `kvplan fit`, `kvplan plan`: capacity commands. Parse, call one calculator, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan.cli import JsonOpt, OUTPUT, DebugOpt, SpecsOpt, app, catalog, console, err_console, handle_errors, tokens
from kvplan.errors import KvplanError

BUDGET = "Memory budget (every term can be overridden)"
GpuOpt = Annotated[str, typer.Option("--gpu", "-g", help="GPU name or alias (see `kvplan gpus`).")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="Budget rule: vllm, sglang, trtllm or raw (the textbook: memory - weights).",
    rich_help_panel=BUDGET)]
TpOpt = Annotated[int, typer.Option("--tp", help="Tensor-parallel GPUs per replica.", rich_help_panel=BUDGET)]
PpOpt = Annotated[int, typer.Option("--pp", help="Pipeline-parallel stages per replica.", rich_help_panel=BUDGET)]
KvDtypeOpt = Annotated[str, typer.Option(
    "--kv-dtype", help="KV storage: auto, bf16, fp16, fp32, fp8, int8, int4.", rich_help_panel=BUDGET)]
WeightsDtypeOpt = Annotated[str, typer.Option(
    "--weights-dtype", help="auto (the checkpoint), bf16, fp16, fp8, int8, int4 (AWQ/GPTQ), nf4.",
    rich_help_panel=BUDGET)]
UtilOpt = Annotated[Optional[float], typer.Option(
    "--util", help="The engine's memory fraction (vLLM gpu_memory_utilization, SGLang "
    "mem_fraction_static, TRT-LLM free_gpu_memory_fraction).", rich_help_panel=BUDGET)]
GpuMemOpt = Annotated[Optional[float], typer.Option(
    "--gpu-mem", metavar="GiB", help="GPU memory in GiB, instead of the database's.", rich_help_panel=BUDGET)]
WeightsGibOpt = Annotated[Optional[float], typer.Option(
    "--weights-gib", metavar="GiB", help="Weights per GPU in GiB (e.g. from an engine's log).",
    rich_help_panel=BUDGET)]
ActivationGibOpt = Annotated[Optional[float], typer.Option(
    "--activation-gib", metavar="GiB", help="Activation peak per GPU in GiB.", rich_help_panel=BUDGET)]
OverheadGibOpt = Annotated[Optional[float], typer.Option(
    "--overhead-gib", metavar="GiB", help="Runtime overhead per GPU (CUDA context, non-torch) in GiB.",
    rich_help_panel=BUDGET)]
BlockOpt = Annotated[Optional[int], typer.Option(
    "--block-size", help="Tokens per KV page (default: the engine's).", rich_help_panel=BUDGET)]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Show each formula with the numbers plugged in.",
                                          rich_help_panel=OUTPUT)]


def budget_inputs(engine: str, tp: int, pp: int, kv_dtype: str, weights_dtype: str, util: Optional[float],
                  gpu_mem: Optional[float], weights_gib: Optional[float], activation_gib: Optional[float],
                  overhead_gib: Optional[float], block_size: Optional[int]):
    from kvplan.calc.budget import BudgetInputs
    from kvplan.units import GIB

    to_bytes = lambda gib: None if gib is None else int(round(gib * GIB))  # noqa: E731
    return BudgetInputs(engine=engine, tp=tp, pp=pp, kv_dtype=kv_dtype, weights_dtype=weights_dtype, util=util,
                        gpu_mem_bytes=to_bytes(gpu_mem), weights_bytes=to_bytes(weights_gib),
                        activation_bytes=to_bytes(activation_gib), overhead_bytes=to_bytes(overhead_gib),
                        block_size=block_size)


@app.command()
@handle_errors
def batch(
    model: Annotated[Optional[str], typer.Argument(help="Model; leave out to see every model on the GPU.")] = None,
    gpu: GpuOpt = ...,
    in_tokens: Annotated[str, typer.Option("--in", metavar="TOKENS", help="Input (prompt) tokens per request.")] = "1024",
    out_tokens: Annotated[str, typer.Option("--out", metavar="TOKENS", help="Output tokens per request.")] = "1024",
    ctx: Annotated[Optional[str], typer.Option("--ctx", metavar="TOKENS",
                                               help="Shorthand: requests of CTX tokens (--in CTX --out 0).")] = None,
    max_len: Annotated[Optional[str], typer.Option(
        "--max-len", metavar="TOKENS", help="Max sequence length (default: the model's max context).")] = None,
    at_batch: Annotated[Optional[int], typer.Option(
        "--batch", "-b", help="Batch for the roofline (default: the paged concurrency).")] = None,
    max_ctx: Annotated[Optional[int], typer.Option(
        "--max-ctx", metavar="B", help="Also find the longest context at which B requests fit.")] = None,
    tflops: Annotated[Optional[float], typer.Option("--tflops", help="Peak TFLOPS for the roofline.")] = None,
    hbm_gbps: Annotated[Optional[float], typer.Option("--hbm-gbps", help="HBM GB/s for the roofline.")] = None,
    engine: EngineOpt = "vllm", tp: TpOpt = 1, pp: PpOpt = 1, kv_dtype: KvDtypeOpt = "auto",
    weights_dtype: WeightsDtypeOpt = "auto", util: UtilOpt = None, gpu_mem: GpuMemOpt = None,
    weights_gib: WeightsGibOpt = None, activation_gib: ActivationGibOpt = None,
    overhead_gib: OverheadGibOpt = None, block_size: BlockOpt = None,
    explain: ExplainOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """How many concurrent requests fit on one GPU (or a TP/PP replica), under each allocation strategy.

    Example: kvplan batch llama3-8b --gpu h100 --in 1024 --out 1024
    """
    from kvplan.calc.capacity import Workload, batch_capacity, overview
    from kvplan.render import print_json
    from kvplan.render_capacity import render_batch, render_overview

    workload = (Workload(tokens(ctx), 0, tokens(max_len) if max_len else None) if ctx
                else Workload(tokens(in_tokens), tokens(out_tokens), tokens(max_len) if max_len else None))
    inputs = budget_inputs(engine, tp, pp, kv_dtype, weights_dtype, util, gpu_mem, weights_gib,
                           activation_gib, overhead_gib, block_size)
    cat = catalog(specs)
    if model is None:
        rows = overview(sorted(cat.models.specs.values(), key=lambda m: m.name), cat.gpu(gpu), workload, inputs)
        print_json(console, list(rows)) if json else render_overview(console, rows, cat.gpu(gpu), workload, inputs)
        return
    result = batch_capacity(cat.model(model), cat.gpu(gpu), workload, inputs, batch=at_batch,
                            max_ctx_batch=max_ctx, peak_tflops=tflops, hbm_gbps=hbm_gbps)
    print_json(console, result) if json else render_batch(console, result, explain=explain)


@app.command()
@handle_errors
def fit(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id.")],
    gpu: GpuOpt = ...,
    ctx: Annotated[str, typer.Option("--ctx", "-c", metavar="TOKENS", help="Tokens per request.")] = "4096",
    engine: EngineOpt = "vllm", tp: TpOpt = 1, pp: PpOpt = 1, kv_dtype: KvDtypeOpt = "auto",
    weights_dtype: WeightsDtypeOpt = "auto", util: UtilOpt = None, gpu_mem: GpuMemOpt = None,
    weights_gib: WeightsGibOpt = None, activation_gib: ActivationGibOpt = None,
    overhead_gib: OverheadGibOpt = None, block_size: BlockOpt = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", help="Draw the breakdown (.png/.svg).")] = None,
    explain: ExplainOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """The whole memory breakdown of one GPU, a verdict, and the knobs that would make it fit.

    Example: kvplan fit llama3-70b --gpu h100 --ctx 8192
    """
    from kvplan.calc.plan import fit as fit_
    from kvplan.render import print_json
    from kvplan.render_capacity import render_fit

    inputs = budget_inputs(engine, tp, pp, kv_dtype, weights_dtype, util, gpu_mem, weights_gib,
                           activation_gib, overhead_gib, block_size)
    cat = catalog(specs)
    result = fit_(cat.model(model), cat.gpu(gpu), tokens(ctx), inputs)
    if plot:
        from kvplan.render_sweep import plot_fit

        plot_fit(result, plot)
        err_console.print(f"wrote {plot}", markup=False)
    print_json(console, result) if json else render_fit(console, result, explain=explain)


@app.command()
@handle_errors
def plan(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id.")],
    gpu: GpuOpt = ...,
    concurrency: Annotated[int, typer.Option("--concurrency", "-n", help="Concurrent requests to serve.")] = 64,
    ctx: Annotated[str, typer.Option("--ctx", "-c", metavar="TOKENS", help="Tokens per request.")] = "4096",
    kv_dtypes: Annotated[str, typer.Option(
        "--kv-dtype", help="KV dtypes to plan for, comma-separated: e.g. bf16,fp8.",
        rich_help_panel=BUDGET)] = "auto",
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs per node (TP stays inside one).")] = 8,
    engine: EngineOpt = "vllm", weights_dtype: WeightsDtypeOpt = "auto", util: UtilOpt = None,
    gpu_mem: GpuMemOpt = None, overhead_gib: OverheadGibOpt = None, block_size: BlockOpt = None,
    explain: ExplainOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """The smallest deployment (TP, PP, replicas, GPUs, nodes) serving N concurrent requests of CTX tokens.

    Example: kvplan plan llama3.1-405b --gpu h100 --concurrency 512 --ctx 32k --kv-dtype bf16,fp8
    """
    from kvplan.calc.plan import plan as plan_
    from kvplan.render import print_json
    from kvplan.render_capacity import render_plan

    inputs = budget_inputs(engine, 1, 1, "auto", weights_dtype, util, gpu_mem, None, None, overhead_gib,
                           block_size)
    cat = catalog(specs)
    dtypes = tuple(d.strip() for d in kv_dtypes.split(",") if d.strip())
    result = plan_(cat.model(model), cat.gpu(gpu), concurrency, tokens(ctx), dtypes, inputs, gpus_per_node)
    print_json(console, result) if json else render_plan(console, result, explain=explain)



@app.command()
@handle_errors
def probe(
    model: Annotated[str, typer.Argument(help="Model whose KV layout to allocate and attend over.")],
    device: Annotated[Optional[str], typer.Option("--device", help="cuda:N (default when CUDA is present) or cpu.")] = None,
    ctx: Annotated[Optional[str], typer.Option("--ctx", metavar="TOKENS", help="Tokens per request (default 4096 on CUDA, 1024 on CPU).")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", "-b", help="Requests (default 64 on CUDA, 4 on CPU).")] = None,
    kv_dtype: KvDtypeOpt = "auto",
    block_size: Annotated[int, typer.Option("--block-size", help="Tokens per page.")] = 16,
    util: Annotated[float, typer.Option("--util", help="Fraction of the free memory (less a margin) to use.")] = 0.9,
    max_gib: Annotated[Optional[float], typer.Option("--max-gib", help="Cap on what the probe takes (GiB; CPU default 1).")] = None,
    with_weights: Annotated[bool, typer.Option("--with-weights", help="First reserve the weights and activations.")] = False,
    impl: Annotated[str, typer.Option("--impl", help="Attention kernel: auto (Triton on CUDA), triton, torch.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Random seed for data and page order.")] = 0,
    json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """Allocate paged KV on this device, run paged decode attention, and check the plan against it.

    Example: kvplan probe llama3-8b --device cuda:0 --ctx 4096 --batch 64
    """
    from kvplan.probe import require_torch

    require_torch()
    from rich.progress import Progress

    from kvplan.probe.runner import ProbeOptions, run_probe
    from kvplan.render import print_json
    from kvplan.render_probe import render_probe

    cat = catalog(specs)
    opts = ProbeOptions(device=device, ctx=tokens(ctx) if ctx else None, batch=batch, kv_dtype=kv_dtype,
                        block_size=block_size, util=util, max_gib=max_gib, with_weights=with_weights, impl=impl,
                        seed=seed)
    with Progress(console=err_console, transient=True, disable=json) as progress:
        task = progress.add_task("probe", total=6)
        step = lambda label: progress.update(task, advance=1, description=label)  # noqa: E731
        result = run_probe(cat.model(model), opts, cat.gpus.specs, step=step)
    print_json(console, result) if json else render_probe(console, result)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
@handle_errors
def offload(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id.")],
    gpu: GpuOpt = ...,
    prefix: Annotated[str, typer.Option("--prefix", "-p", metavar="TOKENS", help="Evicted prefix length.")] = "4096",
    links: Annotated[Optional[str], typer.Option(
        "--link", help="Tiers, comma-separated: pcie3, pcie4, pcie5, pcie6, nvlink-c2c, nvme, rdma (default: all).")] = None,
    link_gbps: Annotated[Optional[float], typer.Option("--link-gbps", help="A custom link, GB/s per direction.")] = None,
    latency_us: Annotated[Optional[float], typer.Option("--latency-us", help="Per-transfer latency (default: each link's).")] = None,
    mfu: Annotated[float, typer.Option("--mfu", help="Prefill model FLOPs utilization, in (0, 1].")] = 0.5,
    tflops: Annotated[Optional[float], typer.Option("--tflops", help="Peak TFLOPS (default: the GPU's dense BF16).")] = None,
    params: Annotated[Optional[float], typer.Option("--params", help="Parameters per token (default: active params).")] = None,
    no_attention: Annotated[bool, typer.Option("--no-attention", help="Leave out the attention term (as note 001).")] = False,
    kv_dtype: KvDtypeOpt = "auto",
    tp: Annotated[int, typer.Option("--tp", help="GPUs sharing the prefill, each loading its KV shard.")] = 1,
    host_gib: Annotated[Optional[float], typer.Option("--host-gib", help="Host memory for offloaded KV, GiB.")] = None,
    nvme_gib: Annotated[Optional[float], typer.Option("--nvme-gib", help="NVMe space for offloaded KV, GiB.")] = None,
    sweep_prefix: Annotated[bool, typer.Option("--sweep-prefix", help="Where the verdict flips as prefixes grow.")] = False,
    explain: ExplainOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """Reload an evicted KV prefix over each memory tier, or recompute it? Times, ratios, break-evens.

    Example: kvplan offload llama3-8b --gpu a100 --prefix 4096 --link pcie4,nvme --host-gib 512
    """
    from kvplan.calc.offload import LINKS, OffloadInputs, offload as offload_
    from kvplan.render import print_json
    from kvplan.render_offload import render_offload

    chosen = tuple(n.strip() for n in links.split(",") if n.strip()) if links else tuple(LINKS)
    inputs = OffloadInputs(kv_dtype=kv_dtype, mfu=mfu, tflops=tflops, params=int(params) if params else None,
                           attention=not no_attention, latency_us=latency_us, links=chosen, link_gbps=link_gbps,
                           host_gib=host_gib, nvme_gib=nvme_gib, sweep=sweep_prefix, tp=tp)
    cat = catalog(specs)
    result = offload_(cat.model(model), cat.gpu(gpu), tokens(prefix), inputs)
    print_json(console, result) if json else render_offload(console, result, explain=explain)


@app.command()
@handle_errors
def frag(
    model: Annotated[str, typer.Argument(help="Model whose KV bytes per token to use.")],
    gpu: Annotated[Optional[str], typer.Option("--gpu", "-g", help="GPU: the budget is vLLM's KV pool on it.")] = None,
    kv_gib: Annotated[Optional[float], typer.Option("--kv-gib", help="A KV budget in GiB instead of --gpu's pool.")] = None,
    workload: Annotated[str, typer.Option(
        "--workload", "-w", help="chat, fixed:IN,OUT, uniform:LO-HI,LO-HI, or a .csv/.jsonl trace.")] = "chat",
    requests: Annotated[int, typer.Option("--requests", "-n", help="Requests to generate.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for generated workloads.")] = 0,
    rate: Annotated[Optional[float], typer.Option("--rate", help="Poisson arrivals, requests per second "
                                                  "(default: all at once).")] = None,
    step_ms: Annotated[float, typer.Option("--step-ms", help="One decode step, ms (turns seconds into steps).")] = 30.0,
    max_len: Annotated[Optional[int], typer.Option("--max-len", help="Max sequence length (default: the model's).")] = None,
    block_size: Annotated[int, typer.Option("--block-size", help="Tokens per page / doubling start.")] = 16,
    shared_prefix: Annotated[int, typer.Option("--shared-prefix", help="A system prompt of P tokens on every request.")] = 0,
    sweep_block_size: Annotated[bool, typer.Option("--sweep-block-size", help="Paged waste for blocks 1..256.")] = False,
    kv_dtype: KvDtypeOpt = "auto",
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", help="Draw the waste (.png/.svg).")] = None,
    json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """What each allocation strategy wastes on a workload: continuous batching simulated over real allocators.

    Example: kvplan frag opt-13b --gpu a100-40gb --workload chat --max-len 2048 --requests 10000
    """
    from pathlib import Path

    from rich.progress import Progress

    from kvplan.calc.frag import STRATEGIES, fragmentation, kv_budget
    from kvplan.errors import InputError
    from kvplan.render import print_json
    from kvplan.render_frag import render_frag
    from kvplan.workloads import generate, read_trace

    cat = catalog(specs)
    spec = cat.model(model)
    gpu_spec = cat.gpu(gpu) if gpu else None
    budget, per_token = kv_budget(spec, gpu_spec, kv_gib, kv_dtype)
    length = max_len or spec.max_context
    if step_ms <= 0 or (rate is not None and rate <= 0):
        raise InputError("--rate and --step-ms must be positive (requests per second, ms per decode step)")
    per_second = rate * step_ms / 1000 if rate is not None else None
    path = Path(workload)
    reqs = (read_trace(path, length, step_ms) if path.suffix in (".csv", ".jsonl")
            else generate(workload, requests, seed, length, per_second))
    strategies = STRATEGIES if shared_prefix else STRATEGIES[:-1]
    with Progress(console=err_console, transient=True, disable=json) as progress:
        task = progress.add_task("simulating", total=len(strategies) + (9 if sweep_block_size else 0))
        step = lambda label: progress.update(task, advance=1, description=label)  # noqa: E731
        result = fragmentation(spec, gpu_spec, reqs, workload=workload, seed=seed, budget_bytes=budget,
                               bytes_per_token=per_token,
                               block=block_size, max_len=length, prefix=shared_prefix, strategies=strategies,
                               sweep=sweep_block_size, step=step)
    if plot:
        from kvplan.render_sweep import plot_frag

        plot_frag(result, plot)
        err_console.print(f"wrote {plot}", markup=False)
    print_json(console, result) if json else render_frag(console, result)


@app.command()
@handle_errors
def check(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Check files (YAML scenarios).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Inline scenario: the model.")] = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", "-g", help="Inline scenario: the GPU.")] = None,
    tp: Annotated[int, typer.Option("--tp", help="Inline scenario: tensor-parallel GPUs.")] = 1,
    ctx: Annotated[Optional[str], typer.Option("--ctx", metavar="TOKENS", help="Inline scenario: tokens per request.")] = None,
    kv_dtype: KvDtypeOpt = "auto",
    engine: EngineOpt = "vllm",
    min_concurrency: Annotated[Optional[int], typer.Option("--min-concurrency", help="Inline expectation.")] = None,
    min_kv_tokens: Annotated[Optional[int], typer.Option("--min-kv-tokens", help="Inline expectation.")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", metavar="PATH", help="Write a JUnit XML report.")] = None,
    json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """CI capacity gates: exit 0 when every scenario meets its expectations, 1 when one does not, 2 on bad input.

    Example: kvplan check examples/capacity.yaml --junit report.xml
    """
    from kvplan.calc.check import evaluate
    from kvplan.checkfile import inline_scenario, load_check_file
    from kvplan.errors import InputError
    from kvplan.render import print_json
    from kvplan.render_check import render_check, write_junit

    scenarios = [s for path in files or () for s in load_check_file(path)]
    if model:
        expect = {"fits": True if min_concurrency is None and min_kv_tokens is None else None,
                  "min_concurrency": min_concurrency, "min_kv_tokens": min_kv_tokens}
        scenarios.append(inline_scenario(name=f"{model} on {gpu}", model=model, gpu=gpu or "", tp=tp, engine=engine,
                                         kv_dtype=kv_dtype, ctx=tokens(ctx) if ctx else None, expect=expect))
    if not scenarios:
        raise InputError("nothing to check: pass a check file or --model and --gpu")
    cat = catalog(specs)
    results = []
    for s in scenarios:
        try:
            model_spec, gpu_spec = cat.model(s.model), cat.gpu(s.gpu)
        except KvplanError as err:
            raise type(err)(f"{s.source or 'inline scenario'} ({s.name}): {err}") from None
        results.append(evaluate(model_spec, gpu_spec, s))
    if junit:
        write_junit(junit, results)
    print_json(console, results) if json else render_check(console, results)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


@app.command()
@handle_errors
def sweep(
    models: Annotated[list[str], typer.Argument(help="One or more models (several: one line each).")],
    gpus: Annotated[str, typer.Option("--gpu", "-g", help="GPU, or several comma-separated (one line each).")] = "h100",
    ctx: Annotated[str, typer.Option("--ctx", metavar="RANGE", help="1k..128k (log-spaced) or a list 4k,32k.")] = "1k..128k",
    batch: Annotated[Optional[str], typer.Option("--batch", metavar="RANGE", help="Sweep the batch instead: 1..512.")] = None,
    tps: Annotated[str, typer.Option("--tp", metavar="LIST", help="TP sizes: one value, a list (one line each), "
                                     "or the swept axis with --sweep-tp.")] = "1",
    sweep_tp: Annotated[bool, typer.Option("--sweep-tp", help="Sweep the --tp list on the x axis.")] = False,
    kv_dtypes: Annotated[str, typer.Option("--kv-dtype", help="KV dtypes, comma-separated (one line each).")] = "auto",
    metric: Annotated[str, typer.Option("--metric", help="concurrency, kv_gib, tokens_per_s, kv_pool_gib, weights_gib, "
                                        "or waste_fixed / waste_exact / waste_doubling / waste_paged.")] = "concurrency",
    engine: EngineOpt = "vllm",
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", help="Also draw it to FILE (.png or .svg).")] = None,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV.", rich_help_panel=OUTPUT)] = False,
    json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """How capacity moves along one axis (context, batch, TP), compared across models, GPUs, KV dtypes or TP.

    Example: kvplan sweep llama3-8b --gpu h100,h200,b200 --ctx 1k..128k --plot concurrency.png
    """
    import itertools

    from kvplan.calc.budget import BudgetInputs
    from kvplan.calc.sweep import parse_axis, sweep as sweep_
    from kvplan.render import print_json
    from kvplan.render_sweep import plot_sweep, render_sweep, to_csv

    cat = catalog(specs)
    gpu_names = [g.strip() for g in gpus.split(",") if g.strip()]
    dtypes = [d.strip() for d in kv_dtypes.split(",") if d.strip()]
    tp_values = parse_axis(tps, "tp")
    if batch is not None:
        x_axis, xs, fixed_ctx = "batch", parse_axis(batch, "batch"), parse_axis(ctx, "ctx")[-1]
    elif sweep_tp:
        x_axis, xs, fixed_ctx = "tp", tp_values, parse_axis(ctx, "ctx")[-1]
    else:
        x_axis, xs, fixed_ctx = "ctx", parse_axis(ctx, "ctx"), 0
    series_tps = (1,) if x_axis == "tp" else tp_values
    series = []
    for name, gpu_name, dtype, tp in itertools.product(models, gpu_names, dtypes, series_tps):
        parts = [p for p, many in ((name, len(models) > 1), (gpu_name, len(gpu_names) > 1),
                                   (f"KV {dtype}", len(dtypes) > 1), (f"TP {tp}", len(series_tps) > 1)) if many]
        series.append((" · ".join(parts) or name, cat.model(name), cat.gpu(gpu_name),
                       BudgetInputs(engine=engine, tp=tp, kv_dtype=dtype)))
    result = sweep_(series, x_axis, xs, fixed_ctx, None, metric)
    if plot:
        on = ", ".join(gpu_names) + (f" (TP {tps})" if tps != "1" and x_axis != "tp" else "")
        plot_sweep(result, plot, f"{result.metric_label} vs {x_axis}: {', '.join(models)} on {on}")
        err_console.print(f"wrote {plot}", markup=False)
    if json:
        print_json(console, result)
    elif csv_out:
        console.out(to_csv(result), highlight=False)
    else:
        render_sweep(console, result)
