"""The modelled architecture closest to one kvplan cannot describe, for the refusal to name.

A config is matched first by what it says it caches, from the most specific layout to the plainest
(an MLA latent, a linear-attention or SSM state beside attention, sliding or chunked windows,
experts), then, where it names none of these, by its model_type's name among those kvplan reads (a
newer release of a family it knows: "qwen4" -> "qwen3"). The answer is advice for writing a spec by
hand, never a guess kvplan sizes with.
"""

from __future__ import annotations

import difflib

# (a config key or test, the model_type that models it, what they share), most specific first
_LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("kv_lora_rank", "deepseek_v3", "an MLA latent (kv_lora_rank)"),
    ("linear_num_value_heads", "qwen3_next", "linear-attention layers beside full attention"),
    ("linear_attn_config", "qwen3_next", "linear-attention layers beside full attention"),
    ("attn_type_list", "qwen3_next", "linear-attention layers beside full attention"),
    ("hybrid_override_pattern", "nemotron_h", "Mamba-2 layers beside attention"),
    ("mamba_d_state", "nemotron_h", "Mamba-2 layers beside attention"),
    ("ssm_state_size", "nemotron_h", "Mamba-2 layers beside attention"),
    ("layer_types", "gemma3", "sliding-window layers beside global ones"),
    ("hybrid_layer_pattern", "gemma3", "sliding-window layers beside global ones"),
    ("attention_chunk_size", "llama4", "chunked local attention"),
    ("index_head_dim", "deepseek_v32", "a sparse-attention indexer"),
    ("q_lora_rank", "deepseek_v32", "DeepSeek's low-rank query projection"),
    ("sliding_window", "mistral", "sliding-window attention"),
    ("num_local_experts", "mixtral", "a mixture of experts"),
    ("n_routed_experts", "deepseek_v3", "a mixture of experts"),
    ("num_experts", "qwen3_moe", "a mixture of experts"),
    ("block_configs", "llama", "Llama layers configured one by one"),
)
_PLAIN = ("llama", "full attention with grouped KV heads")


def closest_architecture(model_type: str, config: dict, known: tuple[str, ...]) -> tuple[str, str]:
    """(the model_type kvplan reads that is closest to this config, why) from the names in `known`."""
    for key, closest, why in _LAYOUTS:
        if config.get(key) and closest in known:
            return closest, f"{why}, as this config's {key}"
    by_name = difflib.get_close_matches(model_type.lower(), known, n=1, cutoff=0.75)
    if by_name:
        return by_name[0], "the nearest name"
    return _PLAIN
