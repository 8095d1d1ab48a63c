"""What transformers' config classes assume when a config.json leaves a key out, per model_type.

A config.json only holds what differs from its class's defaults, so reading it as the engines do
means filling absent keys from the class (never keys the file sets, even to null). Each entry
names its source: huggingface/transformers src/transformers/models/<family>/configuration_<family>.py
(read at the commits recorded in tests/fixtures/class_defaults.md). Only the keys that shape the KV
cache, the layer pattern or the parameter count are kept. Where a class derives a key instead
(head_dim = hidden_size // num_attention_heads for Llama; num_key_value_heads = the attention heads
when null), kvplan.specs.hfconfig applies the rule.
"""

from __future__ import annotations

_LLAMA = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
          "num_attention_heads": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False}
_QWEN = {"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
         "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 32768,
         "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28}

CLASS_DEFAULTS: dict[str, dict] = {
    "llama": _LLAMA,
    "granite": _LLAMA,
    "olmo2": {**_LLAMA, "vocab_size": 50304},
    "mistral": {**_LLAMA, "intermediate_size": 14336, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                "sliding_window": 4096},  # every layer windowed unless the file says null
    "ministral": {**_LLAMA, "intermediate_size": 14336, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                  "sliding_window": 4096},
    "mixtral": {**_LLAMA, "intermediate_size": 14336, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                "sliding_window": None, "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen2": _QWEN,
    "qwen2_moe": {**_QWEN, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
                  "num_attention_heads": 16, "num_key_value_heads": 16},
    "qwen3": {**_QWEN, "head_dim": 128},
    "qwen3_moe": {**_QWEN, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 24,
                  "num_key_value_heads": 4, "moe_intermediate_size": 768, "num_experts": 128,
                  "num_experts_per_tok": 8, "decoder_sparse_step": 1},
    "qwen3_next": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 48,
                   "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
                   "max_position_embeddings": 32768, "tie_word_embeddings": False, "full_attention_interval": 4,
                   "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
                   "linear_num_key_heads": 16, "linear_num_value_heads": 32},
    "gemma": {"vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
              "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256, "max_position_embeddings": 8192,
              "tie_word_embeddings": True},
    "gemma2": {"vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
               "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 8192,
               "tie_word_embeddings": True, "sliding_window": 4096},
    "gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "max_position_embeddings": 131072, "tie_word_embeddings": True, "sliding_window": 4096,
                    "sliding_window_pattern": 6},
    "deepseek_v2": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                    "num_attention_heads": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False,
                    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                    "v_head_dim": 128, "first_k_dense_replace": 0, "n_shared_experts": 2, "moe_intermediate_size": 1407},
    "deepseek_v3": {"vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "num_hidden_layers": 61,
                    "num_attention_heads": 128, "max_position_embeddings": 4096, "tie_word_embeddings": False,
                    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                    "v_head_dim": 128, "moe_intermediate_size": 2048, "num_experts_per_tok": 8,
                    "first_k_dense_replace": 3, "n_routed_experts": 256, "n_shared_experts": 1},
    "phi3": {"vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
             "num_attention_heads": 32, "max_position_embeddings": 4096, "tie_word_embeddings": False,
             "sliding_window": None},
    "falcon": {"vocab_size": 65024, "hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71,
               "max_position_embeddings": 2048, "multi_query": True, "new_decoder_architecture": False,
               "tie_word_embeddings": True},
    "gptj": {"vocab_size": 50400, "n_positions": 2048, "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
             "n_inner": None, "tie_word_embeddings": False},
    "opt": {"vocab_size": 50272, "hidden_size": 768, "ffn_dim": 3072, "num_hidden_layers": 12,
            "num_attention_heads": 12, "max_position_embeddings": 2048, "tie_word_embeddings": True},
    "gpt_oss": {"vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 36,
                "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
                "max_position_embeddings": 131072, "tie_word_embeddings": False, "sliding_window": 128,
                "num_local_experts": 128, "num_experts_per_tok": 4},
    "jamba": {"vocab_size": 65536, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 262144,
              "tie_word_embeddings": False, "attn_layer_period": 8, "attn_layer_offset": 4, "expert_layer_period": 2,
              "expert_layer_offset": 1, "num_experts": 16, "num_experts_per_tok": 2, "mamba_d_state": 16,
              "mamba_d_conv": 4, "mamba_expand": 2},
    "llama4_text": {"vocab_size": 202048, "hidden_size": 5120, "intermediate_size": 8192, "num_hidden_layers": 48,
                    "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
                    "max_position_embeddings": 131072, "tie_word_embeddings": False, "attention_chunk_size": 8192},
    "nemotron_h": {"vocab_size": 131072, "hidden_size": 4096, "intermediate_size": 21504, "num_attention_heads": 32,
                   "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 4096,
                   "tie_word_embeddings": False},
    "cohere": {"vocab_size": 256000, "hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40,
               "num_attention_heads": 64, "max_position_embeddings": 8192, "tie_word_embeddings": True},
    "cohere2": {"vocab_size": 256000, "hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40,
                "num_attention_heads": 64, "max_position_embeddings": 8192, "tie_word_embeddings": True,
                "sliding_window": 4096, "sliding_window_pattern": 4},
    "glm4_moe": {"vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 10944, "num_hidden_layers": 46,
                 "num_attention_heads": 96, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                 "tie_word_embeddings": False, "moe_intermediate_size": 1408, "n_routed_experts": 128,
                 "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 1},
}
# DeepSeek-V3.2: V3's shapes, a longer default context, and the sparse-attention indexer's keys
CLASS_DEFAULTS["deepseek_v32"] = {**CLASS_DEFAULTS["deepseek_v3"], "max_position_embeddings": 163840,
                                  "index_head_dim": 128, "index_n_heads": 64, "index_topk": 2048}
CLASS_DEFAULTS["kimi_k2"] = CLASS_DEFAULTS["deepseek_v3"]  # Kimi-K2 ships DeepSeek-V3's architecture
CLASS_DEFAULTS["gemma3"] = CLASS_DEFAULTS["gemma3_text"]  # a gemma3 config's text_config is gemma3_text
CLASS_DEFAULTS["llama4"] = CLASS_DEFAULTS["llama4_text"]


# A config class's attribute_map: the standard name transformers reads for a key the family names its own
# way (configuration_gptj.py GPTJConfig.attribute_map)
ATTRIBUTE_MAPS: dict[str, dict[str, str]] = {
    "gptj": {"max_position_embeddings": "n_positions", "hidden_size": "n_embd", "num_attention_heads": "n_head",
             "num_hidden_layers": "n_layer"},
}


def with_class_defaults(cfg: dict, model_type: str | None) -> dict:
    """The config with every key its class defaults, where the file leaves it out (absent, not null), and
    each of its own names also under the standard one its class maps it to."""
    full = {**CLASS_DEFAULTS.get(model_type or "", {}), **cfg}
    aliases = {standard: full[own] for standard, own in ATTRIBUTE_MAPS.get(model_type or "", {}).items()
               if standard not in full and own in full}
    return {**full, **aliases}
