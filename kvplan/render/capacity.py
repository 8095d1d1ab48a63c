"""Rendering for batch, fit and plan: every figure comes from the result; the only arithmetic is
unit conversion and the widths of the memory bar."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.columns import Columns
from rich.table import Table
from rich.text import Text

from kvplan.render.base import wrap_prose, explain_table, origin_line
from kvplan.render.flags import flag, flags_of, source
from kvplan.render.tiers import host_lines
from kvplan.results.capacity import (
    BatchResult, FitResult, MemoryBudget, Overview, PlanResult, Roofline, SmallerFleet, SmallerFleets, StartCheck,
)
from kvplan.units import GIB, fmt_binary, fmt_bytes

NOTE = "GiB = 2^30 B, GB = 10^9 B."


def footer(console: Console, steps, origin: str | None) -> None:
    """What batch and fit end with: the derivation when asked, where the model came from, the units."""
    if steps:
        console.print(explain_table(steps))
    if origin:
        console.print(origin_line(origin))
    console.print(f"[dim]{NOTE}[/]")


def _gib(n: int) -> str:
    return f"{n / GIB:,.2f} GiB"


def budget_table(b: MemoryBudget) -> Table:
    formula = b.engine_formula.replace("weights", "weights + lora") if b.lora_bytes else b.engine_formula
    title = f"Memory budget, one GPU ({b.engine}: {formula})"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("Term")
    table.add_column("GiB", justify="right", no_wrap=True)
    table.add_column("Bytes", justify="right", no_wrap=True)
    table.add_column("Source")
    table.add_row("total", _gib(b.total_bytes), f"{b.total_bytes:,}", source(b.total_source))
    cut = f"; {b.util_cut}" if b.util_cut else ""
    table.add_row("x util", f"{b.util:g}", "", f"{b.util_name}, {source(b.util_source)}{cut}")
    for term, value, text in (("weights", b.weights_bytes, b.weights_source),
                                ("activation", b.activation_bytes, b.activation_source),
                                ("overhead", b.overhead_bytes, b.overhead_source),
                                *([("lora", b.lora_bytes, b.lora_source)] if b.lora_bytes else [])):
        table.add_row(f"- {term}", _gib(value), f"{value:,}", source(text))
    table.add_row("[bold]= KV pool[/]", f"[bold]{_gib(b.kv_pool_bytes)}[/]", f"{b.kv_pool_bytes:,}",
                  f"{b.kv_dtype} KV, {b.block_size}-token pages of {b.page_bytes:,} B")
    return table


def settings_line(b: MemoryBudget) -> str:
    """The values the budget used, each with where it came from, and the rule's source."""
    util = f"{b.util_name} {b.util:g} ({'given' if b.util_source == 'util' else 'the default'})"
    return (f"Settings used: {util}, block_size {b.block_size}, max_num_seqs {b.max_num_seqs:,}, "
            f"max_num_batched_tokens {b.max_num_batched_tokens:,}. Rule: {b.engine_source}.")


def dtype_line(b: MemoryBudget) -> str | None:
    """Which dtype the engine serves in, where it is not simply the checkpoint's."""
    if b.dtype_cast or b.dtype_source == "given":
        why = f"{flag('weights_dtype')} {b.dtype}" if b.dtype_source == "given" else b.dtype_source
        return f"Weights, activations and an auto KV cache in {b.dtype}: {why}."
    return None


def _engine_lines(r: BatchResult) -> list[str]:
    b = r.budget
    return [
        f"KV pool {fmt_bytes(b.usable_pool_bytes)}: {b.num_blocks:,} blocks of {b.block_size} tokens, "
        f"{b.token_capacity:,} tokens",
        f"Maximum concurrency for {r.max_len:,} tokens per request: {r.max_concurrency_at_max_len:,.2f}x",
        *([start_line(r.start)] if r.start.starts else []),  # a refusal is said before any figure
    ]


