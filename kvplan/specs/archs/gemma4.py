"""Gemma-4 (model_type gemma4, its language model gemma4_text), as vLLM lays out its cache and weights
(vllm/model_executor/models/gemma4.py, 0.19 and 0.34; the towers in gemma4_mm.py).

Layers: ``layer_types`` names each layer sliding or full.
- A sliding layer caches ``num_key_value_heads`` x ``head_dim`` per token within ``sliding_window``.
- A full layer caches every token, with heads of ``global_head_dim`` (Gemma4DecoderLayer: "different
  head dimensions for sliding vs full attention") and, where ``attention_k_eq_v`` is set,
  ``num_global_key_value_heads`` KV heads (else ``num_key_value_heads``).
- K = V (``attention_k_eq_v``) saves weights, not cache: vLLM loads the checkpoint's k_proj into
  both the K and the V slot of qkv_proj (_gemma4_layer_weights_mapper), splits q, k, v at full width
  and hands both to Attention, whose FullAttentionSpec pages hold K and V: two tensors, 2 x heads x
  head_dim per token, as any full layer.
- The last ``num_kv_shared_layers`` layers read the cache of the last earlier layer of their type
  (Gemma4Attention kv_sharing_target_layer_name) and cache nothing of their own (kinds/gemma4.py).

Weights: the language model here (embeddings, per-layer embeddings, attention without the v_proj of a
K = V layer or the k/v of a shared one, the dense MLP, the experts beside it); the vision tower from
its vision_config by the shared estimate (importer); an audio tower is not counted.
"""

from __future__ import annotations

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config

SLIDING, FULL = "sliding_attention", "full_attention"


def _layer_types(c: Config, n: int) -> list[str]:
    types = c.get("layer_types")
    if not isinstance(types, list) or len(types) != n or set(types) - {SLIDING, FULL}:
        raise SpecError(f"{c.where}: Gemma-4 needs layer_types: {n} entries, each sliding_attention or "
                        "full_attention; fix the config")
    return types


def _first_shared(c: Config, n: int) -> int:
    shared = c.int("num_kv_shared_layers", default=0)
    if shared >= n:
        raise SpecError(f"{c.where}: num_kv_shared_layers {shared} leaves no layer of the {n} to hold a cache; "
                        "fix the config")
    return n - shared


def _shape(c: Config, layer_type: str) -> dict:
    """KV heads and head size of one layer type (Gemma4DecoderLayer, vLLM 0.19)."""
    if layer_type == SLIDING:
        return {"num_kv_heads": c.int("num_key_value_heads"), "head_dim": c.int("head_dim")}
    k_eq_v = bool(c.get("attention_k_eq_v"))
    heads = c.int("num_global_key_value_heads", "num_key_value_heads") if k_eq_v else c.int("num_key_value_heads")
    return {"num_kv_heads": heads, "head_dim": c.int("global_head_dim", "head_dim")}


def _target(c: Config, types: list[str], first_shared: int, layer_type: str) -> int:
    """The layer a shared layer of this type reads: the last one of its type before the shared ones."""
    earlier = [i for i in range(first_shared) if types[i] == layer_type]
    if not earlier:
        raise SpecError(f"{c.where}: a KV-shared {layer_type} layer has no earlier {layer_type} layer to read; "
                        "fix layer_types or num_kv_shared_layers")
    return earlier[-1]


def layer_groups(c: Config, n: int) -> list[dict]:
    types = _layer_types(c, n)
    first = _first_shared(c, n)
    window = {"window": c.int("sliding_window")}
    own = [{"kind": "sliding", "count": types[:first].count(SLIDING), **_shape(c, SLIDING), **window},
           {"kind": "full", "count": types[:first].count(FULL), **_shape(c, FULL)}]
    shared = [{"kind": "shared_kv", "count": types[first:].count(t), **_shape(c, t),
               **(window if t == SLIDING else {}), "target_layer": _target(c, types, first, t)}
              for t in (SLIDING, FULL) if t in types[first:]]
    return [g for g in own + shared if g["count"]]


# --- parameters ----------------------------------------------------------------------------------------

def _attention_params(c: Config, group: dict, h: int) -> int:
    """q and o always; k (and v unless K = V) on a layer with a cache of its own; q and k norms."""
    heads, dim, kv = c.int("num_attention_heads"), group["head_dim"], group["num_kv_heads"]
    qo = 2 * h * heads * dim + dim  # q_proj, o_proj, q_norm
    if group["kind"] == "shared_kv":
        return qo  # only q_proj: K and V come from the target layer
    k_eq_v = group["kind"] == "full" and bool(c.get("attention_k_eq_v"))
    return qo + (1 if k_eq_v else 2) * h * kv * dim + dim  # k_proj (+ v_proj), k_norm


def _layer_params(c: Config, group: dict, h: int) -> int:
    """One decoder layer: attention, the dense MLP (twice as wide on a shared layer with
    use_double_wide_mlp), four norms and the layer scalar; the experts, router and three norms
    with enable_moe_block; the per-layer-input gate, projection and norm with PLE."""
    inter = c.int("intermediate_size") * (2 if group["kind"] == "shared_kv" and c.get("use_double_wide_mlp") else 1)
    total = _attention_params(c, group, h) + 3 * h * inter + 4 * h + 1
    if c.get("enable_moe_block"):
        experts = c.int("num_experts")
        total += experts * 3 * h * c.int("moe_intermediate_size") + experts + h * experts + h + 3 * h
    ple = c.int("hidden_size_per_layer_input", default=0)
    return total + (2 * h * ple + h if ple else 0)


def params(c: Config, groups: list[dict]) -> int:
    """The language model's parameters (Gemma4Model): embeddings (the LM head tied or not), the
    per-layer embedding table and its projection, every layer, the final norm."""
    h, n = c.int("hidden_size"), sum(g["count"] for g in groups)
    embeddings = c.int("vocab_size") * h * (1 if c.get("tie_word_embeddings", default=True) else 2)
    ple = c.int("hidden_size_per_layer_input", default=0)
    per_layer = (c.int("vocab_size_per_layer_input", "vocab_size") + h) * ple * n + ple if ple else 0
    return embeddings + per_layer + sum(g["count"] * _layer_params(c, g, h) for g in groups) + h


ARCHITECTURE = Architecture(
    model_types=("gemma4", "gemma4_text"),
    layer_groups=layer_groups,
    engine_layout="vllm/model_executor/models/gemma4.py Gemma4DecoderLayer, Gemma4Attention "
                  "(kv_sharing_target_layer_name); v1/worker/gpu_model_runner.py get_kv_cache_spec",
    params=params,
)
