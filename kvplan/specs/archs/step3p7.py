"""Step-3.7-Flash (model_type step3p7): GQA layers, a full-attention layer then three sliding-window
ones (layer_types), a dense MLP in the first layers and a sigmoid-routed MoE with one shared expert
in the rest. vLLM 0.34 runs its language model as Step3p5ForCausalLM
(model_executor/models/step3p5.py: Step3p5DecoderLayer, Step3p5Attention, FusedMoEBlock,
Step3p5MLP); Step3p7ForConditionalGeneration (step3p7.py) wraps it with a vision tower.

Every layer keeps num_attention_groups (here num_key_value_heads) x head_dim K/V heads; a
"sliding_attention" layer passes sliding_window to Attention (per_layer_sliding_window), so its cache
is a SlidingWindowSpec, the others a FullAttentionSpec: kvplan's "sliding" and "full" kinds, as they are.

The MoE layers are mlp_layer_types' "sparse" entries, else moe_layers_enum's, else (this config)
those from first_k_dense_replace on, the layers 3-44 Step-3.7-Flash's published checkpoint holds
experts in, as transformers' Step3p7TextConfig defaults them; vLLM's own fallback without any of
these keys (every layer but the first: Step3p5 _is_moe_layer) is not what this checkpoint is.

MTP: the num_nextn_predict_layers layers after num_hidden_layers run only as vLLM's speculative
draft (Step3p5MTP); Step3p5Model.load_weights skips every layer index >= num_hidden_layers, so they
add neither cache nor weights here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture

if TYPE_CHECKING:
    from kvplan.specs.hfconfig import Config
from kvplan.specs.params import stacked_params

FULL, SLIDING = "full_attention", "sliding_attention"


def attention_types(c: Config, n: int) -> list[str]:
    """The first n of layer_types (Step3p5 _get_layer_type indexes it by layer; MTP entries after)."""
    types = c.get("layer_types")
    if not (isinstance(types, list) and len(types) >= n and not set(types[:n]) - {FULL, SLIDING}):
        raise SpecError(f"{c.where}: layer_types must list {n} entries, {FULL!r} or {SLIDING!r}; fix the config")
    return list(types[:n])


def _kv_heads(c: Config) -> int:
    return c.int("num_attention_groups", "num_key_value_heads")


def layer_groups(c: Config, n: int) -> list[dict]:
    types = attention_types(c, n)
    shared = {"num_kv_heads": _kv_heads(c), "head_dim": c.int("head_dim")}
    groups = [{"kind": "sliding", "count": types.count(SLIDING), **shared, "window": c.int("sliding_window")},
              {"kind": "full", "count": types.count(FULL), **shared}]
    return [g for g in groups if g["count"]]


def moe_flags(c: Config, n: int) -> list[bool]:
    """Which layers hold experts (see the module's docstring for the order the keys are read in)."""
    types, listed = c.get("mlp_layer_types"), c.get("moe_layers_enum")
    if isinstance(types, list):
        return [i < len(types) and types[i] == "sparse" for i in range(n)]
    if listed is not None:  # "3,4,...,44" as vLLM splits it, or a list
        items = listed.strip().split(",") if isinstance(listed, str) else listed
        layers = {int(i) for i in items}
        return [i in layers for i in range(n)]
    first = c.get("first_k_dense_replace")
    if first is not None:
        return [i >= c.int("first_k_dense_replace") for i in range(n)]
    return [0 < i for i in range(n)]


def _attention_params(c: Config, layer_type: str) -> int:
    """qkv_proj, o_proj, q_norm and k_norm (head_dim each), and g_proj (hidden x heads) where
    use_head_wise_attn_gate; sliding layers may have num_sliding_attention_heads query heads."""
    h, head_dim, kv = c.int("hidden_size"), c.int("head_dim"), _kv_heads(c)
    heads = c.int("num_attention_heads")
    if layer_type == SLIDING:
        heads = c.int("num_sliding_attention_heads", default=heads)
    gate = h * heads if c.get("use_head_wise_attn_gate", default=False) else 0
    return h * (heads + 2 * kv) * head_dim + heads * head_dim * h + 2 * head_dim + gate


def _mlp_params(c: Config, moe: bool) -> int:
    """A dense layer's gated MLP of intermediate_size; an MoE layer's gated experts of
    moe_intermediate_size, the shared expert of share_expert_dim, the fp32 router and its bias
    (FusedMoEBlock)."""
    h = c.int("hidden_size")
    if not moe:
        return 3 * h * c.int("intermediate_size")
    experts = c.int("moe_num_experts", "num_experts")
    return experts * 3 * h * c.int("moe_intermediate_size") + 3 * h * c.int("share_expert_dim") + h * experts + experts


def params(c: Config, groups: list[dict]) -> int:
    """Embeddings and lm_head, each layer's attention and MLP, two norms a layer and the final one."""
    n, h = sum(g["count"] for g in groups), c.int("hidden_size")
    return stacked_params(c, (_attention_params(c, t) + _mlp_params(c, moe) + 2 * h
                              for t, moe in zip(attention_types(c, n), moe_flags(c, n))))


def moe_layers(c: Config, n: int) -> int:
    return sum(moe_flags(c, n))


ARCHITECTURE = Architecture(
    model_types=("step3p7",), layer_groups=layer_groups, params=params, moe_layers=moe_layers,
    engine_layout="vllm/model_executor/models/step3p5.py Step3p5Attention (Attention with "
                  "per_layer_sliding_window), v1/kv_cache_interface.py SlidingWindowSpec, FullAttentionSpec")
