"""The fuzzer's residue (issue #25): inputs that ended as "internal error" (exit 3) though they are
the user's mistake. Each is now one line naming the file, the key or the option and the fix, exit 2."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from kvplan.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
LLAMA = json.loads((FIXTURES / "llama3-8b" / "config.json").read_text())
SPEC = (Path(__file__).parents[1] / "examples" / "specs" / "models" / "llama3-8b-32k.yaml").read_text().replace(
    "name: llama3-8b-32k", "name: x")
LONG = "9" * 5000  # int() refuses over 4,300 digits: a ValueError deep in the parser
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads recurses once a level: a RecursionError


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def config_folder(tmp_path: Path, cfg: dict | None = None, text: str | None = None, name: str = "m") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(text if text is not None else json.dumps(cfg))
    return folder


def refused(capsys, message: str, *argv) -> None:
    """Exit 2, nothing on stdout, and exactly `message` as the one line on stderr."""
    code, out, err = run(capsys, *argv)
    assert (code, out, err) == (2, "", f"error: {message}\n")


DIGITS = "a whole number of 5,000 digits is beyond any value kvplan reads (at most 300); write the value meant"


# --- 1. whole numbers of thousands of digits ------------------------------------------------------

def test_a_number_of_thousands_of_digits_in_a_spec_file(capsys, tmp_path):
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "x.yaml"
    path.write_text(SPEC.replace("num_layers: 32", f"num_layers: {LONG}"))
    line = SPEC.splitlines().index("num_layers: 32") + 1
    refused(capsys, f"{path}:{line}: {DIGITS}", "size", "x", "--specs", str(tmp_path))


def test_a_number_of_thousands_of_digits_in_a_check_file(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"scenarios:\n  - name: a\n    model: llama3-8b\n    gpu: h100\n    ctx: {LONG}\n")
    refused(capsys, f"{path}:5: {DIGITS}", "check", str(path))


def test_a_number_of_thousands_of_digits_in_a_config(capsys, tmp_path):
    folder = config_folder(tmp_path, text=json.dumps(LLAMA)[:-1] + f',\n "rope_theta": {LONG}\n}}')
    refused(capsys, f"{folder / 'config.json'}:2: {DIGITS}", "size", str(folder))


def test_a_number_of_thousands_of_digits_in_a_trace(capsys, tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text(f'{{"input_tokens": 10, "output_tokens": 5}}\n{{"input_tokens": {LONG}, "output_tokens": 5}}\n')
    refused(capsys, f"{trace}:2: {DIGITS}", "frag", "llama3-8b", "--kv-gib", "1", "--workload", str(trace))


def test_a_whole_number_beyond_a_float_where_a_decimal_belongs(capsys, tmp_path):
    trace = tmp_path / "t.jsonl"  # 10^299: read as an int, then float() overflowed
    trace.write_text(f'{{"input_tokens": 10, "output_tokens": 5, "arrival_s": {10**299}}}\n')
    refused(capsys, f"{trace}:1: arrival_s 1e+299 is outside [0, 1,000,000,000] s",
            "frag", "llama3-8b", "--kv-gib", "1", "--workload", str(trace))


def test_a_long_number_on_the_command_line_is_not_echoed_whole(capsys):
    refused(capsys, "--tp 99999999999999999999... is out of range; use 1..1,024 GPUs",
            "fit", "llama3-8b", "--gpu", "h100", "--tp", LONG)


# --- 2. JSON nested deeper than Python's stack ----------------------------------------------------

NESTED = "nested too deeply to read (thousands of levels of [ or {); is it the right file?"


def test_a_deeply_nested_config(capsys, tmp_path):
    folder = config_folder(tmp_path, text=json.dumps(LLAMA)[:-1] + f', "x": {DEEP}}}')
    refused(capsys, f"{folder / 'config.json'}: {NESTED}", "size", str(folder))


def test_a_deeply_nested_trace_row(capsys, tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text(f'{{"input_tokens": 10, "output_tokens": 5, "x": {DEEP}}}\n')
    refused(capsys, f"{trace}:1: {NESTED}", "frag", "llama3-8b", "--kv-gib", "1", "--workload", str(trace))
