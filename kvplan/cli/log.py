"""`kvplan log`: an engine's start-up log read back, explained term by term, and planned from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan import bounds
from kvplan.cli.app import (
    DebugOpt, JsonOpt, KvDtypeOpt, MaxLenOpt, OfflineOpt, SpecsOpt, app, catalog, console, handle_errors, read_option,
)


def read_log_arg(path: str):
    """The LoggedStartup of FILE, or of standard input for '-'."""
    from kvplan.specs.engines.logs import load_log, read_log

    if path == "-":
        return read_log(sys.stdin.read(), "stdin")
    return load_log(Path(path))


@app.command()
@handle_errors
def log(
    file: Annotated[str, typer.Argument(metavar="FILE", help="A start-up log (vLLM, SGLang, TensorRT-LLM), or - for stdin.")],
    model: Annotated[Optional[str], typer.Option("--model", help="The model, where the log's name is not in the database.")] = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", "-g", help="The GPU, where the log names none kvplan holds.")] = None,
    engine: Annotated[Optional[str], typer.Option("--engine", help="The engine release (default: the log's).")] = None,
    tp: Annotated[Optional[int], read_option(bounds.gpus, "--tp", metavar="N", help="TP, where the log leaves it out.")] = None,
    pp: Annotated[Optional[int], read_option(bounds.gpus, "--pp", metavar="N", help="PP, where the log leaves it out.")] = None,
    kv_dtype: KvDtypeOpt = "",
    max_len: MaxLenOpt = None,
    speculative_method: Annotated[Optional[str], typer.Option(
        "--speculative-method", metavar="METHOD", help="mtp, eagle or eagle3, where the log leaves its speculative "
        "config out: the drafter's layers join the layout.")] = None,
    num_speculative_tokens: Annotated[Optional[int], read_option(
        bounds.requests, "--num-speculative-tokens", metavar="N", help="Draft tokens a step, where the log leaves "
        "them out.")] = None,
    target: Annotated[Optional[int], read_option(
        bounds.requests, "--target", metavar="N",
        help="Also find the utilization, and the max_model_len, at which N requests of max_model_len fit.")] = None,
    to_check: Annotated[Optional[Path], typer.Option(
        "--to-check", metavar="PATH", help="Write a check file whose expectations guard the logged capacity.")] = None,
    offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """Read an engine's start-up log back: each figure it logs, reproduced from its own terms and
    predicted from defaults, with the rule each follows; when max_num_seqs preempts.

    Example: kvplan log vllm.log --target 16 --to-check capacity.yaml
    """
    from kvplan.calc.logfit import LogSettings, explain_log, holds_logged_tokens
    from kvplan.errors import InputError
    from kvplan.render.base import print_json
    from kvplan.render.log import check_file_text, render_log
    from kvplan.render.output import output_path, write_output
    from kvplan.specs.logmatch import log_gpu, log_model, logged_model

    if to_check is not None:
        output_path(to_check, "--to-check")  # a bad path fails before any work
    startup = read_log_arg(file)
    cat = catalog(specs)
    gpu_spec = log_gpu(cat, startup, gpu)
    given = LogSettings(engine=engine, tp=tp, pp=pp, kv_dtype=kv_dtype or None, max_model_len=max_len,
                        speculative_method=speculative_method, num_speculative_tokens=num_speculative_tokens)
    relabelled = ""
    try:
        model_spec = log_model(cat, startup, model)
    except InputError:
        # a log whose header names one model and whose memory lines are another's: --model is taken where
        # its layout holds the logged tokens in the logged KV memory and the named model's does not
        named = logged_model(cat, startup)
        if not (model and named and holds_logged_tokens(startup, cat.model(model), gpu_spec, given)
                and not holds_logged_tokens(startup, named, gpu_spec, given)):
            raise
        model_spec = cat.model(model)
        relabelled = (f"the log names {startup.model} ({named.name}), but its {startup.kv_cache_gib} GiB hold its "
                      f"{startup.kv_tokens:,} tokens in {model_spec.name}'s layout, not {named.name}'s: planned as "
                      f"{model_spec.name}, as --model asks")
    report = explain_log(startup, model_spec, gpu_spec, given=given, target=target,
                         source="stdin" if file == "-" else file)
    if relabelled:
        report = report.model_copy(update={"notes": (relabelled, *report.notes)})
    if to_check is not None:
        write_output(to_check, check_file_text(report), "--to-check")
    print_json(console, report) if json else render_log(console, report)
    if to_check is not None and not json:
        console.print(f"wrote {to_check}: `kvplan check {to_check}` guards {report.kv_tokens:,} tokens")
