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

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from kvplan import bounds
from kvplan.errors import InputError, SpecError
from kvplan.specs.engines import DEFAULT_ENGINE
from kvplan.specs.engines.registry import ENGINES
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.yamlio import format_validation_error, line_of, read_text, unknown_key, validate_yaml, yaml_root


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _read(read):
    """A field read by kvplan.bounds, as the command line reads it ('32k' works, 10^30 does not)."""
    def check(value):
        try:
            return read(value, "value")
        except InputError as err:
            raise ValueError(str(err)) from None
    return BeforeValidator(check)


def _count(lo: int, hi: int):
    """A whole number in lo..hi, read as bounds.integer reads one."""
    return _read(lambda value, name: bounds.integer(value, name, lo, hi))


def _engine_name(name: object) -> str:
    """An engine, or one of its release presets ('vllm==0.19'), as --engine takes it."""
    if not isinstance(name, str):
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    try:
        engine_entry(name)
    except InputError as err:
        raise ValueError(str(err)) from None
    return name.strip().lower()


COMMAND_KEYS = tuple(name for name, entry in ENGINES.items() if entry.command)  # vllm, sglang, trtllm

Tokens = Annotated[int, _read(bounds.tokens)]
Gpus = Annotated[int, _read(bounds.gpus)]
Requests = Annotated[int, _read(bounds.requests)]


class Expect(Strict):
    fits: bool | None = None
    min_concurrency: Requests | None = None
    min_kv_tokens: Annotated[int, _count(1, 2**40)] | None = None
    max_kv_gib_per_request: float | None = Field(default=None, gt=0, le=16_384, allow_inf_nan=False)
    max_gpus: Annotated[int, _count(1, 2**20)] | None = None
    min_paged_utilization: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    max_weights_fraction: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    no_preemption: bool | None = None  # max_num_seqs requests at max_len all fit the pool


class Scenario(Strict):
    name: str
    source: str = Field(default="", json_schema_extra={"set_by": "kvplan"})  # the check file, for messages
    model: str | None = None
    gpu: str | None = None
    # An engine's command line (`vllm serve ...`, SGLang's launch_server, `trtllm-serve ...`), under the
    # engine's name: its flags fill the fields below, and the engine is that one.
    vllm: str | None = None
    sglang: str | None = None
    trtllm: str | None = None
    tp: Gpus = 1
    pp: Gpus = 1
    replicas: Annotated[int, _count(1, 2**20)] = 1
    engine: Annotated[str, BeforeValidator(lambda name: _engine_name(name))] = DEFAULT_ENGINE
    util: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    kv_dtype: str = "auto"
    weights_dtype: str = "auto"
    block_size: Annotated[int, _read(bounds.block_size)] | None = None
    ctx: Tokens | None = None
    max_model_len: Tokens | None = None  # the engine's (default: the model's max context)
    in_tokens: Tokens | None = None
    out_tokens: Annotated[int, _read(bounds.tokens_or_zero)] | None = None
    max_num_seqs: Requests | None = None
    max_num_batched_tokens: Tokens | None = None
    # vLLM's top-k/top-p sampler (VLLM_USE_FLASHINFER_SAMPLER): its profile peak; None: the release's default
    sampler: Literal["flashinfer", "pytorch"] | None = None
    chunked_prefill: bool | None = None  # None: the engine's default (vLLM V1: on)
    allow_long_max_len: bool = False  # the engine's long-context switch is set (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)  # the engine's chunk: its activation peak grows with it
    cpu_offload_gib: float | None = Field(default=None, ge=0, le=16_384, allow_inf_nan=False)  # vLLM --cpu-offload-gb: weights kept on the host
    # vLLM's --limit-mm-per-prompt (modality -> items; 0 for each skips the encoder profile) and
    # --mm-encoder-tp-mode: the multimodal encoder's profile peak (specs/engines/vllm_mm.py)
    limit_mm_per_prompt: Annotated[dict[str, int] | None, BeforeValidator(
        lambda v: v if v is None else dict(bounds.mm_limits(v, "limit_mm_per_prompt")))] = None
    mm_encoder_tp_mode: Literal["weights", "data"] | None = None
    # KV offload tiers beside the pool (vLLM --kv-offloading-size/-backend; LMCache's disk; SGLang HiCache)
    kv_offload_gib: float | None = Field(default=None, gt=0, le=1_048_576, allow_inf_nan=False)
    kv_offload_backend: Literal["native", "lmcache", "hicache"] | None = None
    kv_offload_disk_gib: float | None = Field(default=None, gt=0, le=1_048_576, allow_inf_nan=False)
    hicache_ratio: float | None = Field(default=None, gt=0, le=1_000, allow_inf_nan=False)
    hicache_size_gb: float | None = Field(default=None, gt=0, le=1_048_576, allow_inf_nan=False)
    disaggregation_mode: Literal["prefill", "decode"] | None = None  # a disaggregated worker (SGLang's default fraction)
    num_speculative_tokens: Annotated[int, _count(0, 64)] = 0  # draft tokens a step verifies: a hybrid's state pages
    # vLLM --enable-lora --max-loras --max-lora-rank --max-cpu-loras (specs/engines/vllm_lora.py); lora_gib measured
    enable_lora: bool = False
    max_loras: Annotated[int, _count(1, 4096)] = 1
    max_lora_rank: Annotated[int, _count(1, 512)] = 16
    max_cpu_loras: Annotated[int, _count(1, 100_000)] | None = None
    lora_gib: float | None = Field(default=None, ge=0, le=16_384, allow_inf_nan=False)
    # vLLM's speculative_config (kvplan/calc/draft.py): the drafter's weights and KV layers
    speculative_method: Literal["draft_model", "eagle", "eagle3", "mtp"] | None = None
    draft_model: str | None = None  # the draft model, a database name (method draft_model)
    draft_spec: Any = Field(default=None, exclude=True, json_schema_extra={"set_by": "kvplan"})  # its ModelSpec
    draft_weights_gib: float | None = Field(default=None, ge=0, le=16_384, allow_inf_nan=False)  # measured
    # measured terms (`kvplan log --to-check` writes them from a log): the GPU's total and the non-KV memory
    gpu_mem_gib: float | None = Field(default=None, gt=0, le=16_384, allow_inf_nan=False)
    weights_gib: float | None = Field(default=None, ge=0, le=16_384, allow_inf_nan=False)
    activation_gib: float | None = Field(default=None, ge=0, le=16_384, allow_inf_nan=False)
    overhead_gib: float | None = Field(default=None, ge=0, le=16_384, allow_inf_nan=False)
    workload: str = "chat"  # for min_paged_utilization
    requests: Annotated[int, _count(1, 100_000)] = 500  # simulated for min_paged_utilization: enough for a stable share
    expect: Expect = Expect()
    ignored_flags: tuple[str, ...] = Field(default=(), json_schema_extra={"set_by": "kvplan"})
    # what the engine line set, (field, value) pairs: hashable, as a scenario is a cache key
    command_settings: tuple[tuple[str, int | float | str | bool], ...] = Field(default=(), json_schema_extra={"set_by": "kvplan"})

    @model_validator(mode="after")
    def check_model_and_gpu(self) -> Scenario:
        if not self.model and not self.command_key:
            raise ValueError("a scenario needs a model (or an engine's command line naming one: vllm, sglang or trtllm)")
        if not self.gpu:
            raise ValueError("a scenario needs a gpu (here or in defaults)")
        return self

    @property
    def command_key(self) -> str | None:
        """The engine whose command line this scenario was read from, if any."""
        return next((name for name in COMMAND_KEYS if getattr(self, name)), None)

    @property
    def peak_tokens(self) -> int:
        if self.in_tokens is not None:
            return self.in_tokens + (self.out_tokens or 0)
        return self.ctx or 4096


