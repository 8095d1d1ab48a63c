"""The fuzzer's residue (issue #25): inputs that ended as "internal error" (exit 3) though they are
the user's mistake. Each is now one line naming the file, the key or the option and the fix, exit 2."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

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


def test_a_deeply_nested_safetensors_header(capsys, tmp_path):
    folder = config_folder(tmp_path, LLAMA)
    header = f'{{"a": {DEEP}}}'.encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    refused(capsys, f"{folder / 'model.safetensors'}: {NESTED}", "size", str(folder))


def test_a_deeply_nested_trace_row(capsys, tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text(f'{{"input_tokens": 10, "output_tokens": 5, "x": {DEEP}}}\n')
    refused(capsys, f"{trace}:1: {NESTED}", "frag", "llama3-8b", "--kv-gib", "1", "--workload", str(trace))


# --- 8. a safetensors header that claims more than its file holds ---------------------------------

def safetensors(path: Path, header: dict, data: int = 0) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data))


EMBED = "model.embed_tokens.weight"


def test_tensors_past_the_end_of_the_file_are_refused(capsys, tmp_path):
    folder = config_folder(tmp_path, LLAMA)  # 128,256 x 4,096 x 2 B = 1,050,673,152 B claimed, 0 written
    safetensors(folder / "model.safetensors",
                {EMBED: {"dtype": "BF16", "shape": [128256, 4096], "data_offsets": [0, 1_050_673_152]}})
    refused(capsys, f"{folder / 'model.safetensors'}: tensor '{EMBED}' ends at byte 1,050,673,152 of the data, "
            "past the 0 bytes the file holds; the file is truncated, download it again", "size", str(folder))


def test_a_header_longer_than_its_file_is_refused(capsys, tmp_path):
    folder = config_folder(tmp_path, LLAMA)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 1000) + b"{}")
    refused(capsys, f"{folder / 'model.safetensors'}: not a readable safetensors file (its header length says "
            "1,000 bytes, the file holds 10; is it truncated?)", "size", str(folder))


def test_offsets_that_disagree_with_the_shape_are_refused(capsys, tmp_path):
    folder = config_folder(tmp_path, LLAMA)  # 2 x 3 BF16 = 12 B, the offsets say 4
    safetensors(folder / "model.safetensors", {EMBED: {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 4]}}, 12)
    refused(capsys, f"{folder / 'model.safetensors'}: tensor '{EMBED}' spans 4 bytes, but its shape and BF16 need "
            "12; the header is corrupt, download it again", "size", str(folder))


def test_a_tensor_without_offsets_is_refused(capsys, tmp_path):
    folder = config_folder(tmp_path, LLAMA)
    safetensors(folder / "model.safetensors", {EMBED: {"dtype": "BF16", "shape": [2, 3]}}, 12)
    refused(capsys, f"{folder / 'model.safetensors'}: tensor '{EMBED}' has no data_offsets [begin, end] (got None); "
            "is the checkpoint complete?", "size", str(folder))


def test_a_whole_safetensors_file_is_read(capsys, tmp_path):
    folder = config_folder(tmp_path, LLAMA)
    safetensors(folder / "model.safetensors", {EMBED: {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}, 12)
    code, _, err = run(capsys, "import", str(folder))
    assert code == 0 and "params_total 6 counted from the *.safetensors headers" in err


# --- 3. output paths too long for the file system -------------------------------------------------

DEEP_PATH = "/".join(["d" * 200] * 25)  # 25 names of 200 bytes: 5,024 bytes, over Linux's PATH_MAX


@pytest.mark.parametrize("argv, suffix", [
    (["fit", "llama3-8b", "--gpu", "h100", "--plot"], ".png"),
    (["sweep", "llama3-8b", "--gpu", "h100", "--ctx", "4k", "--plot"], ".svg"),
    (["frag", "llama3-8b", "--kv-gib", "1", "--requests", "5", "--plot"], ".png"),
    (["check", "--model", "llama3-8b", "--gpu", "h100", "--junit"], ".xml"),
    (["check", "--model", "llama3-8b", "--gpu", "h100", "--markdown"], ".md"),
])
def test_an_output_path_longer_than_the_file_system_takes(capsys, tmp_path, argv, suffix):
    target = f"{tmp_path}/{DEEP_PATH}{suffix}"
    refused(capsys, f"{argv[-1]} {target[:60]}...: the path is {len(target.encode()):,} bytes, longer than the "
            "4,095 the file system takes; shorten it", *argv, target)


def test_an_import_folder_with_a_name_too_long(capsys, tmp_path):
    folder = config_folder(tmp_path, LLAMA)  # it was OSError ENAMETOOLONG from out.exists()
    out = f"{tmp_path}/{'o' * 300}"
    refused(capsys, f"--out {out[:60]}...: a name in it is longer than 255 bytes; shorten it",
            "import", str(folder), "--out", out)
    out = f"{tmp_path}/{DEEP_PATH}"
    refused(capsys, f"--out {out[:60]}...: the path is {len(out.encode()):,} bytes, longer than the 4,095 the "
            "file system takes; shorten it", "import", str(folder), "--out", out)


def test_a_check_file_path_too_long_to_look_at(capsys, tmp_path):
    path = f"{tmp_path}/{DEEP_PATH}.yaml"
    refused(capsys, f"{path}: cannot read check file (File name too long)", "check", path)


# --- 4, 5, 10. config.json keys of the wrong kind ---------------------------------------------------

JAMBA = json.loads((FIXTURES / "jamba-v0.1" / "config.json").read_text())
QWEN3_NEXT = json.loads((FIXTURES / "qwen3-next-80b-a3b" / "config.json").read_text())


@pytest.mark.parametrize("model_type, shown", [(["llama"], "['llama']"), (7, "7"), ({"a": 1}, "{'a': 1}")])
def test_a_model_type_that_is_not_a_string(capsys, tmp_path, model_type, shown):
    folder = config_folder(tmp_path, {**LLAMA, "model_type": model_type})  # a list: TypeError unhashable
    refused(capsys, f"{folder / 'config.json'}: model_type: expected a string such as \"llama\", got {shown}; "
            "fix the config", "size", str(folder))


def test_a_nested_model_type_that_is_not_a_string(capsys, tmp_path):
    folder = config_folder(tmp_path, {"model_type": "gemma3", "text_config": {**LLAMA, "model_type": ["x"]}})
    refused(capsys, f"{folder / 'config.json'}: model_type: expected a string such as \"llama\", got ['x']; "
            "fix the config", "size", str(folder))


def test_a_hub_config_is_checked_like_a_local_one():
    from kvplan.errors import SpecError
    from kvplan.specs.importer import spec_from_config

    with pytest.raises(SpecError, match=r"^acme/x@abc config.json: model_type: expected a string"):
        spec_from_config({**LLAMA, "model_type": ["llama"]}, "acme/x@abc config.json", source="", name=None,
                         display=None)


@pytest.mark.parametrize("config, key, value", [
    (JAMBA, "attn_layer_period", 0),  # i % 0: ZeroDivisionError
    (JAMBA, "attn_layer_period", -2),
    (JAMBA, "expert_layer_period", 0),
    (QWEN3_NEXT, "full_attention_interval", 0),
])
def test_a_period_of_zero_or_less(capsys, tmp_path, config, key, value):
    folder = config_folder(tmp_path, {**config, key: value})
    refused(capsys, f"{folder / 'config.json'}: {key}: expected a whole number of at least 1, got {value}; "
            "fix the config", "size", str(folder))


@pytest.mark.parametrize("key, value, message", [
    ("attn_layer_offset", -1, "attn_layer_offset: expected a whole number of at least 0, got -1; fix the config"),
    ("attn_layer_offset", 8, "attn_layer_offset 8 must be less than attn_layer_period 8; fix the config"),
])
def test_a_jamba_offset_outside_its_period(capsys, tmp_path, key, value, message):
    folder = config_folder(tmp_path, {**JAMBA, key: value})
    refused(capsys, f"{folder / 'config.json'}: {message}", "size", str(folder))


@pytest.mark.parametrize("key", ["torch_dtype", "dtype"])
@pytest.mark.parametrize("value, shown", [("banana", "'banana'"), (7, "7"), (["bfloat16"], "['bfloat16']")])
def test_a_dtype_that_is_not_a_dtype(capsys, tmp_path, key, value, shown):
    folder = config_folder(tmp_path, {**LLAMA, key: value})  # it was read as bf16, silently
    refused(capsys, f"{folder / 'config.json'}: {key}: {shown} is not a dtype; write one of bfloat16, float16 or "
            "float32 (as torch names them), or remove it", "size", str(folder))


@pytest.mark.parametrize("value", ["bfloat16", "float16", "float32", "torch.float16", "auto"])
def test_every_torch_dtype_name_is_read(capsys, tmp_path, value):
    assert run(capsys, "size", str(config_folder(tmp_path, {**LLAMA, "torch_dtype": value})))[0] == 0


# --- 6. a CSV field over the csv module's limit ----------------------------------------------------

def test_a_csv_field_over_the_field_size_limit(capsys, tmp_path):
    trace = tmp_path / "t.csv"  # _csv.Error: field larger than field limit (131072)
    trace.write_text('input_tokens,output_tokens\n10,5\n"' + "1" * 200_000 + '",5\n')
    refused(capsys, f"{trace}:3: a field over 131,072 characters; a trace row holds token counts "
            "(input_tokens,output_tokens[,arrival_s])", "frag", "llama3-8b", "--kv-gib", "1", "--workload", str(trace))


def test_a_csv_header_over_the_field_size_limit(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("x" * 200_000 + ",output_tokens\n10,5\n")
    refused(capsys, f"{trace}:1: a field over 131,072 characters; a trace row holds token counts "
            "(input_tokens,output_tokens[,arrival_s])", "frag", "llama3-8b", "--kv-gib", "1", "--workload", str(trace))


# --- 7. a check scenario's vllm: line that names no model -----------------------------------------

USAGE = "`vllm serve MODEL ...` or `python -m vllm.entrypoints.openai.api_server --model MODEL ...`"


@pytest.mark.parametrize("value, message", [
    ("'vllm serve'", f"the vllm command line names no model; write {USAGE}, or give model:"),
    ("'vllm serve --tensor-parallel-size 2'", f"the vllm command line names no model; write {USAGE}, or give model:"),
    ("'--max-model-len 4096'", f"the vllm command line names no model; write {USAGE}, or give model:"),
    ("' '", f"the vllm command line is empty; write {USAGE}"),
    ("''", f"the vllm command line is empty; write {USAGE}"),
    ("'VLLM_USE_V1=1'", f"the vllm command line is empty; write {USAGE}"),
    ("[vllm, serve]", "vllm: expected a command line in quotes, got ['vllm', 'serve']"),
    ("5", "vllm: expected a command line in quotes, got 5"),
    ("", "a scenario needs a model (or an engine's command line naming one: vllm, sglang or trtllm)"),  # `vllm:` alone is null
    ("null", "a scenario needs a model (or an engine's command line naming one: vllm, sglang or trtllm)"),
])
def test_a_vllm_line_that_names_no_model(capsys, tmp_path, value, message):
    path = tmp_path / "c.yaml"  # 'vllm serve' was AttributeError: 'NoneType' object has no attribute 'startswith'
    path.write_text(f"scenarios:\n  - name: a\n    gpu: h100\n    vllm: {value}\n")
    refused(capsys, f"{path}:2: scenarios.0: {message}", "check", str(path))


def test_a_vllm_line_without_a_model_takes_the_scenarios_model(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - name: a\n    model: llama3-8b\n    gpu: h100\n"
                    "    vllm: 'vllm serve --max-model-len 4096'\n")
    assert run(capsys, "check", str(path))[0] == 0


# --- 9. GPU figures beyond any datasheet ------------------------------------------------------------

H100 = (Path(__file__).parents[1] / "model_specs" / "gpus" / "h100-sxm.yaml").read_text().replace(
    "name: h100-sxm", "name: xg").replace("aliases: [h100, h100-80gb, h100-sxm5]", "aliases: []")
HBM = "give the datasheet's memory bandwidth in decimal GB/s, e.g. 3350 for an H100 SXM"
LINK = "give the link's datasheet rate in decimal GB/s, e.g. 64 for PCIe 5.0 x16 one way"
DENSE = "give the datasheet's dense (not sparse) TFLOPS, e.g. 989.4 for an H100 SXM's BF16"


@pytest.mark.parametrize("old, new, key, message", [
    ("hbm_bandwidth_gbps: 3350", "hbm_bandwidth_gbps: 1.0e-300", "hbm_bandwidth_gbps",
     f"1e-300 is outside 10..100,000 GB/s; {HBM}"),  # was accepted: every decode step took 10^300 s
    ("hbm_bandwidth_gbps: 3350", "hbm_bandwidth_gbps: 1.0e+30", "hbm_bandwidth_gbps",
     f"1e+30 is outside 10..100,000 GB/s; {HBM}"),
    ("fp16_tflops_dense: 989.4", "fp16_tflops_dense: 1.0e-300", "fp16_tflops_dense",
     f"1e-300 is outside 0.1..100,000 TFLOPS; {DENSE}"),
    ("gbps_per_direction: 64", "gbps_per_direction: 0.001", "host_link.gbps_per_direction",
     f"0.001 is outside 0.5..100,000 GB/s; {LINK}"),
    ("gbps_bidirectional: 900", "gbps_bidirectional: 1.0e+9", "scale_up.gbps_bidirectional",
     f"1e+09 is outside 0.5..100,000 GB/s; {LINK}"),
    ("memory_bytes: 85899345920", "memory_bytes: 1", "memory_bytes",
     "1 is outside 1,073,741,824..17,592,186,044,416 bytes; give the memory in bytes, e.g. 85899345920 for 80 GiB"),
    ("l2_cache_bytes: 52428800", "l2_cache_bytes: 1", "l2_cache_bytes",
     "1 is outside 1,024..17,179,869,184 bytes; give the L2 cache in bytes, e.g. 52428800 for an H100's 50 MiB"),
    ("tdp_watts: 700", "tdp_watts: 100000000", "tdp_watts",
     "100,000,000 is outside 1..10,000 W; give the board power in watts, e.g. 700 for an H100 SXM"),
    ("generation: 5", "generation: 99", "host_link.generation", "99 is outside 1..8; give the PCIe generation, e.g. 5"),
])
def test_gpu_figures_beyond_any_datasheet(capsys, tmp_path, old, new, key, message):
    assert old in H100
    (tmp_path / "gpus").mkdir()
    path = tmp_path / "gpus" / "xg.yaml"
    path.write_text(H100.replace(old, new))
    line = next(i for i, text in enumerate(H100.splitlines(), start=1) if old in text)
    refused(capsys, f"{path}:{line}: {key}: {message}", "fit", "llama3-8b", "--gpu", "xg", "--specs", str(tmp_path))


def test_the_h100_as_it_stands_is_a_valid_custom_gpu(capsys, tmp_path):
    (tmp_path / "gpus").mkdir()
    (tmp_path / "gpus" / "xg.yaml").write_text(H100)
    assert run(capsys, "fit", "llama3-8b", "--gpu", "xg", "--specs", str(tmp_path))[0] == 0
