"""A fuzzer of our own: random command lines over every command's options, and mutated spec and
check files, each run through the CLI in-process. Whatever the input: exit code 0, 1 or 2 (never 3,
kvplan's code for an internal error), no traceback, and no NaN, infinity or negative figure in any
JSON output.

The CI profile runs a few hundred cases in seconds; `KVPLAN_FUZZ=long python -m pytest
tests/test_fuzz.py` runs thousands (the profile's numbers are in docs/errors.md)."""

from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvplan.cli import main

ROOT = Path(__file__).parents[1]
settings.register_profile("ci", max_examples=120, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = os.environ.get("KVPLAN_FUZZ", "ci")

# Values a user (or a fuzzer) types: good ones, edge ones and nonsense, for every kind of option.
NONSENSE = ["", ",", "nan", "inf", "-inf", "-1", "0", "1e30", "1e-300", "abc", "4k,", "..", "x" * 300, "ümlaut",
            "../../etc/passwd", "true", "0x10", "9" * 40, "9" * 5000]
# Output paths that cannot be written: none of them reaches a write, so the fuzzer leaves no files
BAD_PATHS = ["/".join(["d" * 200] * 25) + ".png", "x" * 300 + ".png", "/proc/x.png", "/nonexistent/x.png", "/tmp"]
OUTPUTS = ("--plot", "--junit", "--markdown")
TOKENS = ["1", "16", "512", "4096", "8k", "32k", "128k", "1m", "8191", "2048"]
FRACTIONS = ["0.5", "0.9", "1", "0.01", "1.5"]
GIBS = ["1", "16", "80", "0.5", "1000"]
COUNTS = ["1", "2", "4", "8", "3", "64"]
MODELS = ["llama3-8b", "llama3-70b", "qwen3-30b-a3b", "deepseek-v3", "gemma-3-27b", "jamba-mini", "mistral-7b",
          "no-such-model"]
GPUS = ["h100", "a100-40gb", "l4", "b200", "mi300x", "nope", "h100,l4"]
KV = ["auto", "fp8", "int4", "bf16", "fp9"]
ENGINES = ["vllm", "sglang", "trtllm", "raw", "tgi", "vllm==0.6", "vllm==0.10", "vllm==0.19", "sglang==0.4.1",
           "trtllm==0.12", "vllm==0.1", "vllm==0.19,vllm==0.26"]
SAMPLERS = ["flashinfer", "pytorch", "triton"]

MEASURED = [str(ROOT / "examples" / "cpu_offload" / "probe_offload_llama3-8b.json"), "/etc/hostname", "nope.json",
            "/tmp", str(ROOT / "examples" / "capacity.yaml")]

# command -> (positional choices, {option: values})
OPTIONS = {
    "size": (MODELS, {"--ctx": TOKENS, "--batch": COUNTS, "--tp": COUNTS, "--block-size": COUNTS, "--kv-dtype": KV}),
    "batch": (MODELS, {"--gpu": GPUS, "--in": TOKENS, "--out": TOKENS + ["0"], "--ctx": TOKENS, "--max-len": TOKENS,
                       "--batch": COUNTS, "--max-ctx": COUNTS, "--tflops": GIBS, "--hbm-gbps": GIBS, "--engine": ENGINES,
                       "--tp": COUNTS, "--pp": COUNTS, "--kv-dtype": KV, "--util": FRACTIONS, "--gpu-mem": GIBS,
                       "--weights-gib": GIBS, "--activation-gib": GIBS, "--overhead-gib": GIBS, "--block-size": COUNTS,
                       "--max-num-batched-tokens": TOKENS, "--max-num-seqs": COUNTS, "--sampler": SAMPLERS,
                       "--no-enable-chunked-prefill": None}),
    "fit": (MODELS, {"--gpu": GPUS, "--ctx": TOKENS, "--concurrency": COUNTS, "--max-len": TOKENS,
                     "--max-num-seqs": COUNTS, "--engine": ENGINES, "--tp": COUNTS, "--pp": COUNTS, "--kv-dtype": KV,
                     "--weights-dtype": ["auto", "fp8", "int4", "int3"], "--util": FRACTIONS, "--gpu-mem": GIBS,
                     "--plot": BAD_PATHS, "--max-num-batched-tokens": TOKENS, "--sampler": SAMPLERS,
                     "--enable-chunked-prefill": None}),
    "plan": (MODELS, {"--gpu": GPUS, "--concurrency": COUNTS, "--ctx": TOKENS, "--kv-dtype": KV + ["bf16,fp8"],
                      "--gpus-per-node": COUNTS, "--max-len": TOKENS, "--engine": ENGINES, "--util": FRACTIONS}),
    "offload": (MODELS, {"--gpu": GPUS, "--prefix": TOKENS, "--link": ["pcie4", "nvme,pcie5", "warp"],
                         "--link-gbps": GIBS, "--latency-us": GIBS, "--mfu": FRACTIONS, "--tflops": GIBS,
                         "--params": ["8e9", "1e12"], "--tp": COUNTS, "--host-gib": GIBS, "--nvme-gib": GIBS,
                         "--kv-dtype": KV, "--measured": MEASURED}),
    "frag": (MODELS, {"--gpu": GPUS, "--kv-gib": GIBS, "--workload": ["chat", "fixed:100,0", "uniform:1-64,0-64", "zipf"],
                      "--requests": ["1", "10", "60"], "--seed": COUNTS, "--rate": ["0.5", "100"], "--step-ms": ["1", "30"],
                      "--max-len": TOKENS, "--block-size": COUNTS, "--shared-prefix": ["0", "8", "100", "8191"],
                      "--tp": COUNTS, "--engine": ENGINES, "--kv-dtype": KV, "--plot": BAD_PATHS}),
    "sweep": (MODELS, {"--gpu": GPUS, "--ctx": ["1k..8k", "4k,16k", "8k"], "--batch": ["1..8", "4"],
                       "--tp": ["1", "1,2", "8"], "--kv-dtype": KV + ["bf16,fp8"], "--engine": ENGINES,
                       "--metric": ["concurrency", "kv_gib", "tokens_per_s", "waste_paged", "bogus"],
                       "--max-len": TOKENS, "--util": FRACTIONS, "--max-num-seqs": COUNTS,
                       "--weights-dtype": ["auto", "fp8", "int4", "fp9"]}),
    "check": ([], {"--model": MODELS, "--gpu": GPUS, "--tp": COUNTS, "--ctx": TOKENS, "--kv-dtype": KV,
                   "--engine": ENGINES, "--min-concurrency": COUNTS, "--min-kv-tokens": TOKENS,
                   "--junit": BAD_PATHS, "--markdown": BAD_PATHS}),
    "show": (MODELS, {}),
}


def assert_sane(code: int, out: str, err: str) -> None:
    assert code in (0, 1, 2), f"exit {code}: {err[-400:]}"
    assert "Traceback" not in out + err and "internal error" not in err
    if code == 2:
        assert err.startswith("error: "), err[:300]
    if out.lstrip().startswith(("{", "[")):
        for number in numbers(json.loads(out)):
            assert math.isfinite(number) and number >= 0, f"{number} in {out[:300]}"


def numbers(value):
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in SIGNED_KEYS:
                yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


# Figures that are differences by definition and may be negative: the memory left over or missing.
SIGNED_KEYS = {"free_bytes", "headroom_bytes", "kv_pool_bytes", "default_engine_kv_pool_bytes", "pool_bytes", "margin_bytes",
               "shortfall_bytes",
               "kv_free_bytes", "delta", "error"}


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(sorted(OPTIONS)))
    positionals, options = OPTIONS[command]
    argv = [command] + ([draw(st.sampled_from(positionals))] if positionals else [])
    for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)) if options else ():
        if options[option] is None:  # a switch: no value
            argv.append(option)
            continue
        choices = st.sampled_from(options[option])  # an output path only from BAD_PATHS: nothing is written
        argv += [option, draw(choices if option in OUTPUTS else choices | st.sampled_from(NONSENSE))]
    if command in ("batch", "fit", "plan", "offload", "sweep") and "--gpu" not in argv:
        argv += ["--gpu", "h100"]
    if command == "frag" and "--gpu" not in argv and "--kv-gib" not in argv:
        argv += ["--kv-gib", "2"]
    if command == "frag" and "--requests" not in argv:
        argv += ["--requests", "40"]
    if command != "show" and draw(st.booleans()):
        argv.append("--json")
    return argv