def start_fix(s: StartCheck) -> str:
    """What makes the engine start: the longest max_len that does, or what else to change."""
    if s.refused:
        return "change the setting it names"
    if s.beyond_context:
        shorter = (f"{flag('max_model_len')} {s.largest_max_model_len}" if s.largest_max_model_len
                   else "a larger GPU")
        return (f"{shorter}, or {flag('allow_long_max_len')} to start past it anyway (as "
                f"{s.long_context_switch} does; outputs past the trained context may be wrong)")
    if s.no_pool:
        return "more tensor or pipeline parallelism, quantized weights, or a larger GPU"
    if not s.largest_max_model_len:
        return f"raise {flag('util')} or add GPUs"
    engine_flag = f" (engine flag {s.engine_max_len_flag} {s.largest_max_model_len})" if s.engine_max_len_flag else ""
    return f"{flag('max_model_len')} {s.largest_max_model_len} would start it{engine_flag}"


def start_line(s: StartCheck) -> str:
    """The verdict on whether the engine starts, with the fix when it does not."""
    engine = s.engine[:1].upper() + s.engine[1:] if s.engine.islower() else s.engine  # "the engine" opens a line
    if s.starts and s.cut_at:
        return (f"{engine} starts, but its pool holds {s.pool_tokens:,} tokens, fewer than max_model_len "
                f"{s.max_model_len:,}: it admits requests of at most {s.cut_at:,} tokens")
    if s.starts:
        return (f"{engine} starts: one request of max_model_len {s.max_model_len:,} needs "
                f"{fmt_binary(s.needed_bytes)} of the {fmt_binary(s.kv_pool_bytes)} pool")
    return f"[bold red]{engine} will not start[/]: {s.reason}; {start_fix(s)}"


def strategies_table(r: BatchResult) -> Table:
    title = (f"Concurrency by allocation strategy: average {r.avg_tokens:,} tokens (in + out/2), "
             f"peak {r.peak_tokens:,} (in + out)")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("Strategy", "Reserved avg", "Per request avg", "Fit avg", "Reserved peak", "Fit peak"):
        table.add_column(name, justify="left" if name == "Strategy" else "right")
    for s in r.strategies:
        table.add_row(s.strategy, f"{s.reserved_tokens_avg:,}", fmt_binary(s.bytes_per_request_avg),
                      f"{s.concurrency_avg:,}", f"{s.reserved_tokens_peak:,}", f"{s.concurrency_peak:,}")
    return table


def roofline_lines(roof: Roofline) -> list[str]:
    return [
        f"Decode step at batch {roof.batch:,} (context {roof.context_tokens:,}): "
        f"{roof.step_time_s * 1e3:,.2f} ms, {roof.bound}-bound "
        f"(memory {roof.memory_time_s * 1e3:,.2f} ms: {fmt_binary(roof.weight_bytes)} weights + "
        f"{fmt_binary(roof.kv_bytes)} KV at {roof.hbm_bandwidth_gbps:,g} GB/s; compute "
        f"{roof.compute_time_s * 1e3:,.2f} ms: {roof.flops / 1e12:,.2f} TFLOP at {roof.peak_tflops:,g} TFLOPS)",
        f"Throughput at that batch: {roof.tokens_per_s:,.0f} tokens/s per replica",
        f"Decode turns compute-bound at batch ~{roof.compute_bound_batch:,} "
        f"(weights alone; peak: {roof.peak_source})",
    ]


