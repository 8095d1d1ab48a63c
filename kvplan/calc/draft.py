"""A speculative drafter's memory in vLLM V1 (0.19 and 0.34): its weights, its KV cache layers in the
shared pool, and the lookahead slots the scheduler reserves.

Weights. gpu_model_runner.py load_model loads the drafter inside "Model loading took"
(self.drafter.load_model, under the same DeviceMemoryProfiler), so the log's weights include it:

    draft_model  the draft's whole checkpoint (v1/spec_decode/draft_model.py shares neither embedding
                 nor lm_head with the target), at draft_tensor_parallel_size = the target's TP
    mtp          the model's own num_nextn_predict_layers / mtp_num_hidden_layers decoder layers, each
                 with its fc over [embedding; hidden] (2h x h): ColumnParallelLinear, split by TP, in
                 qwen3_5_mtp.py / qwen3_next_mtp.py; nn.Linear eh_proj, on every GPU, in deepseek_mtp.py
                 and glm4_moe_mtp.py. Embedding and lm_head are the target's (eagle.py
                 _maybe_share_embeddings / _maybe_share_lm_head: "Detected MTP model"); the draft's own
                 copies are deleted before the profiler's end, so they do not count.
    eagle        one decoder layer of the target's width and fc (2h x h, ReplicatedLinear: every GPU),
                 llama_eagle.py; embedding and lm_head shared where the head has none
    eagle3       one decoder layer whose qkv_proj reads 2h (llama_eagle3.py: qkv_input_size = 2 x hidden),
                 fc (3h x h, ReplicatedLinear), its own lm_head of draft_vocab_size rows (the target's
                 vocab_size where the head's config has none, as load_weights sets it) and d2t
                 (draft_vocab_size int64)

An EAGLE head named by its repo (--speculative-model, as vLLM requires for these methods) is counted
by the same formulas from its own config: its width and decoder layers (num_hidden_layers), an
EAGLE-3 head's draft_vocab_size (32,000 in the published Llama-3.1-8B head, not the target's 128,256).
Its checkpoint's tensors are not summed: an embed_tokens it ships is replaced by the target's when
the shapes match (eagle.py _maybe_share_embeddings) and is freed before the profiler reads.

A decoder layer "of the target's width" is the target's average layer: (params_total - embeddings -
vision tower) / num_layers, in the served dtype (a head is loaded unquantized). Norms (a few h) are
not counted. A database draft's or a given byte count replaces the formula.

KV layers. The drafter's attention layers register KV cache specs of their own (eagle.py load_model:
_draft_attn_layer_names) and join the pool's groups (v1/core/kv_cache_utils.py get_kv_cache_groups):
an MTP or EAGLE layer is a copy of the target's full-attention (or MLA) layer, a draft model brings its
own layers. Qwen3.5-27B with MTP: 16 + 1 full beside 48 GDN ("Add 3 padding layers").

Lookahead. The scheduler reserves num_speculative_tokens more slots for a running request of an
EAGLE/MTP or draft-model drafter (v1/core/sched/scheduler.py num_lookahead_tokens; kv_cache_manager.py
allocate_slots: min(computed + new + lookahead, max_model_len)): capped at max_model_len, so the
start-up capacity (max_model_len a request) is unchanged; a request shorter than that holds N more.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.errors import InputError
from kvplan.results.base import Step
from kvplan.specs.engines.base import Term
from kvplan.specs.model import ModelSpec
from kvplan.units import DTYPE_BYTES, ceil_div

METHODS = ("draft_model", "eagle", "eagle3", "mtp")
SPLIT_FC_FAMILIES = ("qwen3_5", "qwen3_5_moe", "qwen3_next")  # ColumnParallelLinear fc (qwen3_5_mtp.py)
D2T_BYTES = 8  # int64 per draft-vocabulary token (llama_eagle3.py: torch.zeros(draft_vocab_size, dtype=torch.long))


@dataclass(frozen=True)
class Drafter:
    """What a speculative config asks for: the method, the draft model (a database spec) where one is named."""

    method: str
    num_speculative_tokens: int
    draft: ModelSpec | None = None


def drafter(method: str | None, draft: ModelSpec | None, num_spec: int, target: ModelSpec) -> Drafter | None:
    """The drafter of a speculative config, or None without a method or draft: where only a draft is
    named, the method its architecture names (an EAGLE-3 or EAGLE head), else "draft_model" (vLLM's
    SpeculativeConfig does the same); an MTP config
    without num_speculative_tokens takes the model's MTP layers (speculative.py: n_predict)."""
    if method is None and draft is None:
        return None
    if method is None:  # as vLLM's SpeculativeConfig infers it from the draft's architecture ("Eagle3...")
        arch = (draft.architecture if draft is not None else "").lower()
        method = "eagle3" if "eagle3" in arch or (draft is not None and draft.draft_vocab_size) else \
            "eagle" if "eagle" in arch else "draft_model"
    if method not in METHODS:
        raise InputError(f"unknown speculative method '{method}'; choose one of {', '.join(METHODS)}",
                         "speculative_method")
    if method == "draft_model" and draft is None:
        raise InputError("speculative method draft_model needs a draft: give {draft_model}", "draft_model")
    if method == "mtp" and not target.mtp_layers:
        raise InputError(f"{target.name} ships no MTP layers (num_nextn_predict_layers); choose another "
                         "{speculative_method}", "speculative_method")
    spec = num_spec or (target.mtp_layers if method == "mtp" else 0)
    if not spec:
        raise InputError(f"speculative method {method} needs {{num_speculative_tokens}} of 1 or more",
                         "num_speculative_tokens")
    return Drafter(method, spec, draft)


