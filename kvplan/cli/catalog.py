"""`kvplan models`, `gpus`, `show` and `import`: the spec database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kvplan.cli.app import DebugOpt, JsonOpt, OfflineOpt, SpecsOpt, app, catalog, console, err_console, handle_errors


NewOpt = Annotated[bool, typer.Option("--new", help="List the families and releases instead: the day each "
                                      "config was published, newest first, by family.")]


@app.command()
@handle_errors
def models(new: NewOpt = False, json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False) -> None:
    """List the models in the spec database (--new: by family and release date, newest first).

    Example: kvplan models --new
    """
    from kvplan.calc.listing import model_rows, release_rows
    from kvplan.render.base import print_json
    from kvplan.render.catalog import RELEASES_NOTE, models_table, releases_table

    specs_ = sorted(catalog(specs).models.specs.values(), key=lambda m: m.name)
    if not new:
        print_json(console, specs_) if json else console.print(models_table(model_rows(specs_)))
        return
    families = release_rows(specs_)
    if json:
        print_json(console, list(families))
        return
    console.print(releases_table(families))
    console.print(f"[dim]{RELEASES_NOTE}[/]")


@app.command()
@handle_errors
def gpus(json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False) -> None:
    """List the GPUs in the spec database.

    Example: kvplan gpus
    """
    from kvplan.calc.listing import gpu_rows
    from kvplan.render.base import print_json
    from kvplan.render.catalog import GPU_NOTE, gpus_table

    specs_ = sorted(catalog(specs).gpus.specs.values(), key=lambda g: g.name)
    if json:
        print_json(console, specs_)
        return
    console.print(gpus_table(gpu_rows(specs_)))
    console.print(f"[dim]{GPU_NOTE}[/]")


@app.command()
@handle_errors
def engines(json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """List the engines and the release presets of each: what each release changes, and the source it reads.

    Example: kvplan engines
    """
    from kvplan.calc.listing import engine_rows
    from kvplan.render.base import print_json
    from kvplan.render.catalog import engines_table

    rows = engine_rows()
    if json:
        print_json(console, list(rows))
        return
    console.print(engines_table(rows))
    console.print("[dim]Fraction: each engine's memory fraction (vLLM gpu_memory_utilization of the device total; "
                  "SGLang mem_fraction_static; TensorRT-LLM free_gpu_memory_fraction of what is free after "
                  "loading). The sources each preset reads: --json, or docs/engine-rules/.[/]")


@app.command()
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="A model or GPU name, alias or Hugging Face id.")],
    offline: OfflineOpt = False,
    json: JsonOpt = False,
    specs: SpecsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print one spec (model or GPU) as YAML, with the file it came from.

    Example: kvplan show deepseek-v3
    """
    from kvplan.errors import NotFoundError
    from kvplan.render.base import print_json
    from kvplan.specs.catalog import spec_to_yaml

    cat = catalog(specs)
    try:
        spec, registry = cat.model(name), cat.models
    except NotFoundError:
        try:
            spec, registry = cat.gpu(name), cat.gpus
        except NotFoundError:
            raise NotFoundError(cat.unknown_message(name)) from None
    if json:
        print_json(console, spec)
        return
    from_files = not getattr(spec, "origin", None) or spec.origin.startswith(("kvplan's database", "spec file"))
    where = registry.origin[spec.name] if from_files else spec.origin  # a path, the cache, the Hub, a name
    console.print(f"# {where}", style="dim", soft_wrap=True)
    console.out(spec_to_yaml(spec), highlight=False)


@app.command("import")
@handle_errors
def import_(
    path: Annotated[Path, typer.Argument(help="A config.json, or a model folder holding one "
                                               "(and *.safetensors for exact parameter counts).")],
    name: Annotated[Optional[str], typer.Option("--name", help="Spec name (default: from the folder).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", metavar="DIR", help="Write DIR/models/NAME.yaml (use DIR with --specs).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a spec of the same name in --out.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Turn a local Hugging Face config.json (or model folder) into a spec YAML, offline.

    Example: kvplan import ./Meta-Llama-3-8B --out ./my-specs
    """
    from kvplan.errors import InputError
    from kvplan.render.output import output_folder, write_output
    from kvplan.specs.catalog import spec_to_yaml
    from kvplan.specs.importer import import_model

    if out is not None:
        output_folder(out, "--out")  # before any work: a file where the folder belongs, a name too long
    result = import_model(path, name=name)
    text = spec_to_yaml(result.spec)
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False)
    if out is None:
        console.out(text, highlight=False)
        return
    target = out / "models" / f"{result.spec.name}.yaml"
    if target.exists() and not force:
        raise InputError(f"{target} exists; pass --force to overwrite it, or --name to write another spec")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot make {target.parent} ({exc.strerror}); pick another folder") from None
    write_output(target, text, "--out")
    err_console.print(f"wrote {target}; use it with --specs {out}", markup=False)
