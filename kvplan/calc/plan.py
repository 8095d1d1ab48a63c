"""`kvplan plan`: the smallest deployment serving N concurrent requests of C tokens.

The search covers every TP size the attention heads allow (within a node unless told otherwise),
every pipeline depth the layers allow (1 .. num_layers), and the replicas each needs. A replica
counts only if the engine starts at max_len (one request of max_len fits its pool) and holds a
request of C tokens; its concurrency is capped at max_num_seqs. Deployments rank by GPUs, then by
fewer pipeline stages (each adds a bubble this memory plan does not price), then by smaller TP.
The runners-up trade GPUs for stages: the Pareto front of (GPUs, PP) below the best's depth. The
smaller fleets show why the best's GPU count G is the least: each shape's most replicas on fewer than
G GPUs holds fewer requests than asked, or the shape does not start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.draft import pool_model
from kvplan.calc.fit import concurrency, engine_command
from kvplan.calc.startup import startup
from kvplan import bounds
from kvplan.errors import InputError, KvplanError
from kvplan.results.base import Step
from kvplan.results.capacity import Deployment, MemoryBudget, PlanResult, SmallerFleet, SmallerFleets, StartCheck
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import ceil_div


def tp_sizes(model: ModelSpec, limit: int) -> list[int]:
    """TP sizes vLLM accepts: divisors of the attention heads, up to `limit` GPUs."""
    return [tp for tp in range(1, min(limit, model.num_attention_heads) + 1) if model.num_attention_heads % tp == 0]


@dataclass(frozen=True, eq=False)  # one per shape searched: compared by identity
class Shape:
    """One replica shape, tp x pp, in the numbers the smaller fleets read (its budget is not kept, so
    that a search of thousands of shapes holds no thousands of budgets)."""

    kv_dtype: str
    tp: int
    pp: int
    fitting: int  # requests of ctx tokens its pool holds
    per_replica: int  # of them, what it runs: min(fitting, max_num_seqs)
    start: StartCheck  # at max_len

    @property
    def serves(self) -> bool:
        return self.fitting >= 1 and self.start.starts

    @property
    def size(self) -> int:
        return self.tp * self.pp


def shape(model: ModelSpec, gpu: GpuSpec, n: int, ctx: int, max_len: int, inputs: BudgetInputs,
          per_node: int) -> tuple[Shape, Deployment | None] | None:
    """The shape inputs.tp x inputs.pp, and the replicas it needs for n requests when it serves; None
    when the engine refuses the shape (a TP a layer's KV heads or states do not split into)."""
    try:
        budget = memory_budget(model, gpu, inputs)
    except KvplanError:
        return None
    pooled = pool_model(model, inputs.speculative_method, inputs.draft_model, inputs.num_speculative_tokens)
    fitting, per_request = concurrency(pooled, budget, ctx)  # a drafter's KV layers too (calc/draft.py)
    found = Shape(budget.kv_dtype, budget.tp, budget.pp, fitting, min(fitting, budget.max_num_seqs),
                  startup(pooled, budget, max_len))
    return found, deployment(model, gpu, budget, found, per_request, n, max_len, per_node) if found.serves else None


def deployment(model: ModelSpec, gpu: GpuSpec, budget: MemoryBudget, s: Shape, per_request: int, n: int,
               max_len: int, per_node: int) -> Deployment:
    """The replicas of a shape that serves, and the GPUs they take, for n requests at once."""
    replicas = ceil_div(n, s.per_replica)
    gpus = replicas * s.size
    return Deployment(kv_dtype=s.kv_dtype, tp=s.tp, pp=s.pp, concurrency_per_replica=s.per_replica,
                      fitting_per_replica=s.fitting, max_num_seqs=budget.max_num_seqs, replicas=replicas, gpus=gpus,
                      nodes=ceil_div(gpus, per_node), kv_pool_bytes_per_gpu=budget.kv_pool_bytes,
                      bytes_per_request_per_gpu=per_request, max_len=max_len,
                      command=engine_command(model, gpu, budget, max_len, s.per_replica)[0])  # never admits more than fit


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
           cross_node: bool) -> tuple[list[Shape], list[Deployment]]:
    """Every shape searched (TP a divisor of the heads, within a node unless cross_node, x PP 1 ..
    num_layers), and the deployments of those that serve, best first."""
    limit = model.num_attention_heads if cross_node else per_node
    found = [f for f in (shape(model, gpu, n, ctx, max_len, replace(inputs, tp=tp, pp=pp), per_node)
                         for tp in tp_sizes(model, limit) for pp in range(1, model.num_layers + 1)) if f is not None]
    return [s for s, _ in found], sorted((d for _, d in found if d is not None), key=rank)