def _global_attention(target: ModelSpec):
    for group in target.layers:
        if group.kind in ("full", "mla"):
            return group
    raise InputError(f"{target.name} has no full-attention or MLA layer for a drafter's layer to copy; "
                     "give a {draft_model}", "speculative_method")


def draft_kv_layers(target: ModelSpec, d: Drafter) -> tuple:
    """The drafter's KV cache layer groups: a draft model's own, else copies of the target's full attention."""
    if d.draft is not None:
        return d.draft.layers
    count = target.mtp_layers if d.method == "mtp" else 1
    return (_global_attention(target).model_copy(update={"count": count}),)


def served_model(target: ModelSpec, d: Drafter | None) -> ModelSpec:
    """The target with the drafter's KV layers in its pool: a group of the same shape grows, another is added."""
    if d is None:
        return target
    layers = list(target.layers)
    for extra in draft_kv_layers(target, d):
        same = [i for i, g in enumerate(layers) if g.model_copy(update={"count": 0}) ==
                extra.model_copy(update={"count": 0})]
        if same:
            layers[same[0]] = layers[same[0]].model_copy(update={"count": layers[same[0]].count + extra.count})
        else:
            layers.append(extra)
    added = sum(g.count for g in layers) - sum(g.count for g in target.layers)
    return target.model_copy(update={"layers": tuple(layers), "num_layers": target.num_layers + added})


def layer_params(target: ModelSpec) -> int:
    """The target's average decoder layer: what an MTP or EAGLE layer of its width holds."""
    embed = target.vocab_size * target.hidden_size * (1 if target.tie_word_embeddings else 2)
    return (target.params_total - embed - (target.tower_params or 0)) // target.num_layers


def head_weights(target: ModelSpec, d: Drafter, dtype: str, tp: int) -> Term:
    """One GPU's bytes of an MTP or EAGLE head, by the formulas of the module's docstring: an EAGLE
    head named by its repo (--speculative-model) by its own config (its width, its decoder layers,
    an EAGLE-3 head's draft_vocab_size), else one layer of the target's width."""
    head = d.draft if d.draft is not None and d.method in ("eagle", "eagle3") else target
    width, h = DTYPE_BYTES[dtype], head.hidden_size
    layer = layer_params(head)
    if d.method == "mtp":
        n, split = target.mtp_layers, target.family in SPLIT_FC_FAMILIES
        fc = n * 2 * h * h * width
        value = ceil_div(n * layer * width, tp) + (ceil_div(fc, tp) if split else fc)
        formula = (f"{n} x {layer:,} params x {width} B / {tp} + fc {n} x 2 x {h:,}^2 x {width} B"
                   + (f" / {tp}" if split else " (every GPU)"))
        return Term(value, f"{n} MTP layer{'s' * (n > 1)} of {target.name}", formula)
    n = head.num_layers if head is not target else 1
    layers = f"{n} x {layer:,}" if n > 1 else f"{layer:,}"
    named = f" ({head.name}'s config)" if head is not target else ""
    if d.method == "eagle":
        value = ceil_div(n * layer * width, tp) + 2 * h * h * width
        return Term(value, f"EAGLE head{named}: {n} decoder layer{'s' * (n > 1)} + fc",
                    f"{layers} params x {width} B / {tp} + fc 2 x {h:,}^2 x {width} B (every GPU)")
    attn = _global_attention(head)
    qkv = h * (head.num_attention_heads + 2 * getattr(attn, "num_kv_heads", 0)) * getattr(attn, "head_dim", 0)
    vocab = head.draft_vocab_size or head.vocab_size
    sharded = ceil_div((n * (layer + qkv) + vocab * h) * width, tp)
    value = sharded + 3 * h * h * width + vocab * D2T_BYTES
    return Term(value, f"EAGLE-3 head{named}: {n} decoder layer{'s' * (n > 1)} (2h qkv input) + fc + lm_head",
                f"({layers} + qkv {n} x {qkv:,} + lm_head {vocab:,} x {h:,}) params x {width} B / {tp} + "
                f"fc 3 x {h:,}^2 x {width} B + d2t {vocab:,} x {D2T_BYTES} B")


def lookahead_tokens(d: Drafter | None) -> int:
    """Slots a running request holds beyond its tokens (scheduler.py num_lookahead_tokens)."""
    return d.num_speculative_tokens if d else 0


def pool_model(model: ModelSpec, method: str | None, draft: ModelSpec | None, num_spec: int) -> ModelSpec:
    """The model whose layers the KV pool holds, for the per-request bytes beside a budget."""
    return served_model(model, drafter(method, draft, num_spec, model))


def with_draft_weights(weights: Term, draft: Term | None) -> Term:
    """The target's weights and the drafter's, loaded together ("Model loading took", gpu_model_runner.py)."""
    if draft is None:
        return weights
    return Term(weights.value + draft.value, f"{weights.source} + {draft.source}",
                f"{weights.formula} + {draft.value:,} B ({draft.formula})")


def draft_step(draft: Drafter, term: Term | None, kv_layers: int) -> Step:
    value = term.value if term else 0
    return Step(label=f"drafter ({draft.method}, {draft.num_speculative_tokens} tokens)", value=f"{value:,} B",
                formula=f"{term.formula if term else ''}; {kv_layers} KV layers in the pool; "
                f"{draft.num_speculative_tokens} lookahead slots a running request (capped at max_model_len)")