@settings(settings.get_profile(PROFILE))
@given(argv=command_lines())
def test_random_command_lines(capsys, argv):
    code = main(argv + ["--offline"] if argv[0] not in ("show",) else argv + ["--offline"])
    out, err = capsys.readouterr()
    assert_sane(code, out, err)


SPEC = (ROOT / "examples" / "specs" / "models" / "llama3-8b-32k.yaml").read_text().replace(
    "name: llama3-8b-32k", "name: fuzzed")
CHECK = (ROOT / "examples" / "capacity.yaml").read_text()
VALUES = ["0", "-1", "true", "null", "1e30", "'abc'", "[]", "{}", "3.5", ".nan", ".inf", "100000000000000000000",
          "*x", "&x 1", "'", "{kind: mamba}", "9" * 5000, "1.0e-300", "1.0e+300", "'vllm serve'", "' '",
          "'vllm serve --tensor-parallel-size 2'", "[" * 200 + "]" * 200]


@st.composite
def mutated(draw, text: str):
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["value", "drop", "duplicate", "garbage", "indent"]))
        if how == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(st.sampled_from(VALUES))}"
        elif how == "drop":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "garbage":
            lines.insert(i, draw(st.sampled_from(["colour: blue", "- - -", ": :", "\t", "min_concurency: 5"])))
        else:
            lines[i] = "  " + lines[i]
        if not lines:
            lines = ["{}"]
    return "\n".join(lines) + "\n"


