"""The `kvplan` command line: parse, call one calculator, render. No arithmetic here.

Each command lives in a module of this package; only the module of the command being run is
imported (and only its command registered), since typer builds every registered command, with a
pydantic adapter per parameter, on every start.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Optional

import typer
from typer import Abort

if TYPE_CHECKING:  # the typer type-checked against; either class has what main() reads
    from typer._click.exceptions import UsageError
else:
    try:  # recent typer vendors click and exports no UsageError of its own
        from typer._click.exceptions import UsageError
    except ImportError:  # pragma: no cover - typer that depends on click
        from click.exceptions import UsageError

from kvplan.cli.app import app, err_console
from kvplan.errors import KvplanError

# command -> the module that defines it, in the order `kvplan -h` lists them
COMMANDS = {
    "size": "size", "models": "catalog", "gpus": "catalog", "engines": "catalog", "show": "catalog", "import": "catalog",
    "batch": "capacity", "fit": "capacity", "plan": "capacity", "probe": "probe", "offload": "offload",
    "frag": "frag", "check": "check", "sweep": "sweep", "log": "log",
}


def _command_name(info) -> str:
    return info.name or info.callback.__name__.replace("_", "-")


def register(module: str) -> None:
    importlib.import_module(f"kvplan.cli.{module}")  # its @app.command() decorators register it


def app_for(argv: list[str]) -> typer.Typer:
    """The app holding only the command being run; with no command (--version, -h) or a name typer
    must report as unknown, every command, in the order of COMMANDS."""
    name = next((word for word in argv if not word.startswith("-")), None)
    if name not in COMMANDS:
        for module in dict.fromkeys(COMMANDS.values()):
            register(module)
        order = list(COMMANDS)
        app.registered_commands.sort(key=lambda info: order.index(_command_name(info)))
        return app
    register(COMMANDS[name])
    lazy = typer.Typer(name=app.info.name, help=app.info.help, context_settings=app.info.context_settings,
                       no_args_is_help=True, add_completion=False, rich_markup_mode="rich")
    lazy.registered_callback = app.registered_callback
    lazy.registered_commands = [info for info in app.registered_commands if _command_name(info) == name]
    return lazy


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; usage errors become one 'error:' line and exit code 2, like every bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # kvplan's pydantic models are its own (specs, results): no plugin has a reason to watch them, and
    # discovering plugins scans every installed distribution's entry points (~12 ms). typer turns
    # plugins off the same way while it builds its adapters. A value the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    offline = os.environ.get("HF_HUB_OFFLINE")  # --offline sets it for this run only
    try:
        result = app_for(argv)(argv, prog_name="kvplan", standalone_mode=False)
    except UsageError as err:
        where = err.ctx.command_path if err.ctx else "kvplan"
        err_console.print(f"error: {err.format_message()} (see `{where} -h`)", markup=False)
        return 2
    except KvplanError as err:  # a value refused while click parsed it (kvplan.bounds)
        err_console.print(f"error: {err}", markup=False)
        return err.exit_code
    except Abort:
        err_console.print("aborted", markup=False)
        return 130
    finally:
        if offline is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = offline
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
