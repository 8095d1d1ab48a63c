"""MiMo-V2-Flash (model_type mimo_v2_flash): full-attention layers beside sliding-window ones, each with
KV heads and K and V head sizes of their own (K 192, V 128), the windowed layers with attention sinks,
and a mixture of experts in the layers moe_layer_freq marks. As vLLM lays it out
(model_executor/models/mimo_v2.py, 0.34: MiMoV2FlashDecoderLayer, MiMoV2Attention)."""

from __future__ import annotations

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config


def _flags(c: Config, key: str, n: int) -> list[int]:
    """A per-layer list of 0s and 1s, one a layer (hybrid_layer_pattern, moe_layer_freq)."""
    flags = c.get(key)
    if not (isinstance(flags, list) and len(flags) == n and all(type(x) is int and x in (0, 1) for x in flags)):
        raise SpecError(f"{c.where}: {key} must be a list of {n} entries, 0 or 1, one a layer; fix the config")
    return flags


def _attention(c: Config, kind: str, count: int, prefix: str, **extra) -> dict:
    """One kind's layers from its own keys (swa_* for the windowed ones): KV heads, K's head size and
    V's where it differs (MiMoV2Attention: head_dim, v_head_dim; vLLM 0.34 passes head_size_v to
    Attention, so the cache holds kv_heads x (head_dim + v_head_dim) a token)."""
    head_dim = c.int(f"{prefix}head_dim")
    v_dim = c.get(f"{prefix}v_head_dim")
    v = {"v_head_dim": c.int(f"{prefix}v_head_dim")} if v_dim is not None and v_dim != head_dim else {}
    return {"kind": kind, "count": count, "num_kv_heads": c.int(f"{prefix}num_key_value_heads"),
            "head_dim": head_dim, **v, **extra}


def layer_groups(c: Config, n: int) -> list[dict]:
    """hybrid_layer_pattern: 1 a sliding-window layer (is_compressed_softmax_layer: swa_* heads, window
    sliding_window_size, sinks where add_swa_attention_sink_bias), 0 a full one (num_key_value_heads,
    head_dim, v_head_dim; vLLM clears cache_config.sliding_window for it)."""
    pattern = _flags(c, "hybrid_layer_pattern", n)
    sinks = {"sinks": True} if c.get("add_swa_attention_sink_bias") is True else {}
    sliding = _attention(c, "sliding", sum(pattern), "swa_", window=c.int("sliding_window_size"), **sinks)
    full = _attention(c, "full", n - sum(pattern), "")
    return [g for g in (full, sliding) if g["count"]]


def _attention_params(c: Config, group: dict, heads: int, h: int) -> int:
    """q_proj, k_proj over head_dim, v_proj and o_proj over V's head size, and a sink logit a head."""
    k, v = group["head_dim"], group.get("v_head_dim", group["head_dim"])
    sinks = heads if group.get("sinks") else 0
    return h * heads * k + h * group["num_kv_heads"] * (k + v) + heads * v * h + sinks


def params(c: Config, groups: list[dict]) -> int:
    """Embeddings (and an untied lm_head), attention per kind, the dense MLP where moe_layer_freq is 0
    (MiMoV2MLP, gated) and otherwise 256 routed experts with a router and its correction bias
    (MiMoV2MoE; no shared expert), two norms a layer and the final one. The MTP layers are not counted."""
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    n = sum(g["count"] for g in groups)
    heads = {"full": c.int("num_attention_heads"), "sliding": c.int("swa_num_attention_heads")}
    attention = sum(g["count"] * _attention_params(c, g, heads[g["kind"]], h) for g in groups)
    moe = sum(_flags(c, "moe_layer_freq", n))
    experts = c.int("n_routed_experts")
    moe_layer = experts * 3 * h * c.int("moe_intermediate_size") + h * experts + experts
    mlp = (n - moe) * 3 * h * c.int("intermediate_size") + moe * moe_layer
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2)
    return embeddings + attention + mlp + (2 * n + 1) * h


ARCHITECTURE = Architecture(
    model_types=("mimo_v2_flash",), layer_groups=layer_groups, params=params,
    engine_layout="vllm/model_executor/models/mimo_v2.py (0.34) MiMoV2FlashDecoderLayer, MiMoV2Attention; "
                  "vllm/v1/kv_cache_interface.py AttentionSpec (head_size_v)")
