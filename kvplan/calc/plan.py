"""`kvplan plan`: the smallest deployment serving N concurrent requests of C tokens.

The search covers every TP size the attention heads allow (within a node unless told otherwise),
every pipeline depth the layers allow (1 .. num_layers), and the replicas each needs. A replica
counts only if the engine starts at max_len (one request of max_len fits its pool) and holds a
request of C tokens; its concurrency is capped at max_num_seqs. Deployments rank by GPUs, then by
fewer pipeline stages (each adds a bubble this memory plan does not price), then by smaller TP.
The runners-up trade GPUs for stages: the Pareto front of (GPUs, PP) below the best's depth.
"""

from __future__ import annotations

from dataclasses import replace

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.fit import concurrency, engine_command
from kvplan.calc.startup import startup
from kvplan import bounds
from kvplan.errors import InputError, KvplanError
from kvplan.results.base import Step
from kvplan.results.capacity import Deployment, PlanResult
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import ceil_div


def tp_sizes(model: ModelSpec, limit: int) -> list[int]:
    """TP sizes vLLM accepts: divisors of the attention heads, up to `limit` GPUs."""
    return [tp for tp in range(1, min(limit, model.num_attention_heads) + 1) if model.num_attention_heads % tp == 0]


def deployment(model: ModelSpec, gpu: GpuSpec, n: int, ctx: int, max_len: int, inputs: BudgetInputs,
               per_node: int) -> Deployment | None:
    """One replica shape (inputs.tp x inputs.pp) and the replicas it needs; None when it cannot serve."""
    try:
        budget = memory_budget(model, gpu, inputs)
    except KvplanError:
        return None  # e.g. a TP a layer's KV heads or states do not split into
    fitting, per_request = concurrency(model, budget, ctx)
    if fitting < 1 or not startup(model, budget, max_len).starts:
        return None
    seqs = budget.max_num_seqs
    per_replica = min(fitting, seqs)
    replicas = ceil_div(n, per_replica)
    gpus = replicas * budget.tp * budget.pp
    return Deployment(kv_dtype=budget.kv_dtype, tp=budget.tp, pp=budget.pp, concurrency_per_replica=per_replica,
                      fitting_per_replica=fitting, max_num_seqs=seqs, replicas=replicas, gpus=gpus,
                      nodes=ceil_div(gpus, per_node), kv_pool_bytes_per_gpu=budget.kv_pool_bytes,
                      bytes_per_request_per_gpu=per_request, max_len=max_len,
                      command=engine_command(model, gpu, budget, max_len, per_replica)[0])  # never admits more than fit


def rank(d: Deployment) -> tuple[int, int, int]:
    return d.gpus, d.pp, d.tp


RUNNERS_UP = 3


def runners_up(options: list[Deployment], best: Deployment) -> list[Deployment]:
    """The Pareto front below the best's depth: at each smaller PP, the fewest GPUs, kept only when
    no shallower pipeline serves the load with as few; the RUNNERS_UP deepest of them."""
    fewest: dict[int, Deployment] = {}
    for d in options:
        if d.pp < best.pp and (d.pp not in fewest or rank(d) < rank(fewest[d.pp])):
            fewest[d.pp] = d
    front, least = [], None
    for pp in sorted(fewest):
        if least is None or fewest[pp].gpus < least:
            front.append(fewest[pp])
            least = fewest[pp].gpus
    return front[::-1][:RUNNERS_UP]


def search(model: ModelSpec, gpu: GpuSpec, n: int, ctx: int, max_len: int, inputs: BudgetInputs, per_node: int,
           cross_node: bool) -> list[Deployment]:
    limit = model.num_attention_heads if cross_node else per_node
    found = (deployment(model, gpu, n, ctx, max_len, replace(inputs, tp=tp, pp=pp), per_node)
             for tp in tp_sizes(model, limit) for pp in range(1, model.num_layers + 1))
    return sorted((d for d in found if d is not None), key=rank)


def plan(model: ModelSpec, gpu: GpuSpec, concurrency: int, ctx: int, kv_dtypes: tuple[str, ...] = ("auto",),
         inputs: BudgetInputs = BudgetInputs(), gpus_per_node: int = 8, *, max_len: int | None = None,
         cross_node_tp: bool = False) -> PlanResult:
    """Per KV dtype, the deployment with the fewest GPUs serving `concurrency` requests of `ctx`
    tokens at once, with max_model_len = max_len (default, as every command's and the engine's: the
    model's context)."""
    bounds.requests(concurrency, "concurrency")
    bounds.tokens(ctx, "ctx")
    bounds.gpus(gpus_per_node, "gpus_per_node")
    given = max_len is not None
    max_len = model.max_context if max_len is None else max_len
    if max_len < ctx:
        whose = "" if given else f" ({model.name}'s context, the default)"
        raise InputError(f"{{max_len}} {max_len:,}{whose} is shorter than the {ctx:,}-token requests; use {{max_len}} "
                         ">= {ctx}" + ("" if given else " and {allow_long_max_len}"),
                         "max_len", "ctx", "allow_long_max_len")
    best, runner_ups, candidates, infeasible = [], [], [], []
    for kv_dtype in kv_dtypes:  # bad settings (dtype, engine, util) are errors, not infeasible plans
        memory_budget(model, gpu, replace(inputs, kv_dtype=kv_dtype, tp=1, pp=1))
        options = search(model, gpu, concurrency, ctx, max_len, replace(inputs, kv_dtype=kv_dtype), gpus_per_node,
                         cross_node_tp)
        if not options:
            infeasible.append(f"KV {kv_dtype}: no TP <= {gpus_per_node if not cross_node_tp else 'heads'} x PP <= "
                              f"{model.num_layers} starts at max_len {max_len:,} and holds a {ctx:,}-token request")
            continue
        best.append(options[0])
        runner_ups.extend(runners_up(options, options[0]))
        candidates.extend(options)
    tp_limit = "the attention heads" if cross_node_tp else f"{gpus_per_node} GPUs (one node)"
    searched = (f"TP: divisors of {model.num_attention_heads} heads up to {tp_limit}; PP: 1 to {model.num_layers} "
                f"layers; replicas capped at max_num_seqs")
    return PlanResult(model=model.name, model_origin=model.origin, gpu=gpu.name, concurrency=concurrency,
                      ctx_tokens=ctx, max_len=max_len, gpus_per_node=gpus_per_node, cross_node_tp=cross_node_tp,
                      searched=searched, best=tuple(best), runners_up=tuple(runner_ups), candidates=tuple(candidates),
                      infeasible=tuple(infeasible),
                      explain=tuple(step for d in best for step in _explain(d, concurrency, gpus_per_node)))


def _explain(d: Deployment, n: int, per_node: int) -> list[Step]:
    name = f"{d.kv_dtype} TP{d.tp} x PP{d.pp}"
    return [
        Step(label=f"{name}: requests per replica",
             formula=f"min(floor({max(d.kv_pool_bytes_per_gpu, 0):,} B pool / {d.bytes_per_request_per_gpu:,} B "
                     f"per request), max_num_seqs {d.max_num_seqs:,})",
             value=f"{d.concurrency_per_replica:,}"),
        Step(label=f"{name}: replicas", formula=f"ceil({n:,} / {d.concurrency_per_replica:,})", value=f"{d.replicas:,}"),
        Step(label=f"{name}: GPUs", formula=f"{d.replicas:,} x {d.tp} x {d.pp}", value=f"{d.gpus:,}"),
        Step(label=f"{name}: nodes", formula=f"ceil({d.gpus:,} / {per_node})", value=f"{d.nodes:,}"),
    ]
