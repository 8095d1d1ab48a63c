"""The `kvplan` command line: parse, call one calculator, render. No arithmetic here."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer import Abort

try:  # recent typer vendors click and exports no UsageError of its own
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - typer that depends on click
    from click.exceptions import UsageError

from kvplan import __version__
from kvplan.errors import KvplanError

app = typer.Typer(
    name="kvplan",
    help="Capacity planner for LLM inference memory: KV-cache size, batch capacity, paging, offload.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

OUTPUT = "Output"
SpecsOpt = Annotated[Optional[list[Path]], typer.Option(
    "--specs", metavar="DIR", help="Extra spec folder (DIR/models/*.yaml, DIR/gpus/*.yaml); "
    "overrides packaged specs by name. Repeatable; also read from $KVPLAN_SPECS.",
    rich_help_panel="Spec database")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.", rich_help_panel=OUTPUT)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.",
                                        rich_help_panel=OUTPUT)]


def handle_errors(command):
    """Turn a KvplanError into one line per problem on stderr and exit code 2 (unless --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KvplanError as err:
            if kwargs.get("debug"):
                raise
            for line in str(err).splitlines():
                err_console.print(f"error: {line}", markup=False)
            raise typer.Exit(err.exit_code) from None

    return wrapper


def catalog(specs: Optional[list[Path]]):
    from kvplan.catalog import load_catalog

    return load_catalog(specs or ())


def tokens(text: str) -> int:
    from kvplan.units import parse_tokens

    return parse_tokens(text)


def _version(value: bool) -> None:
    if value:
        console.print(f"kvplan {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """kvplan: how much memory an LLM's KV cache takes, and how many requests fit.

    Example: kvplan size llama3-70b --ctx 4096
    """


@app.command()
@handle_errors
def size(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id (see `kvplan models`).")],
    ctx: Annotated[str, typer.Option("--ctx", "-c", metavar="TOKENS",
                                     help="Context length in tokens: 4096, 32k (k = 1024), 1m.")] = "4096",
    batch: Annotated[int, typer.Option("--batch", "-b", help="Concurrent requests of that context.")] = 1,
    kv_dtype: Annotated[str, typer.Option(
        "--kv-dtype", help="KV storage: auto (the model's dtype), bf16, fp16, fp32, fp8, int8, int4.")] = "auto",
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel GPUs sharing the KV heads.")] = 1,
    block_size: Annotated[int, typer.Option("--block-size", help="Tokens per KV page.")] = 16,
    explain: Annotated[bool, typer.Option("--explain", help="Show each formula with the numbers plugged in.",
                                          rich_help_panel=OUTPUT)] = False,
    json: JsonOpt = False,
    specs: SpecsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """KV-cache size of MODEL at a context length: per token, per request, per batch, per GPU.

    Example: kvplan size llama3-70b --ctx 4096 --tp 8 --explain
    """
    from kvplan.calc.kv import kv_size
    from kvplan.catalog import find_model
    from kvplan.render import print_json, render_size

    result = kv_size(find_model(model, specs or ()), tokens(ctx), batch=batch, kv_dtype=kv_dtype, tp=tp,
                     block_size=block_size)
    if json:
        print_json(console, result)
    else:
        render_size(console, result, explain=explain)


@app.command()
@handle_errors
def models(json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False) -> None:
    """List the models in the spec database.

    Example: kvplan models --json
    """
    from kvplan.render import models_table, print_json

    specs_ = sorted(catalog(specs).models.specs.values(), key=lambda m: m.name)
    console.print(models_table(specs_)) if not json else print_json(console, specs_)


@app.command()
@handle_errors
def gpus(json: JsonOpt = False, specs: SpecsOpt = None, debug: DebugOpt = False) -> None:
    """List the GPUs in the spec database.

    Example: kvplan gpus
    """
    from kvplan.render import gpus_table, print_json

    specs_ = sorted(catalog(specs).gpus.specs.values(), key=lambda g: g.name)
    console.print(gpus_table(specs_)) if not json else print_json(console, specs_)


@app.command()
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="A model or GPU name, alias or Hugging Face id.")],
    json: JsonOpt = False,
    specs: SpecsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print one spec (model or GPU) as YAML, with the file it came from.

    Example: kvplan show deepseek-v3
    """
    from kvplan.catalog import spec_to_yaml
    from kvplan.errors import NotFoundError
    from kvplan.render import print_json

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
    console.print(f"# {registry.origin[spec.name]}", style="dim")
    console.out(spec_to_yaml(spec), highlight=False)


@app.command("import")
@handle_errors
def import_(
    path: Annotated[Path, typer.Argument(help="A config.json, or a model folder holding one "
                                               "(and *.safetensors for exact parameter counts).")],
    name: Annotated[Optional[str], typer.Option("--name", help="Spec name (default: from the folder).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", metavar="DIR", help="Write DIR/models/NAME.yaml (use DIR with --specs).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Turn a local Hugging Face config.json (or model folder) into a spec YAML, offline.

    Example: kvplan import ./Meta-Llama-3-8B --out ./my-specs
    """
    from kvplan.catalog import spec_to_yaml
    from kvplan.importer import import_model

    result = import_model(path, name=name)
    text = spec_to_yaml(result.spec)
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False)
    if out is None:
        console.out(text, highlight=False)
        return
    target = out / "models" / f"{result.spec.name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    err_console.print(f"wrote {target}; use it with --specs {out}", markup=False)


from kvplan import cli_capacity  # noqa: E402,F401 - registers batch, fit and plan on the app


def _command_name(info) -> str:
    return info.name or info.callback.__name__.replace("_", "-")


def app_for(argv: list[str]) -> typer.Typer:
    """The app with only the command being run registered: typer builds every registered command,
    with pydantic adapters for each parameter, on every start; the others are not needed."""
    name = next((word for word in argv if not word.startswith("-")), None)
    chosen = [info for info in app.registered_commands if _command_name(info) == name]
    if not chosen:
        return app  # no command, --version, -h, or a typo typer will report
    lazy = typer.Typer(name=app.info.name, help=app.info.help, context_settings=app.info.context_settings,
                       no_args_is_help=True, add_completion=False, rich_markup_mode="rich")
    lazy.registered_callback = app.registered_callback
    lazy.registered_commands = chosen
    return lazy


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; usage errors become one 'error:' line and exit code 2, like every bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app_for(argv)(argv, prog_name="kvplan", standalone_mode=False)
    except UsageError as err:
        where = err.ctx.command_path if err.ctx else "kvplan"
        err_console.print(f"error: {err.format_message()} (see `{where} -h`)", markup=False)
        return 2
    except Abort:
        err_console.print("aborted", markup=False)
        return 130
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
