"""The check file of `kvplan check`: named deployment scenarios with capacity expectations.

    defaults:            # any scenario field, shared by every scenario that does not set it
      gpu: h100
      engine: vllm
    scenarios:
      - name: chat-70b
        model: llama3-70b
        tp: 4
        kv_dtype: fp8
        ctx: 8192            # or in_tokens / out_tokens
        expect:
          fits: true
          min_concurrency: 64
      - name: from-vllm
        vllm: "vllm serve meta-llama/Meta-Llama-3-70B --tensor-parallel-size 4 --max-model-len 32768"
        expect: {no_preemption: true}

Validated by pydantic (extra keys forbidden); problems are reported as file:line: field: message.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from kvplan.errors import InputError, SpecError
from kvplan.specs.yamlio import read_text, validate_yaml


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Expect(Strict):
    fits: bool | None = None
    min_concurrency: PositiveInt | None = None
    min_kv_tokens: PositiveInt | None = None
    max_kv_gib_per_request: PositiveFloat | None = None
    max_gpus: PositiveInt | None = None
    min_paged_utilization: float | None = Field(default=None, gt=0, le=1)
    max_weights_fraction: float | None = Field(default=None, gt=0, le=1)
    no_preemption: bool | None = None  # max_num_seqs requests at max_len all fit the pool


class Scenario(Strict):
    name: str
    source: str = ""  # the check file it came from, for messages
    model: str | None = None
    gpu: str | None = None
    vllm: str | None = None  # a `vllm serve` command line: its flags fill the fields below
    tp: PositiveInt = 1
    pp: PositiveInt = 1
    replicas: PositiveInt = 1
    engine: Literal["vllm", "sglang", "trtllm", "raw"] = "vllm"
    util: float | None = Field(default=None, gt=0, le=1)
    kv_dtype: str = "auto"
    weights_dtype: str = "auto"
    block_size: PositiveInt | None = None
    ctx: PositiveInt | None = None
    max_model_len: PositiveInt | None = None  # the engine's (default: the model's max context)
    in_tokens: PositiveInt | None = None
    out_tokens: int | None = Field(default=None, ge=0)
    max_num_seqs: PositiveInt | None = None
    workload: str = "chat"  # for min_paged_utilization
    requests: PositiveInt = 500  # simulated for min_paged_utilization: enough for a stable share
    expect: Expect = Expect()
    ignored_flags: tuple[str, ...] = ()

    @model_validator(mode="after")
    def check_model_and_gpu(self) -> Scenario:
        if not self.model and not self.vllm:
            raise ValueError("a scenario needs a model (or a vllm command line naming one)")
        if not self.gpu:
            raise ValueError("a scenario needs a gpu (here or in defaults)")
        return self

    @property
    def peak_tokens(self) -> int:
        if self.in_tokens is not None:
            return self.in_tokens + (self.out_tokens or 0)
        return self.ctx or 4096


class CheckFile(Strict):
    defaults: dict = Field(default_factory=dict)
    scenarios: list[dict] = Field(min_length=1)


# --- vLLM command lines ------------------------------------------------------------------------

_VLLM_FLAGS = {  # flag -> (scenario field, how to read the value)
    "--tensor-parallel-size": ("tp", int), "-tp": ("tp", int),
    "--pipeline-parallel-size": ("pp", int), "-pp": ("pp", int),
    "--max-model-len": ("max_model_len", int), "--gpu-memory-utilization": ("util", float),
    "--kv-cache-dtype": ("kv_dtype", lambda v: "fp8" if v.startswith("fp8") else {"auto": "auto"}.get(v, v)),
    "--max-num-seqs": ("max_num_seqs", int), "--block-size": ("block_size", int),
    "--dtype": ("weights_dtype", lambda v: {"bfloat16": "bf16", "float16": "fp16", "half": "fp16",
                                            "auto": "auto", "float32": "fp32"}.get(v, v)),
    "--quantization": ("weights_dtype", lambda v: {"fp8": "fp8", "awq": "int4", "gptq": "int4",
                                                   "bitsandbytes": "nf4"}.get(v, v)),
}


def parse_vllm(command: str) -> tuple[dict, list[str]]:
    """The scenario fields a `vllm serve MODEL ...` command sets, and the flags kvplan ignores."""
    words = shlex.split(command)
    if words[:2] == ["vllm", "serve"]:
        words = words[2:]
    fields, ignored, i = {}, [], 0
    while i < len(words):
        word = words[i]
        flag, _, inline = word.partition("=")
        if not word.startswith("-"):
            fields.setdefault("model", word)
        elif flag in _VLLM_FLAGS:
            value = inline or (words[i + 1] if i + 1 < len(words) else "")
            i += 0 if inline else 1
            name, read = _VLLM_FLAGS[flag]
            try:
                fields[name] = read(value)
            except ValueError:
                raise InputError(f"vllm flag {flag} has a bad value '{value}'") from None
        else:
            ignored.append(flag)
            if not inline and i + 1 < len(words) and not words[i + 1].startswith("-"):
                i += 1  # its value
        i += 1
    return fields, ignored


def scenario(raw: dict, defaults: dict) -> Scenario:
    fields = {**defaults, **raw}
    if fields.get("vllm"):
        parsed, ignored = parse_vllm(fields["vllm"])
        fields = {**defaults, **parsed, **raw, "ignored_flags": tuple(ignored)}
        if fields.get("max_model_len") and not fields.get("ctx") and not fields.get("in_tokens"):
            fields["ctx"] = fields["max_model_len"]  # a request of max_model_len: what the engine must hold
        # the question a vLLM command line always asks: would max_num_seqs requests at max_len preempt?
        fields["expect"] = {"no_preemption": True, **(fields.get("expect") or {})}
    return Scenario.model_validate(fields)


def inline_scenario(**fields) -> Scenario:
    """A scenario from command-line flags; a bad value is one InputError line naming the flag."""
    try:
        return Scenario.model_validate(fields)
    except ValueError as err:
        problems = [f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                    .replace("--: ", "").replace("Value error, ", "") for e in getattr(err, "errors", lambda: [])()]
        raise InputError("; ".join(problems) or str(err)) from None


def load_check_file(path: Path) -> list[Scenario]:
    """Scenarios from a check file; every problem is one SpecError line naming the file and field."""
    if not path.is_file():
        raise SpecError(f"{path}: no such check file; pass a YAML file of scenarios (see examples/capacity.yaml)")
    text = read_text(path, "check file")
    document = validate_yaml(path, text, CheckFile)
    problems, scenarios = [], []
    for i, raw in enumerate(document.scenarios):
        try:
            scenarios.append(scenario({**raw, "source": f"{path}: scenarios.{i}"}, document.defaults))
        except InputError as err:
            problems.append(f"{path}: scenarios.{i}: {err}")
        except ValueError as err:  # pydantic's ValidationError
            for e in getattr(err, "errors", lambda: [])():
                where = ".".join(str(p) for p in e["loc"]) or "(scenario)"
                problems.append(f"{path}: scenarios.{i}.{where}: {e['msg']}")
    if problems:
        raise SpecError("\n".join(problems))
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: scenario names must be unique")
    return scenarios
