"""The parameters of one named linear module of a decoder, from its config's shapes: what a
mixed-precision quantization_config (modelopt MIXED_PRECISION, kvplan.specs.quantization) is
weighted by. The projections of a gated MLP, of attention (a gated output doubles q_proj: Qwen3.5's
attn_output_gate) and of Qwen3.5's Gated DeltaNet (in_proj_qkv, in_proj_z, out_proj, as
transformers' Qwen3_5GatedDeltaNet names them), and the LM head. An unknown module is refused."""

from __future__ import annotations

import re

from kvplan.errors import SpecError
from kvplan.specs.hfconfig import Config


def _attention(c: Config, h: int) -> dict[str, int]:
    heads, kv = c.int("num_attention_heads"), c.int("num_key_value_heads")
    head_dim = c.int("head_dim", default=h // heads)
    gate = 2 if c.get("attn_output_gate") else 1
    return {"self_attn.q_proj": h * heads * head_dim * gate, "self_attn.k_proj": h * kv * head_dim,
            "self_attn.v_proj": h * kv * head_dim, "self_attn.o_proj": heads * head_dim * h}


def _linear_attention(c: Config, h: int) -> dict[str, int]:
    if not c.get("linear_num_value_heads"):
        return {}
    k = c.int("linear_num_key_heads") * c.int("linear_key_head_dim")
    v = c.int("linear_num_value_heads") * c.int("linear_value_head_dim")
    return {"linear_attn.in_proj_qkv": h * (2 * k + v), "linear_attn.in_proj_z": h * v,
            "linear_attn.out_proj": v * h}


def module_sizes(c: Config) -> dict[str, int]:
    """Parameters by module name, the layer index dropped (mlp.gate_proj, self_attn.q_proj, lm_head)."""
    h = c.int("hidden_size")
    mlp = h * c.int("intermediate_size")
    return {"mlp.gate_proj": mlp, "mlp.up_proj": mlp, "mlp.down_proj": mlp, "lm_head": c.int("vocab_size") * h,
            **_attention(c, h), **_linear_attention(c, h)}


def module_params(c: Config, name: str) -> int:
    """One module's parameters, by its checkpoint name (model.language_model.layers.3.mlp.up_proj)."""
    sizes = module_sizes(c)
    suffix = re.sub(r"^.*\.layers\.\d+\.", "", name)
    if suffix not in sizes:
        raise SpecError(f"{c.where}: cannot size the quantized module {name!r} from the config; pass the model "
                        "folder with its *.safetensors files")
    return sizes[suffix]