@settings(settings.get_profile(PROFILE))
@given(text=mutated(SPEC), command=st.sampled_from(["size", "batch", "fit"]))
def test_mutated_spec_files(capsys, tmp_path_factory, text, command):
    folder = tmp_path_factory.mktemp("specs")
    (folder / "models").mkdir()
    (folder / "models" / "fuzzed.yaml").write_text(text)
    name = re.search(r"^name: (\S+)", text, re.M)
    argv = [command, name.group(1) if name else "fuzzed", "--specs", str(folder), "--offline", "--json"]
    code = main(argv + (["--gpu", "h100"] if command != "size" else []))
    out, err = capsys.readouterr()
    assert_sane(code, out, err)


@settings(settings.get_profile(PROFILE))
@given(text=mutated(CHECK))
def test_mutated_check_files(capsys, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("check") / "c.yaml"
    path.write_text(text)
    code = main(["check", str(path), "--offline", "--json"])
    out, err = capsys.readouterr()
    assert_sane(code, out, err)


GPU = (ROOT / "model_specs" / "gpus" / "h100-sxm.yaml").read_text().replace("name: h100-sxm", "name: fuzzed").replace(
    "aliases: [h100, h100-80gb, h100-sxm5]", "aliases: []")


@settings(settings.get_profile(PROFILE))
@given(text=mutated(GPU))
def test_mutated_gpu_files(capsys, tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("gpus")
    (folder / "gpus").mkdir()
    (folder / "gpus" / "fuzzed.yaml").write_text(text)
    code = main(["fit", "llama3-8b", "--gpu", "fuzzed", "--specs", str(folder), "--offline", "--json"])
    out, err = capsys.readouterr()
    assert_sane(code, out, err)


# config.json: the keys kvplan reads, set to nonsense of every JSON kind
CONFIGS = {name: json.loads((ROOT / "tests" / "fixtures" / "hf_configs" / name / "config.json").read_text())
           for name in ("llama3-8b", "jamba-v0.1", "qwen3-next-80b-a3b", "gemma3-27b")}
CONFIG_KEYS = ["model_type", "torch_dtype", "dtype", "attn_layer_period", "attn_layer_offset", "expert_layer_period",
               "full_attention_interval", "sliding_window_pattern", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "head_dim", "hidden_size", "vocab_size", "layer_types", "sliding_window",
               "max_position_embeddings", "text_config", "quantization_config", "rope_theta"]
JSON_VALUES = [0, -1, -2, 1, 7, True, None, "banana", "", ["llama"], {}, [], 1e-300, 1e300, 3.5, "bfloat16",
               "float16", "llama"]
LONG_INT, DEEP = "9" * 5000, "[" * 5000 + "]" * 5000  # written into the text: json.dumps cannot say them


@st.composite
def configs(draw):
    cfg = dict(CONFIGS[draw(st.sampled_from(sorted(CONFIGS)))])
    raw = {}
    for key in draw(st.lists(st.sampled_from(CONFIG_KEYS), min_size=1, max_size=3, unique=True)):
        value = draw(st.sampled_from(JSON_VALUES + ["LONG", "DEEP"]))
        if value in ("LONG", "DEEP"):
            raw[key] = LONG_INT if value == "LONG" else DEEP
            cfg.pop(key, None)
        else:
            cfg[key] = value
    text = json.dumps(cfg)
    return text[:-1] + "".join(f', "{key}": {value}' for key, value in raw.items()) + "}" if raw else text


@settings(settings.get_profile(PROFILE))
@given(text=configs())
def test_mutated_configs(capsys, tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("config")
    (folder / "config.json").write_text(text)
    code = main(["size", str(folder), "--offline", "--json"])
    out, err = capsys.readouterr()
    assert_sane(code, out, err)
    dtypes = [v for k, v in re.findall(r'"(torch_dtype|dtype)": ("[^"]*"|[^,}]+)', text) if v != "null"]
    if any(v not in ('"bfloat16"', '"float16"', '"float32"') for v in dtypes):
        assert code == 2, f"a dtype of {dtypes} was read"  # banana, 7 and [bfloat16] were read as bf16


TRACE_VALUES = ["10", "0", "-1", "1e30", "nan", "", "abc", LONG_INT, "9" * 400, "true", "null", "[]", DEEP, "3.5"]


@settings(settings.get_profile(PROFILE))
@given(jsonl=st.booleans(), rows=st.lists(st.tuples(*[st.sampled_from(TRACE_VALUES)] * 3), min_size=1, max_size=4),
       huge_field=st.booleans())
def test_mutated_traces(capsys, tmp_path_factory, jsonl, rows, huge_field):
    path = tmp_path_factory.mktemp("trace") / ("t.jsonl" if jsonl else "t.csv")
    if jsonl:
        lines = [f'{{"input_tokens": {i or 0}, "output_tokens": {o or 0}, "arrival_s": {a or 0}}}' for i, o, a in rows]
    else:
        lines = ["input_tokens,output_tokens,arrival_s", *(",".join(row) for row in rows)]
    if huge_field:
        lines.append('"' + "1" * 200_000 + '",1,0' if not jsonl else '{"input_tokens": "' + "1" * 200_000 + '"}')
    path.write_text("\n".join(lines) + "\n")
    code = main(["frag", "llama3-8b", "--kv-gib", "1", "--workload", str(path), "--offline", "--json"])
    out, err = capsys.readouterr()
    assert_sane(code, out, err)


@settings(settings.get_profile(PROFILE))
@given(shape=st.lists(st.integers(0, 2**20), max_size=3), dtype=st.sampled_from(["BF16", "F32", "I32", "??"]),
       begin=st.integers(-1, 100), extra=st.integers(-64, 64), data=st.integers(0, 256),
       length_delta=st.sampled_from([0, 0, 0, 1, 1000, -1]), nested=st.booleans())
def test_mutated_safetensors_headers(capsys, tmp_path_factory, shape, dtype, begin, extra, data, length_delta, nested):
    folder = tmp_path_factory.mktemp("st")
    (folder / "config.json").write_text(json.dumps(CONFIGS["llama3-8b"]))
    size = math.prod(shape) * {"BF16": 2, "F32": 4, "I32": 4}.get(dtype, 1)
    header = json.dumps({"model.embed_tokens.weight": {"dtype": dtype, "shape": shape,
                                                       "data_offsets": [begin, begin + size + extra]}}).encode()
    if nested:
        header = b'{"a": ' + DEEP.encode() + b"}"
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header) + length_delta) + header + bytes(data))
    code = main(["size", str(folder), "--offline", "--json"])
    out, err = capsys.readouterr()
    assert_sane(code, out, err)
    end = begin + size + extra
    lies = nested or length_delta != 0 or begin < 0 or end < begin or end > data or (extra != 0 and dtype != "??")
    if lies:  # data the file does not hold was counted as weights
        assert code == 2, f"a header of [{begin}, {end}] over {data} bytes of data was read"


@pytest.mark.parametrize("argv", [["size", "llama3-8b", "--json"], ["batch", "llama3-8b", "--gpu", "h100", "--json"]])
def test_the_checker_accepts_good_output(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert_sane(code, out, err)  # a checker that fails good output is not checking anything
    assert code == 0 and list(numbers(json.loads(out)))
