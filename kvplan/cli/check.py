"""`kvplan check`: CI capacity gates from check files or inline flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan.cli.app import (
    DEFAULT_ENGINE, DebugOpt, EngineOpt, FromLogOpt, JsonOpt, KvDtypeOpt, OfflineOpt, SpecsOpt, app, catalog, console,
    handle_errors, read_option, spelled,
)
from kvplan import bounds
from kvplan.errors import KvplanError, SpecError


@app.command()
@handle_errors
def check(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Check files (YAML scenarios).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Inline scenario: the model.")] = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", "-g", help="Inline scenario: the GPU.")] = None,
    tp: Annotated[int, read_option(bounds.gpus, "--tp", metavar="N", help="Inline scenario: tensor-parallel GPUs.")] = 1,
    ctx: Annotated[Optional[int], read_option(bounds.tokens, "--ctx", metavar="TOKENS", help="Inline scenario: tokens per request.")] = None,
    kv_dtype: KvDtypeOpt = "auto",
    engine: EngineOpt = DEFAULT_ENGINE,
    min_concurrency: Annotated[Optional[int], read_option(bounds.requests, "--min-concurrency", metavar="N", help="Inline expectation.")] = None,
    min_kv_tokens: Annotated[Optional[int], read_option(bounds.tokens, "--min-kv-tokens", metavar="TOKENS", help="Inline expectation.")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", metavar="PATH", help="Write a JUnit XML report.")] = None,
    markdown: Annotated[Optional[Path], typer.Option(
        "--markdown", metavar="PATH", help="Append the summary as a Markdown table, e.g. to $GITHUB_STEP_SUMMARY.")] = None,
    from_log: FromLogOpt = None,
    offline: OfflineOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False,
) -> None:
    """CI capacity gates: exit 0 when every scenario meets its expectations, 1 when one does not, 2 on bad input.

    Example: kvplan check examples/capacity.yaml --junit report.xml
    """
    from kvplan.calc.check import evaluate, report
    from kvplan.errors import InputError
    from kvplan.render.base import print_json
    from kvplan.render.check import render_check, write_junit, write_markdown
    from kvplan.render.output import output_path
    from kvplan.specs.checkfile import inline_scenario, load_check_file

    for flag, path in (("--junit", junit), ("--markdown", markdown)):
        if path is not None:
            output_path(path, flag)  # before any work: a bad path fails fast, not after the checks
    scenarios = [s for path in files or () for s in load_check_file(path)]
    if model:
        expect = {"fits": True if min_concurrency is None and min_kv_tokens is None else None,
                  "min_concurrency": min_concurrency, "min_kv_tokens": min_kv_tokens}
        scenarios.append(inline_scenario(name=f"{model} on {gpu}", model=model, gpu=gpu or "", tp=tp, engine=engine,
                                         kv_dtype=kv_dtype, ctx=ctx, expect=expect))
    if not scenarios:
        raise InputError("nothing to check: pass a check file or --model and --gpu")
    cat = catalog(specs)
    results, problems = [], []
    for s in scenarios:  # every scenario's problem in one run, not the first alone
        try:
            model_spec, gpu_spec = cat.model(s.model or ""), cat.gpu(s.gpu or "")
            s = s.model_copy(update={"draft_spec": cat.model(s.draft_model)}) if s.draft_model else s
            results.append(evaluate(model_spec, gpu_spec, on_log(from_log, s, gpu_spec, cat)))
        except KvplanError as err:
            problems.append(f"{s.source or 'inline scenario'} ({s.name}): {spelled(err)}")
    if problems:
        raise SpecError("\n".join(problems))
    if junit:
        write_junit(junit, results)
    if markdown:
        write_markdown(markdown, results)
    print_json(console, report(results)) if json else render_check(console, results)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def on_log(path: Optional[Path], s, gpu_spec, cat):
    """The scenario on the measured terms of the log at `path` (--from-log), checked to be its model's."""
    if path is None:
        return s
    from kvplan.calc.fromlog import scenario_from_log
    from kvplan.specs.engines.registry import engine as engine_entry
    from kvplan.specs.engines.logs import load_log
    from kvplan.specs.logmatch import log_model
    from kvplan.units import GIB

    startup = load_log(path)
    log_model(cat, startup, s.model)
    total = round(s.gpu_mem_gib * GIB) if s.gpu_mem_gib is not None else engine_entry(s.engine).total_memory(gpu_spec).value
    return scenario_from_log(startup, s, total, cat.model(s.model))
