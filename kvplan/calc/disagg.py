"""A disaggregated plan: prefill workers and decode workers sized apart, each on its own budget.

A prefill worker runs max_num_batched_tokens of prompt a step and holds only the requests in prefill:
ceil(max_num_batched_tokens / prompt) of them (one, when a prompt takes several chunks), each of the
prompt's tokens, until its KV leaves for a decode worker. A decode worker holds every request it
serves at once, at its full context. Each role is then the smallest deployment (calc/plan.py's
search) that starts at max_len and holds its requests, on the role's own budget: an engine whose
default memory fraction depends on the role (SGLang 0.5.15 on, sgl-project/sglang#29615: a prefill
node drops the decode graphs' reserve, a decode node the prefill graphs' and sizes its activation
slack to its running requests) plans each role with its own, and the deploy lines name the role.
Memory only: how many prefill workers keep up with the arrival rate is a question of compute this
plan does not price.
"""

from __future__ import annotations

from dataclasses import replace

from kvplan import bounds
from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.plan import plan
from kvplan.errors import InputError
from kvplan.results.disagg import DisaggPlan
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import ceil_div


def disaggregated(model: ModelSpec, gpu: GpuSpec, concurrency: int, ctx: int, prompt: int,
                  kv_dtypes: tuple[str, ...] = ("auto",), inputs: BudgetInputs = BudgetInputs(),
                  gpus_per_node: int = 8, *, max_len: int | None = None, cross_node_tp: bool = False) -> DisaggPlan:
    """Both roles for `concurrency` requests of `ctx` tokens, of which `prompt` are the prompt."""
    bounds.tokens(prompt, "prompt")
    if prompt > ctx:
        raise InputError(f"{{prompt}} {prompt:,} is longer than the {ctx:,}-token requests; give {{prompt}} <= {{ctx}}",
                         "prompt", "ctx")
    step = memory_budget(model, gpu, replace(inputs, tp=1, pp=1)).max_num_batched_tokens  # given, or the engine's
    held = max(1, ceil_div(step, prompt))
    prefill = plan(model, gpu, held, prompt, kv_dtypes, replace(inputs, disaggregation_mode="prefill"), gpus_per_node,
                   max_len=max_len, cross_node_tp=cross_node_tp)
    decode = plan(model, gpu, concurrency, ctx, kv_dtypes, replace(inputs, disaggregation_mode="decode"), gpus_per_node,
                  max_len=max_len, cross_node_tp=cross_node_tp)
    return DisaggPlan(prompt_tokens=prompt, max_num_batched_tokens=step, prefill_requests=held, prefill=prefill,
                      decode=decode, role_note=_role_note(model, gpu, inputs))


def _role_note(model: ModelSpec, gpu: GpuSpec, inputs: BudgetInputs) -> str:
    """Whether the engine's default memory fraction differs by role (then each line names its role), or
    the two lines are ordinary servers the user joins with the engine's KV transfer."""
    engine = engine_entry(inputs.engine)
    default = engine.default_util(gpu, inputs.tp, inputs.pp, model=model)
    if inputs.util is None and any(engine.default_util(gpu, inputs.tp, inputs.pp, model=model, role=role) != default
                                   for role in ("prefill", "decode")):
        return (f"{engine.display_name} {engine.release} reserves for each role's own phase: each line takes its "
                "role's default fraction and names the role")
    if engine.names_disagg_role:  # its lines name the role whatever the release
        return (f"{engine.display_name} {engine.release} sizes a prefill and a decode worker alike; each line names "
                "its role")
    return (f"{engine.display_name} {engine.release} sizes a prefill and a decode worker alike: the two lines are "
            f"ordinary servers; {engine.disagg_join}")
