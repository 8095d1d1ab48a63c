"""`kvplan frag`: what each allocation strategy wastes on a workload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan.cli.app import (
    DEFAULT_ENGINE, ChunkedOpt, SamplerOpt, DebugOpt, EngineOpt, JsonOpt, KvDtypeOpt, MaxBatchedTokensOpt, MaxSeqsOpt, OfflineOpt, PpOpt, SpecsOpt, TpOpt, UtilOpt, app, catalog, console, err_console, handle_errors, read_option,
)
from kvplan import bounds


@app.command()
@handle_errors
def frag(
    model: Annotated[str, typer.Argument(help="Model whose KV bytes per token to use.")],
    gpu: Annotated[Optional[str], typer.Option("--gpu", "-g", help="GPU: the budget is vLLM's KV pool on it.")] = None,
    kv_gib: Annotated[Optional[float], read_option(bounds.gib, "--kv-gib", metavar="GiB", help="A KV budget in GiB instead of --gpu's pool.")] = None,
    workload: Annotated[str, typer.Option(
        "--workload", "-w", help="chat, fixed:IN,OUT, uniform:LO-HI,LO-HI, or a .csv/.jsonl trace.")] = "chat",
    requests: Annotated[int, read_option(bounds.frag_requests, "--requests", "-n", metavar="N", help="Requests to generate.")] = 10_000,
    seed: Annotated[int, read_option(bounds.seed, "--seed", metavar="N", help="Random seed for generated workloads.")] = 0,
    rate: Annotated[Optional[float], read_option(bounds.rate, "--rate", metavar="PER_S", help="Poisson arrivals, requests per second "
                                                  "(default: all at once).")] = None,
    step_ms: Annotated[float, read_option(bounds.step_ms, "--step-ms", metavar="MS", help="One decode step, ms (turns seconds into steps).")] = 30.0,
    max_len: Annotated[Optional[int], read_option(bounds.tokens, "--max-len", metavar="TOKENS", help="Max sequence length (default: the model's).")] = None,
    block_size: Annotated[int, read_option(bounds.block_size, "--block-size", metavar="TOKENS", help="Tokens per page / doubling start.")] = 16,
    shared_prefix: Annotated[int, read_option(bounds.tokens_or_zero, "--shared-prefix", metavar="TOKENS", help="A system prompt of P tokens on every request.")] = 0,
    sweep_block_size: Annotated[bool, typer.Option("--sweep-block-size", help="Paged waste for blocks 1..256.")] = False,
    kv_dtype: KvDtypeOpt = "auto",
    engine: EngineOpt = DEFAULT_ENGINE, tp: TpOpt = 1, pp: PpOpt = 1, max_num_seqs: MaxSeqsOpt = None, util: UtilOpt = None,
    max_num_batched_tokens: MaxBatchedTokensOpt = None, chunked_prefill: ChunkedOpt = None, sampler: SamplerOpt = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", help="Draw the waste (.png/.svg).")] = None,
    offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """What each allocation strategy wastes on a workload: continuous batching simulated over real allocators.

    Example: kvplan frag opt-13b --gpu a100-40gb --workload chat --max-len 2048 --requests 10000
    """
    from pathlib import Path

    from rich.progress import Progress

    from kvplan.calc.budget import BudgetInputs
    from kvplan.calc.frag import STRATEGIES, fragmentation, kv_budget
    from kvplan.render.base import print_json
    from kvplan.render.frag import render_frag
    from kvplan.specs.workloads import generate, read_trace

    if plot:
        from kvplan.render.output import output_path
        from kvplan.render.plot import PLOT_SUFFIXES

        output_path(plot, "--plot", PLOT_SUFFIXES)  # before any work
    cat = catalog(specs)
    spec = cat.model(model)
    gpu_spec = cat.gpu(gpu) if gpu else None
    inputs = BudgetInputs(engine=engine, tp=tp, pp=pp, kv_dtype=kv_dtype, util=util, max_num_seqs=max_num_seqs,
                          max_num_batched_tokens=max_num_batched_tokens, max_model_len=max_len,
                          chunked_prefill=chunked_prefill, sampler=sampler)
    plan = kv_budget(spec, gpu_spec, kv_gib, kv_dtype, inputs)
    length = spec.max_context if max_len is None else max_len
    per_second = rate * step_ms / 1000 if rate is not None else None
    path = Path(workload)
    reqs = (read_trace(path, length, step_ms) if path.suffix in (".csv", ".jsonl")
            else generate(workload, requests, seed, length, per_second))
    strategies = STRATEGIES if shared_prefix else STRATEGIES[:-1]
    runs = len(strategies) + (9 if sweep_block_size else 0)
    with Progress(console=err_console, transient=True, disable=json or not err_console.is_terminal) as progress:
        task = progress.add_task("simulating", total=runs * len(reqs))  # requests finished, over every run
        done = [0]

        def step(label: str) -> None:  # a run starts: the previous ones are whole
            progress.update(task, completed=done[0] * len(reqs), description=f"{label} ({done[0] + 1}/{runs})")
            done[0] += 1

        tick = lambda finished: progress.update(task, completed=(done[0] - 1) * len(reqs) + finished)  # noqa: E731
        result = fragmentation(spec, gpu_spec, reqs, workload=workload, seed=seed, budget_bytes=plan.budget_bytes,
                               bytes_per_token=plan.bytes_per_token, block=block_size, max_len=length,
                               prefix=shared_prefix, strategies=strategies, sweep=sweep_block_size, step=step,
                               tick=tick, tp=tp, pp=pp, engine=engine, caps=plan.caps,
                               cap_sources=(plan.seqs_source, plan.tokens_source))
    if plot:
        from kvplan.render.plot import plot_frag

        plot_frag(result, plot)
        err_console.print(f"wrote {plot}", markup=False)
    print_json(console, result) if json else render_frag(console, result)