def render_batch(console: Console, r: BatchResult, explain: bool = False) -> None:
    b = r.budget
    console.print(f"[bold]{r.model}[/] on {b.gpu} · TP {b.tp} · PP {b.pp} · {r.in_tokens:,} in / "
                  f"{r.out_tokens:,} out · max_len {r.max_len:,}")
    console.print(budget_table(b))
    console.print(f"[dim]{settings_line(b)}[/]")
    if dtype_line(b):
        console.print(dtype_line(b), markup=False)
    for line in host_lines(b):
        console.print(wrap_prose(line, console.width), markup=False)
    if not r.start.starts:  # before any capacity or throughput figure: what follows is what it would hold
        console.print(start_line(r.start))
        console.print(f"[dim]If it started (at a {flag('max_model_len')} it accepts):[/]")
    console.print(strategies_table(r))
    for line in _engine_lines(r):
        console.print(line)
    if r.default_engine_paged is not None and r.default_engine_kv_pool_bytes is not None:
        p = r.default_engine_paged
        console.print(f"The default engine, nothing overridden: KV pool {_gib(r.default_engine_kv_pool_bytes)}, "
                      f"paged {p.concurrency_avg:,} at average, {p.concurrency_peak:,} at peak")
    if r.longest_ctx_tokens is not None:
        console.print(f"Longest context at which {r.longest_ctx_requests:,} requests fit (paged): {r.longest_ctx_tokens:,} tokens")
    if r.roofline:
        for line in roofline_lines(r.roofline):
            console.print(wrap_prose(line, console.width), markup=False)
    footer(console, b.explain if explain else (), r.model_origin)


def render_releases(console: Console, results: list[BatchResult], asked: tuple[str, ...]) -> None:
    """`kvplan batch --engine A,B`: one row per engine or release, what an upgrade does before it ships;
    each as asked, with the preset that holds it where that reads otherwise ("vllm==0.10 (0.8)")."""
    first = results[0]
    title = (f"{first.model} on {first.budget.gpu} · TP {first.budget.tp} · PP {first.budget.pp} · "
             f"{first.in_tokens:,} in / {first.out_tokens:,} out (GiB)")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("Engine", overflow="fold")  # a long release ("sglang==0.4.9.post3") folds, the figures stay whole
    for name in ("Weights", "Act.", "Other", "KV pool", "Change", "Tokens", "Fit"):
        table.add_column(name, justify="right", no_wrap=True)
    base = first.budget.usable_pool_bytes
    for r, name in zip(results, asked):
        b, paged = r.budget, r.strategies[-1]
        change = "" if r is first or not base else f"{100 * (b.usable_pool_bytes / base - 1):+.1f}%"
        preset = b.engine.partition("==")[2]
        label = name if not preset or name.endswith("==" + preset) else f"{name} ({preset})"
        table.add_row(label, f"{b.weights_bytes / GIB:.2f}", f"{b.activation_bytes / GIB:.2f}",
                      f"{b.overhead_bytes / GIB:.2f}", f"{b.kv_pool_bytes / GIB:.2f}", change, f"{b.token_capacity:,}",
                      f"{paged.concurrency_avg:,}" if r.start.starts else "no start")
    console.print(table)
    console.print(wrap_prose("Other: non-torch memory, NCCL, CUDA graphs. Fit: paged requests at the average "
                             "length. Each release's rules and memory fraction: `kvplan engines`; "
                             f"one in full: {flag('engine')} NAME==VERSION --explain.", console.width), markup=False)


def render_overview(console: Console, r: Overview) -> None:
    title = (f"Every model on {r.gpu} ({r.engine}, KV {r.kv_dtype}): {r.in_tokens:,} in / "
             f"{r.out_tokens:,} out, at the smallest TP that serves one request")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("Model", "TP", "Weights\nGiB/GPU", "KV\nGiB/GPU", "Fit\navg", "Fit\npeak", "Note"):
        # headers on two lines and long names folded: the table fits 80 columns whole
        table.add_column(name, justify="left" if name in ("Model", "Note") else "right", overflow="fold",
                         max_width=28 if name == "Model" else None, no_wrap=name not in ("Model", "Note"))
    for row in r.rows:
        fits = row.tp is not None
        gib = lambda n: f"{n / GIB:,.1f}" if fits else "-"  # noqa: E731
        table.add_row(row.model, str(row.tp) if fits else "-", gib(row.weights_bytes_per_gpu),
                      gib(row.kv_pool_bytes_per_gpu), f"{row.concurrency_avg:,}", f"{row.concurrency_peak:,}",
                      row.note)
    console.print(table)
    console.print(f"[dim]{NOTE}[/]")


