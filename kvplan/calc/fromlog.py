"""Plans on a start-up log's measured terms (`--from-log` on batch, fit, plan, sweep and check): the
GPU's total, the weights and the rest of the non-KV memory are the log's, the settings a command
leaves at its default too, and what the command sets is the what-if (calc/logfit.py reads the log)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kvplan.calc.budget import BudgetInputs
from kvplan.calc.logfit import measured_inputs, settings_inputs, speculative_method
from kvplan.calc.weights import WEIGHT_FORMATS
from kvplan.errors import InputError
from kvplan.specs.checkfile import Scenario
from kvplan.specs.engines import DEFAULT_ENGINE
from kvplan.specs.engines.fields import FIELD_READERS
from kvplan.specs.engines.logs import LoggedStartup
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.model import ModelSpec
from kvplan.units import GIB


def plan_from_log(startup: LoggedStartup, asked: BudgetInputs, total_bytes: int | None = None, *,
                  method: str | None = None, model: ModelSpec | None = None) -> tuple[BudgetInputs, tuple[str, ...]]:
    """A command's inputs on the log's measured terms (`from_log`): what the command leaves at its
    default takes the log's setting (the release, where the engine is named without one; utilization,
    TP/PP, KV dtype, max_model_len, batch limits, speculative tokens; TP 1 is the command's default),
    what it sets is the what-if; the GPU's total,
    the weights and the rest of the non-KV memory are the log's (the weights rescaled to another TP).
    `method` is the log's speculative method where kvplan lays its drafter out (speculative_method,
    which needs the model): its KV layers join the pool; its weights are in the log's already. A
    `model` whose checkpoint is not quantized takes the log's quantization as its weights dtype (vLLM
    cast it at load: the deploy line asks for that quantization again)."""
    logged = settings_inputs(startup)
    merged = replace(
        asked, engine=_engine_on_log(startup, asked.engine, logged.engine), terms_from=Path(startup.where).name,
        util=asked.util if asked.util is not None else logged.util,
        tp=asked.tp if asked.tp != 1 else logged.tp, pp=asked.pp if asked.pp != 1 else logged.pp,
        kv_dtype=asked.kv_dtype if asked.kv_dtype != "auto" else logged.kv_dtype,
        max_model_len=asked.max_model_len or logged.max_model_len,
        max_num_seqs=asked.max_num_seqs or logged.max_num_seqs,
        max_num_batched_tokens=asked.max_num_batched_tokens or logged.max_num_batched_tokens,
        num_speculative_tokens=asked.num_speculative_tokens or logged.num_speculative_tokens,
        sampler=asked.sampler or logged.sampler, speculative_method=asked.speculative_method or method,
        weights_dtype=asked.weights_dtype if asked.weights_dtype != "auto" else _cast_at_load(startup, model))
    measured, notes = measured_inputs(startup, merged, total_bytes)
    keep = lambda given, logged: logged if given is None else given  # noqa: E731 (a term given on the line wins)
    return replace(measured, gpu_mem_bytes=keep(asked.gpu_mem_bytes, measured.gpu_mem_bytes),
                   weights_bytes=keep(asked.weights_bytes, measured.weights_bytes),
                   activation_bytes=keep(asked.activation_bytes, measured.activation_bytes),
                   overhead_bytes=keep(asked.overhead_bytes, measured.overhead_bytes)), notes


def _cast_at_load(startup: LoggedStartup, model: ModelSpec | None) -> str:
    """The format the engine quantized an unquantized checkpoint to as it loaded it (the log's
    quantization, read as a check file reads it); "auto" where there is none or kvplan knows no such format."""
    if model is None or model.quantization or not startup.quantization:
        return "auto"
    read = FIELD_READERS["quantization"](startup.quantization, "quantization")
    return read if isinstance(read, str) and read in WEIGHT_FORMATS else "auto"


def _engine_on_log(startup: LoggedStartup, asked: str, logged: str) -> str:
    """The preset a plan on the log's terms runs: the log's release where the engine is named without
    one (or not at all: the default), another release of the same engine as a what-if; another engine
    is refused, since the measured non-KV memory is the logged engine's own."""
    if asked == DEFAULT_ENGINE or asked == startup.engine:
        return logged
    ours, theirs = engine_entry(asked), engine_entry(startup.engine)
    if ours.name != theirs.name:
        raise InputError(f"{Path(startup.where).name} is a {theirs.display_name} log: its measured terms are "
                         f"{theirs.display_name}'s, not {ours.display_name}'s; give {{engine}} {theirs.name} (or a "
                         f"{theirs.name}==VERSION release), or plan {ours.display_name} from defaults without "
                         "{from_log}", "engine", "from_log")
    return asked


def scenario_from_log(startup: LoggedStartup, scenario: Scenario, total_bytes: int | None,
                      model: ModelSpec | None = None) -> Scenario:
    """A check scenario on the log's measured terms (`kvplan check` from a log): plan_from_log over
    the scenario's inputs, written back as its fields (the weights at the scenario's TP); the log's
    speculative method where kvplan lays out its drafter for `model` (speculative_method)."""
    from kvplan.calc.check import scenario_inputs

    method = speculative_method(startup, model)[0] if model is not None else None
    planned, _ = plan_from_log(startup, scenario_inputs(scenario), total_bytes, method=method, model=model)
    weights = (planned.weights_bytes or 0) * (planned.weights_tp or planned.tp) / planned.tp
    return scenario.model_copy(update=dict(
        engine=planned.engine, util=planned.util, tp=planned.tp, pp=planned.pp, kv_dtype=planned.kv_dtype,
        max_model_len=planned.max_model_len, max_num_seqs=planned.max_num_seqs,
        max_num_batched_tokens=planned.max_num_batched_tokens,
        num_speculative_tokens=planned.num_speculative_tokens, speculative_method=planned.speculative_method,
        gpu_mem_gib=(planned.gpu_mem_bytes or 0) / GIB,
        weights_gib=weights / GIB, activation_gib=(planned.activation_bytes or 0) / GIB,
        overhead_gib=(planned.overhead_bytes or 0) / GIB))