class CheckFile(Strict):
    defaults: dict = Field(default_factory=dict)
    scenarios: list[dict] = Field(min_length=1)


def scenario(raw: dict, defaults: dict) -> Scenario:
    fields = {**defaults, **raw}
    given = [key for key in COMMAND_KEYS if fields.get(key) is not None]
    if len(given) > 1:
        raise InputError(f"{' and '.join(given)}: give one engine's command line per scenario")
    for key in given:
        if not isinstance(fields[key], str):
            raise InputError(f"{key}: expected a command line in quotes, got {repr(fields[key])[:60]}")
        entry = engine_entry(key)
        parsed, ignored = entry.read_command(fields[key])
        fields = {**defaults, "engine": key, **parsed, **raw, "ignored_flags": tuple(ignored),
                  "command_settings": tuple(parsed.items())}
        if not fields.get("model"):  # later steps read the model's name: None was an AttributeError
            usage = entry.command.usage if entry.command else f"{key} MODEL"
            raise InputError(f"the {key} command line names no model; write {usage}, or give model:")
        if fields.get("max_model_len") and not fields.get("ctx") and not fields.get("in_tokens"):
            fields["ctx"] = fields["max_model_len"]  # a request of max_model_len: what the engine must hold
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
    """Scenarios from a check file; every problem is one SpecError line 'file:line: field: what',
    and a scenario that cannot be read is an error, never dropped: a gate passes only what it checked."""
    try:
        missing = not path.is_file()
    except OSError:  # a name too long for the file system: read_text says so
        missing = False
    if missing:
        raise SpecError(f"{path}: no such check file; pass a YAML file of scenarios (see examples/capacity.yaml)")
    text = read_text(path, "check file")
    document = validate_yaml(path, text, CheckFile)
    root = yaml_root(text)
    problems = [f"{path}:{line_of(root, ['defaults', key])}: defaults.{key}: {unknown_key(key, list(Scenario.model_fields))}"
                for key in document.defaults if key not in Scenario.model_fields]
    defaults = {key: value for key, value in document.defaults.items() if key in Scenario.model_fields}
    scenarios = []
    for i, raw in enumerate(document.scenarios):
        try:
            scenarios.append(scenario({**raw, "source": f"{path}: scenarios.{i}"}, defaults))
        except InputError as err:
            problems.append(f"{path}:{line_of(root, ['scenarios', i])}: scenarios.{i}: {err}")
        except ValidationError as err:
            problems += format_validation_error(path, err, root, Scenario, at=("scenarios", i))
    if problems:
        raise SpecError("\n".join(problems))
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: scenario names must be unique")
    return scenarios
