"""Kimi-Linear (model_type kimi_linear): Kimi Delta Attention (KDA) linear-attention layers beside MLA
full-attention layers, as vLLM builds them.

Layers (vllm/model_executor/models/kimi_linear.py KimiDecoderLayer, 0.19; vllm/models/kimi_k3 from 0.34):
layer i is KDA when i + 1 is in linear_attn_config.kda_layers (KimiLinearConfig.is_kda_layer, 1-based),
else KimiMLAAttention, which caches an MLA latent of kv_lora_rank + qk_rope_head_dim per token (its RoPE
dims are kept though mla_use_nope leaves them unrotated).

A KDA layer's state per request (MambaStateShapeCalculator.kda_state_shape, mamba_utils.py):
conv states for q, k and v, (num_heads x head_dim) / TP x (short_conv_kernel_size - 1) each (0.19 keeps
three tensors, 0.34 one of 3 x num_heads x head_dim channels: the same elements), and a recurrent state of
num_heads / TP x head_dim x head_dim. That is Gated DeltaNet's formula with key and value heads both
num_heads of head_dim (gated_delta_net_state_shape: conv 2 x k_heads x k_dim + v_heads x v_dim), so
the layers are the ``gdn`` kind. The dtypes differ from Gated DeltaNet's: MambaStateDtypeCalculator.
kda_state_dtype keeps the conv states in the model's dtype and the recurrent state in float32 (0.19
always; 0.34 for mamba_ssm_cache_dtype auto), hence ssm_dtype fp32.
"""

from __future__ import annotations

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config
from kvplan.specs.params import _attn_params, _mlp_params, _moe_layer_count, moe_block


def _linear_config(c: Config) -> Config:
    linear = c.get("linear_attn_config")
    if not isinstance(linear, dict) or not isinstance(linear.get("kda_layers"), list):
        raise SpecError(f"{c.where}: a kimi_linear config needs linear_attn_config with kda_layers (1-based), "
                        "num_heads, head_dim and short_conv_kernel_size; fix the config")
    return Config(linear, f"{c.where} linear_attn_config")


def _kda_count(linear: Config, n: int) -> int:
    layers = linear.get("kda_layers")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= n for i in layers) \
            or len(set(layers)) != len(layers):
        raise SpecError(f"{linear.where}: kda_layers must list distinct 1-based layer numbers up to "
                        f"num_hidden_layers {n}; fix the config")
    return len(layers)


def layer_groups(c: Config, n: int) -> list[dict]:
    linear = _linear_config(c)
    kda = _kda_count(linear, n)
    heads, head_dim = linear.int("num_heads"), linear.int("head_dim")
    mla = {"kind": "mla", "count": n - kda, "kv_lora_rank": c.int("kv_lora_rank"),
           "qk_rope_head_dim": c.int("qk_rope_head_dim"), "num_heads": c.int("num_attention_heads"),
           "qk_nope_head_dim": c.int("qk_nope_head_dim"), "v_head_dim": c.int("v_head_dim"),
           **({"q_lora_rank": c.int("q_lora_rank")} if c.get("q_lora_rank") else {})}
    gdn = {"kind": "gdn", "count": kda, "num_k_heads": heads, "num_v_heads": heads, "head_k_dim": head_dim,
           "head_v_dim": head_dim, "conv_kernel": linear.int("short_conv_kernel_size", default=4), "ssm_dtype": "fp32"}
    return [g for g in (mla, gdn) if g["count"]]


def _kda_params(group: dict, h: int) -> int:
    """One KDA layer (the checkpoint's tensors): q/k/v and o projections, the low-rank forget (f_a, f_b)
    and output (g_a, g_b) gates, the beta projection, the q/k/v short convolutions, A_log, dt_bias and
    the gated output norm."""
    heads, dim, kernel = group["num_v_heads"], group["head_v_dim"], group["conv_kernel"]
    proj = heads * dim
    return 4 * h * proj + 2 * (h * dim + dim * proj) + h * heads + 3 * proj * kernel + heads + proj + dim


def params(c: Config, groups: list[dict]) -> int:
    """Embeddings and head, KDA and MLA layers, the dense MLP of the first first_k_dense_replace
    layers, routed and shared experts with the router, two norms a layer and the final norm (the
    routers' score-correction biases not counted). Kimi-Linear-48B-A3B: 49,122,675,072, the 49,122,681,728
    its safetensors hold less those biases, 26 MoE layers x 256 (tests/test_kimi_linear.py)."""
    h, vocab, n = c.int("hidden_size"), c.int("vocab_size"), sum(g["count"] for g in groups)
    attention = sum(g["count"] * (_kda_params(g, h) if g["kind"] == "gdn" else _attn_params(c, g, h)) for g in groups)
    moe = moe_block(c)
    dense_mlp = _mlp_params(h, c.int("intermediate_size"), gated=True)
    if moe is None:
        mlp = n * dense_mlp
    else:
        expert = _mlp_params(h, moe["expert_intermediate_size"], gated=True)
        layers = _moe_layer_count(c, n)
        mlp = (n - layers) * dense_mlp + layers * ((moe["num_experts"] + moe["shared_experts"]) * expert
                                                   + h * moe["num_experts"])
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2)
    return embeddings + attention + mlp + (2 * n + 1) * h


ARCHITECTURE = Architecture(
    model_types=("kimi_linear",),
    layer_groups=layer_groups,
    engine_layout="vLLM 0.19 vllm/model_executor/models/kimi_linear.py KimiDecoderLayer; "
                  "vllm/model_executor/layers/mamba/mamba_utils.py MambaStateShapeCalculator.kda_state_shape, "
                  "MambaStateDtypeCalculator.kda_state_dtype",
    params=params,
)