def _bar(b: MemoryBudget, used: int, free: int, width: int = 60) -> tuple[Columns, Text]:
    parts = [("weights", b.weights_bytes, "magenta"), ("activation", b.activation_bytes, "yellow"),
             ("overhead", b.overhead_bytes, "red"), ("LoRA", b.lora_bytes, "blue"), ("KV used", used, "green"),
             ("KV free", free, "cyan")]
    total = max(b.total_bytes, sum(p[1] for p in parts))
    bar = Text()
    for name, value, colour in parts:
        bar.append("█" * round(width * max(value, 0) / total), style=colour)
    bar.append("░" * max(width - len(bar.plain), 0), style="dim")
    # one cell per term, so that a narrow terminal wraps between terms, never inside "14.96 GiB"
    legend = Columns([Text.from_markup(f"[{c}]■[/] {n} {_gib(v)}") for n, v, c in parts if v > 0],
                     padding=(0, 2))
    return legend, bar


def render_fit(console: Console, r: FitResult, explain: bool = False) -> None:
    b = r.budget
    console.print(f"[bold]{r.model}[/] on {b.gpu} · TP {b.tp} · PP {b.pp} · {r.ctx_tokens:,}-token requests")
    console.print(budget_table(b))
    console.print(f"[dim]{settings_line(b)}[/]")
    if dtype_line(b):
        console.print(dtype_line(b), markup=False)
    for line in host_lines(b):
        console.print(wrap_prose(line, console.width), markup=False)
    legend, bar = _bar(b, r.kv_used_bytes, r.free_bytes, min(60, console.width))
    console.print(bar)
    console.print(legend)
    style = "green" if r.fits else "red"
    how = f"; {start_fix(r.start)}" if not r.start.starts and r.budget.weights_fit and r.concurrency else ""
    console.print(f"[bold {style}]{r.verdict}[/] ({fmt_binary(r.bytes_per_request)} per request){how}")
    if r.start.starts:
        console.print(start_line(r.start))
    if r.knobs:
        table = Table(title="What would make it fit", title_justify="left", box=box.SIMPLE_HEAD)
        for name in ("Change", "Flags", "KV pool/GPU", "Requests", "Fits"):
            table.add_column(name, justify="right" if name in ("KV pool/GPU", "Requests") else "left")
        for k in r.knobs:
            table.add_row(k.change, flags_of(k.fix), _gib(k.kv_pool_bytes), f"{k.concurrency:,}", "yes" if k.fits else "no")
        console.print(table)
    fix = next((k for k in r.knobs if k.fits and k.command), None)
    if r.command:
        console.print(f"Deploy with:\n  {r.command}", soft_wrap=True, highlight=False, markup=False)
    elif fix:  # a setting that does not start or fit gets no deploy line; the fix kvplan recommends does
        times = f", {fix.fix['replicas']} replicas of" if "replicas" in fix.fix else ""
        console.print(f"Deploy what kvplan recommends instead ({fix.change}{times}):\n  {fix.command}",
                      soft_wrap=True, highlight=False, markup=False)
    if r.command_note:
        console.print(f"[yellow]{r.command_note}.[/]")
    footer(console, b.explain if explain else (), r.model_origin)


def _deployments_table(title: str, rows) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("KV", "TP", "PP", "Per replica", "Replicas", "GPUs", "Nodes", "KV/request/GPU"):
        table.add_column(name, justify="left" if name == "KV" else "right")
    for d in rows:
        capped = f" (cap; {d.fitting_per_replica:,} fit)" if d.concurrency_per_replica < d.fitting_per_replica else ""
        table.add_row(d.kv_dtype, str(d.tp), str(d.pp), f"{d.concurrency_per_replica:,}{capped}", f"{d.replicas:,}",
                      f"{d.gpus:,}", f"{d.nodes:,}", fmt_binary(d.bytes_per_request_per_gpu))
    return table


