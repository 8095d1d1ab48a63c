"""The command line: exact figures in the output, exact error lines and exit codes, JSON schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kvplan import __version__
from kvplan.cli import main

GOLDEN = Path(__file__).parent / "golden"
COMMANDS = ["size", "models", "gpus", "show", "import", "batch", "fit", "plan", "probe", "offload", "frag", "check", "sweep"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_size_text_output_matches_golden(capsys):
    # The figures in it are derived by hand in test_kv.py; this pins the layout (80 columns).
    code, out, err = run(capsys, "size", "llama3-70b", "--ctx", "4096")
    assert code == 0 and err == ""
    assert out == (GOLDEN / "size_llama3-70b_4096.txt").read_text()
    assert max(len(line) for line in out.splitlines()) <= 80


def words(text: str) -> str:
    return " ".join(text.split())


def test_size_states_both_units(capsys):
    code, out, _ = run(capsys, "size", "llama3-70b", "--ctx", "4k", "--batch", "8")
    assert code == 0
    assert "KV per request 1,342,177,280 B (1.25 GiB, 1.34 GB)" in words(out)
    assert "KV per batch of 8 10,737,418,240 B (10 GiB, 10.74 GB)" in words(out)  # 8 x 1.25 GiB
    assert "GiB = 2^30 B, GB = 10^9 B." in out


def test_size_explain_shows_the_formula(capsys):
    code, out, _ = run(capsys, "size", "llama3-8b", "--ctx", "1024", "--explain")
    assert code == 0
    code, out, _ = run(capsys, "size", "llama3-8b", "--ctx", "1024", "--explain", "--json")
    steps = {s["label"]: s for s in json.loads(out)["explain"]}
    assert steps["32 full: per token per layer"]["formula"] == "2 (K,V) x 8 heads x head_dim 128 = 2,048 x 2 B (bf16)"
    assert steps["32 full: per request"]["formula"] == "32 x (1,024 x 4,096 B)"
    assert steps["32 full: per request"]["value"] == "134,217,728 B"  # 32 x 1024 x 4096 B


SIZE_KEYS = {
    "model", "model_origin", "display_name", "ctx_tokens", "batch", "tp", "block_size", "kv_dtype", "kv_dtype_note",
    "state_dtype", "max_context", "beyond_max_context", "layers", "bytes_per_token_per_gpu",
    "bytes_per_token_all_gpus", "bytes_per_request_per_gpu", "bytes_per_request_all_gpus",
    "bytes_per_request_unsharded", "bytes_per_batch_per_gpu", "bytes_per_batch_all_gpus",
    "page_bytes_per_gpu", "pages_per_request", "paged_bytes_per_request_per_gpu",
    "paged_bytes_per_batch_per_gpu", "without_gqa", "explain"}
LAYER_KEYS = {
    "kind", "count", "description", "cached_tokens", "bytes_per_token_per_layer", "state_bytes_per_layer",
    "bytes_per_request_per_layer", "page_bytes_per_layer", "pages_per_request_per_layer",
    "bytes_per_token", "bytes_per_request", "paged_bytes_per_request"}


def test_size_json_schema_is_stable(capsys):
    code, out, _ = run(capsys, "size", "deepseek-v3", "--ctx", "1", "--tp", "8", "--json")
    data = json.loads(out)
    assert code == 0
    assert set(data) == SIZE_KEYS
    assert set(data["layers"][0]) == LAYER_KEYS
    assert set(data["without_gqa"]) == {"bytes_per_token", "bytes_per_request", "ratio"}
    assert set(data["explain"][0]) == {"label", "formula", "value"}
    assert data["bytes_per_token_per_gpu"] == 61 * 576 * 2 == 70_272


@pytest.mark.parametrize("argv, message", [
    (["size", "lama3-70b"], "error: unknown model 'lama3-70b' (closest: llama3-70b"),
    (["size", "llama3-70b", "--ctx", "0"], "error: --ctx 0 is out of range; use 1..1,073,741,824 tokens"),
    (["size", "llama3-70b", "--ctx", "-5"], "error: --ctx -5 is out of range; use 1..1,073,741,824 tokens"),
    (["size", "llama3-70b", "--ctx", "99999999999"], "error: --ctx 99,999,999,999 is out of range"),
    (["size", "llama3-70b", "--batch", "0"], "error: --batch 0 is out of range"),
    (["size", "llama3-70b", "--tp", "3"], "error: --tp 3 does not divide llama3-70b's 64 attention heads"),
    (["size", "llama3-70b", "--kv-dtype", "fp4"], "error: unknown KV dtype 'fp4'"),
    (["size", "llama3-70b", "--nope"], "error: No such option: --nope"),
    (["size"], "error: Missing argument 'model'"),
    (["show", "h1000"], "error: unknown model or GPU 'h1000' (closest: h100-sxm, v100,"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_malformed_spec_folder_exits_2_naming_file_and_field(capsys, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "x.yaml").write_text("name: x\nhidden_size: -4\n")
    code, _, err = run(capsys, "size", "llama3-8b", "--specs", str(tmp_path))
    assert code == 2
    assert f"error: {tmp_path}/models/x.yaml:2: hidden_size: Input should be greater than or equal to 1" in err


def test_version(capsys):
    assert run(capsys, "--version") == (0, f"kvplan {__version__}\n", "")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(capsys, command):
    code, out, _ = run(capsys, command, "-h")
    assert code == 0
    assert "Example:" in out and f"kvplan {command}" in out


def test_models_and_gpus_json(capsys, catalog):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0 and {m["name"] for m in json.loads(out)} == set(catalog.models.specs)
    code, out, _ = run(capsys, "gpus", "--json")
    assert code == 0 and {g["name"] for g in json.loads(out)} == set(catalog.gpus.specs)


def test_models_table_lists_every_model(capsys, catalog):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert all(name in out for name in catalog.models.specs)


def test_show_prints_yaml_that_validates(capsys, catalog):
    code, out, _ = run(capsys, "show", "Meta-Llama-3-70B")
    assert code == 0
    first, _, body = out.partition("\n")
    assert first.startswith("# ") and first.endswith("llama3-70b.yaml")
    assert yaml.safe_load(body)["layers"] == [{"kind": "full", "count": 80, "num_kv_heads": 8, "head_dim": 128}]
    code, out, _ = run(capsys, "show", "h100", "--json")
    assert json.loads(out)["usable_memory_bytes"] == 81_559 * 2**20


def test_cli_does_not_import_torch():
    code = "import sys, kvplan.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_python_dash_m(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kvplan", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"kvplan {__version__}"


# Each command with the arguments it needs to get as far as its options (a model, a GPU, a file).
MINIMAL = {"size": ["llama3-8b"], "batch": ["llama3-8b", "--gpu", "h100"], "fit": ["llama3-8b", "--gpu", "h100"],
           "plan": ["llama3-8b", "--gpu", "h100"], "probe": ["llama3-8b"],
           "offload": ["llama3-8b", "--gpu", "h100", "--prefix", "4k"], "frag": ["llama3-8b", "--kv-gib", "10"],
           "check": ["examples/planned.yaml"], "sweep": ["llama3-8b", "--gpu", "h100"]}


def _float_options() -> list[tuple[str, str]]:
    """(command, --option) for every float-typed parameter of every command, read from the command
    functions' annotations, so an option added later is covered without editing this test."""
    import typing

    from kvplan.cli import app_for

    found = []
    for name in COMMANDS:
        info = next(i for i in app_for([name]).registered_commands if (i.name or i.callback.__name__) == name)
        for param, hint in typing.get_type_hints(info.callback, include_extras=True).items():
            base, *extras = typing.get_args(hint) or (hint,)
            if float in (base, *typing.get_args(base)):
                decls = [d for e in extras for d in getattr(e, "param_decls", ()) if d.startswith("--")]
                found.append((name, decls[0] if decls else "--" + param.replace("_", "-")))
    return found


FLOAT_OPTIONS = _float_options()


def test_float_options_are_found():
    # the enumeration above must see options from cli/app.py (shared) and from each command module
    for pair in [("batch", "--gpu-mem"), ("fit", "--util"), ("plan", "--overhead-gib"), ("frag", "--kv-gib"),
                 ("frag", "--step-ms"), ("offload", "--mfu"), ("offload", "--host-gib"), ("probe", "--max-gib")]:
        assert pair in FLOAT_OPTIONS


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("command, option", FLOAT_OPTIONS)
def test_non_finite_numbers_are_one_line_errors(capsys, command, option, value):
    # click reads "nan" and "inf" as floats; before this check --gpu-mem nan ended in int()'s ValueError
    assert main([command, *MINIMAL[command], option, value]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {option} {float(value)} is not a number kvplan can use; give a finite one, e.g. 0.9 or 16\n"
