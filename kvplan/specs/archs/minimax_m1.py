"""MiniMax-M1 (model_type minimax_m1; vLLM runs it, like MiniMax-Text-01, as MiniMaxText01ForCausalLM): lightning
(linear) attention layers, each a constant state per request, beside a full-attention layer every
eighth, and a mixture of experts in every layer. As vLLM 0.19 lays it out
(model_executor/models/minimax_text_01.py; the family was removed from vLLM in 0.23)."""

from __future__ import annotations

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config

LAYER_TYPES = {"linear_attention": 0, "full_attention": 1}


def attention_types(c: Config, n: int) -> list[int]:
    """One entry a layer, 0 lightning and 1 full, as MiniMaxText01Model reads them: attn_type_list
    (or decoder_attention_types), else the HF format's layer_types, else every layer full."""
    types = c.get("attn_type_list", "decoder_attention_types")
    if types is None and isinstance(c.get("layer_types"), list):
        types = [LAYER_TYPES.get(t, -1) for t in c.get("layer_types")]
    if types is None:
        return [1] * n
    if not (isinstance(types, list) and len(types) == n and all(type(t) is int and t in (0, 1) for t in types)):
        raise SpecError(f"{c.where}: attn_type_list must be {n} entries, 0 (lightning) or 1 (full attention), "
                        "one a layer; fix the config")
    return types


def _head_dim(c: Config) -> int:
    """MiniMaxText01DecoderLayer: head_dim, else hidden_size / num_attention_heads."""
    return c.int("head_dim", default=c.int("hidden_size") // c.int("num_attention_heads"))


def layer_groups(c: Config, n: int) -> list[dict]:
    """Lightning layers: the config's num_attention_heads and head_dim (get_mamba_state_shape_from_config);
    full layers: num_key_value_heads x head_dim (MiniMaxText01Attention; its sliding_window is not
    passed to Attention, so they keep every token)."""
    types = attention_types(c, n)
    head_dim = _head_dim(c)
    lightning = {"kind": "lightning", "count": types.count(0), "num_heads": c.int("num_attention_heads"),
                 "head_dim": head_dim}
    full = {"kind": "full", "count": types.count(1),
            "num_kv_heads": c.int("num_key_value_heads", default=c.int("num_attention_heads")), "head_dim": head_dim}
    return [g for g in (full, lightning) if g["count"]]


def _lightning_params(inner: int, h: int) -> int:
    """MiniMaxText01LinearAttention: qkv_proj (3 x inner), output_gate, out_proj, its RMSNorm over inner."""
    return 3 * h * inner + h * inner + inner * h + inner


def params(c: Config, groups: list[dict]) -> int:
    """Embeddings and the lm_head, the attention of each kind, num_local_experts gated experts and a
    router in every layer (MiniMaxText01MoE), a shared MLP where shared_intermediate_size > 0 (with its
    coefficient), two norms a layer and the final one."""
    h, vocab, heads = c.int("hidden_size"), c.int("vocab_size"), c.int("num_attention_heads")
    n = sum(g["count"] for g in groups)
    head_dim = _head_dim(c)
    inner = heads * head_dim  # hidden_inner_size (use_headxdim)
    attention = 0
    for g in groups:
        if g["kind"] == "lightning":
            attention += g["count"] * _lightning_params(inner, h)
        else:
            attention += g["count"] * (2 * h * inner + 2 * h * g["num_kv_heads"] * head_dim)
    experts = c.int("num_local_experts")
    moe = experts * 3 * h * c.int("intermediate_size") + h * experts
    shared = c.int("shared_intermediate_size", default=0)
    shared_mlp = 3 * h * shared + h if shared else 0
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2)
    return embeddings + attention + n * (moe + shared_mlp) + (2 * n + 1) * h


ARCHITECTURE = Architecture(
    model_types=("minimax_m1",), layer_groups=layer_groups, params=params,
    engine_layout="vllm/model_executor/models/minimax_text_01.py (0.19) MiniMaxText01Model; "
                  "vllm/model_executor/layers/mamba/mamba_utils.py "
                  "MambaStateShapeCalculator.linear_attention_state_shape")