def _falls_short(f: SmallerFleet, asked: int, ctx: int) -> str:
    """Why a fleet below the best does not do, in a few words."""
    if not f.starts:
        if not f.kv_pool_bytes:
            return "no KV pool"
        return f"start: {f.needed_bytes / GIB:,.2f} > {_gib(f.kv_pool_bytes)}"  # needs > pool
    return f"holds < {asked:,}" if f.fitting_per_replica else f"no request of {ctx:,}"


def smaller_table(r: PlanResult) -> Table:
    """The largest fleets of fewer GPUs than each best deployment, and what they hold."""
    table = Table(title="Fewer GPUs: replicas x each = what they hold", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("KV", "TP", "PP", "GPUs", "Replicas", "Each", "Holds", "Short because"):
        table.add_column(name, justify="left" if name in ("KV", "Short because") else "right")
    for fleets in r.smaller:
        for f in fleets.nearest:
            capped = f.concurrency_per_replica < f.fitting_per_replica
            each = f"{f.concurrency_per_replica:,}" + (f" (cap; {f.fitting_per_replica:,} fit)" if capped else "")
            held = bool(f.concurrency)
            table.add_row(f.kv_dtype, str(f.tp), str(f.pp), f"{f.gpus:,}", f"{f.replicas:,}", each if held else "-",
                          f"{f.concurrency:,}" if held else "-", _falls_short(f, r.concurrency, r.ctx_tokens))
    return table


def smaller_line(r: PlanResult, fleets: SmallerFleets) -> str:
    """The proof in one sentence: every shape below the best holds fewer than asked, or does not serve."""
    starting = fleets.shapes - fleets.not_serving
    verbs = "starts and holds" if starting == 1 else "start and hold"
    parts = [f"{starting:,} {verbs} at most {fleets.most_held:,} of the {r.concurrency:,} asked" if starting else ""]
    if fleets.not_serving:
        parts.append(f"{fleets.not_serving:,} {'does' if fleets.not_serving == 1 else 'do'} not start or "
                     f"{'holds' if fleets.not_serving == 1 else 'hold'} no request")
    return (f"{fleets.kv_dtype} KV, below {fleets.best_gpus:,} GPUs: {fleets.shapes:,} shapes (TP x PP); "
            + "; ".join(p for p in parts if p) + ".")


def render_plan(console: Console, r: PlanResult, explain: bool = False) -> None:
    console.print(f"[bold]{r.model}[/] on {r.gpu}: {r.concurrency:,} concurrent requests of {r.ctx_tokens:,} "
                  f"tokens, max_len {r.max_len:,}, {r.gpus_per_node} GPUs per node")
    console.print(_deployments_table("Smallest deployment per KV dtype", r.best))
    if any(fleets.nearest for fleets in r.smaller):
        console.print(smaller_table(r))
    lines = [smaller_line(r, fleets) for fleets in r.smaller if fleets.shapes]  # none when the best is one GPU
    for line in lines:
        console.print(f"[dim]{line}[/]")
    if lines and r.runners_up:
        console.print()
    if r.runners_up:
        console.print(_deployments_table("Runners-up: fewer pipeline stages, more GPUs", r.runners_up))
    for d in r.best:
        if d.command:
            console.print(f"Deploy ({d.kv_dtype} KV):\n  {d.command}", soft_wrap=True, highlight=False, markup=False)
    for line in r.infeasible:
        console.print(f"[red]{line}[/]")
    if explain:
        console.print(explain_table(r.explain))
    if r.model_origin:
        console.print(origin_line(r.model_origin))
    console.print(f"[dim]Searched {r.searched}. A stage holds ceil(layers / PP) of each kind; PP adds pipeline "
                  "bubbles that this memory plan does not price.[/]")