SMALLER_HOLDING, SMALLER_NOT_STARTING = 3, 1  # rows shown: the fleets below the best that hold most, the largest idle


def smaller_fleet(s: Shape, below: int) -> SmallerFleet:
    """The most replicas of shape s on fewer than `below` GPUs, and what they hold at once."""
    count = (below - 1) // s.size
    per_replica = s.per_replica if s.serves else 0
    return SmallerFleet(kv_dtype=s.kv_dtype, tp=s.tp, pp=s.pp, replicas=count, gpus=count * s.size,
                        concurrency_per_replica=per_replica, concurrency=count * per_replica, starts=s.start.starts,
                        fitting_per_replica=s.fitting, needed_bytes=s.start.needed_bytes,
                        kv_pool_bytes=s.start.kv_pool_bytes)


def smaller_fleets(shapes: list[Shape], best: Deployment) -> SmallerFleets:
    """Why best.gpus is the least: every shape's largest fleet of fewer GPUs, and the nearest of them
    shown: the best's shape one replica fewer, those that hold most, and the largest that do not serve."""
    held = lambda s: (best.gpus - 1) // s.size * s.per_replica  # noqa: E731  # replicas x each
    below = [s for s in shapes if s.size < best.gpus]
    holding = sorted((s for s in below if s.serves), key=lambda s: (-held(s), -s.size, s.pp, s.tp))
    idle = sorted((s for s in below if not s.serves), key=lambda s: (-s.size, s.pp, s.tp))
    own = [s for s in holding if (s.tp, s.pp) == (best.tp, best.pp)]
    nearest = own + [s for s in holding if s not in own][:SMALLER_HOLDING - len(own)] + idle[:SMALLER_NOT_STARTING]
    return SmallerFleets(kv_dtype=best.kv_dtype, best_gpus=best.gpus, shapes=len(below), not_serving=len(idle),
                         most_held=held(holding[0]) if holding else 0,
                         nearest=tuple(smaller_fleet(s, best.gpus) for s in nearest))


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
    best, runner_ups, candidates, infeasible, smaller = [], [], [], [], []
    for kv_dtype in kv_dtypes:  # bad settings (dtype, engine, util) are errors, not infeasible plans
        memory_budget(model, gpu, replace(inputs, kv_dtype=kv_dtype, tp=1, pp=1))
        shapes, options = search(model, gpu, concurrency, ctx, max_len, replace(inputs, kv_dtype=kv_dtype),
                                 gpus_per_node, cross_node_tp)
        if not options:
            infeasible.append(f"KV {kv_dtype}: no TP <= {gpus_per_node if not cross_node_tp else 'heads'} x PP <= "
                              f"{model.num_layers} starts at max_len {max_len:,} and holds a {ctx:,}-token request")
            continue
        best.append(options[0])
        smaller.append(smaller_fleets(shapes, options[0]))
        runner_ups.extend(runners_up(options, options[0]))
        candidates.extend(options)
    tp_limit = "the attention heads" if cross_node_tp else f"{gpus_per_node} GPUs (one node)"
    searched = (f"TP: divisors of {model.num_attention_heads} heads up to {tp_limit}; PP: 1 to {model.num_layers} "
                f"layers; replicas capped at max_num_seqs")
    return PlanResult(model=model.name, model_origin=model.origin, gpu=gpu.name, concurrency=concurrency,
                      ctx_tokens=ctx, max_len=max_len, gpus_per_node=gpus_per_node, cross_node_tp=cross_node_tp,
                      searched=searched, best=tuple(best), runners_up=tuple(runner_ups), candidates=tuple(candidates),
                      infeasible=tuple(infeasible), smaller=tuple(smaller),
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
