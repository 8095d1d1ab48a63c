"""Rendering for `kvplan log`: what the log states, each figure beside kvplan's, and the next question."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from kvplan.render.base import print_prose
from kvplan.results.log import LoggedFigure, LogReport


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "tokens":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _reproduced(figure: LoggedFigure) -> str:
    if figure.reproduced_low is None or figure.reproduced_high is None:
        return "-"
    low, high = _value(figure.reproduced_low, figure.unit), _value(figure.reproduced_high, figure.unit)
    span = low if low == high else f"{low}-{high}"
    return span + (" ok" if figure.reproduced else " [bold red]off[/]")


def _error(figure: LoggedFigure) -> str:
    return "-" if figure.error is None else f"{100 * figure.error:+.1f}%"


def render_log(console: Console, r: LogReport) -> None:
    head = f"{r.source}: {r.engine}" + (f" (logged release {r.release})" if r.release else "")
    console.print(head, style="bold", soft_wrap=True)
    gpu = r.gpu or "the log's total memory"
    print_prose(console, f"{r.model} (the log's {r.model_in_log or 'model'}) on {gpu}"
                + (f" (the log's {r.gpu_in_log})" if r.gpu_in_log else "")
                + f" · TP {r.tp} · PP {r.pp} · KV {r.kv_dtype} · max_model_len {r.max_model_len:,} · "
                f"block {r.block_size} · max_num_seqs {r.max_num_seqs:,} · utilization {r.gpu_memory_utilization:g}"
                + ("" if r.util is not None else " (not logged: the release's default)"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for name, justify in (("Figure", "left"), ("Logged", "right"), ("From its terms", "right"),
                          ("Predicted", "right"), ("Error", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "Figure")  # type: ignore[arg-type]
    for f in r.figures:
        unit = f" {f.unit}" if f.unit == "GiB" else ""
        table.add_row(f.name + unit, _value(f.logged, f.unit), _reproduced(f), _value(f.predicted, f.unit), _error(f))
    console.print(table)
    for f in r.figures:
        if f.rule:
            print_prose(console, f"{f.name}: {f.rule}", style="dim")
    if r.preempts_at:
        print_prose(console, r.preempts_at)
    if r.target:
        util = (f"utilization {r.target_util:g} fits {r.target:,} requests of {r.max_model_len:,} tokens"
                if r.target_util else f"no utilization fits {r.target:,} requests of {r.max_model_len:,} tokens")
        length = (f"; at utilization {r.gpu_memory_utilization:g}, max_model_len {r.target_max_model_len:,} fits "
                  f"{r.target:,}" if r.target_max_model_len else "")
        print_prose(console, f"--target {r.target:,}: {util}{length} (from the log's measured terms).")
    for note in r.notes:
        print_prose(console, note, style="dim")


def check_file_text(r: LogReport) -> str:
    """A check file of one scenario: the log's settings and measured terms, expecting at least the
    token capacity kvplan gives those terms, or the logged one where that is less (the terms are
    rounded), so that a change that shrinks the pool fails `kvplan check` and the file passes as written."""
    import yaml

    from kvplan.errors import InputError

    if r.guarded_kv_tokens is None or r.measured_total_gib is None:
        raise InputError(f"--to-check: {r.source} states too few terms (GPU total, weights, KV memory) to guard; "
                         "paste the log from the engine's start", "to_check")
    if not r.gpu:
        raise InputError("--to-check: the log names no GPU kvplan holds; pass --gpu (the log's total is kept)",
                         "to_check")
    name = Path(r.source).name
    scenario = {"name": f"{r.model}-as-logged", "model": r.model, "gpu": r.gpu, "engine": r.engine,
                "tp": r.tp, "pp": r.pp, "kv_dtype": r.kv_dtype, "util": r.util, "max_model_len": r.max_model_len,
                "max_num_seqs": r.max_num_seqs, "max_num_batched_tokens": r.max_num_batched_tokens,
                "allow_long_max_len": r.allow_long_max_len or None,
                "num_speculative_tokens": r.num_speculative_tokens or None,
                "gpu_mem_gib": r.measured_total_gib, "weights_gib": r.measured_weights_gib,
                "activation_gib": r.measured_rest_gib, "overhead_gib": 0.0,
                "expect": {"fits": True, "min_kv_tokens": r.guarded_kv_tokens}}
    scenario = {key: value for key, value in scenario.items() if value is not None}
    head = (f"# Written by `kvplan log {name} --to-check`:\n"
            f"# {r.model} on the terms that log measured (the GPU's total, the weights, the rest\n"
            f"# of the non-KV memory); it logged {r.kv_tokens:,} tokens. `kvplan check` fails when a\n"
            "# change to the settings or to kvplan's rules shrinks the pool below them.\n")
    return head + yaml.safe_dump({"scenarios": [scenario]}, sort_keys=False)
