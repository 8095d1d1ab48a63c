"""Reading a Hugging Face config.json as the engines do: typed access with the file named in every
complaint, nested language-model configs, the config classes' defaults, and the layer groups
(attention kind, windows, chunks, latents, SSM and linear-attention states) each family describes."""

from __future__ import annotations

import json
from pathlib import Path

from kvplan.errors import SpecError
from kvplan.specs.defaults import with_class_defaults
from kvplan.specs.jsonio import loads
from kvplan.specs.yamlio import read_text

SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
             "gemma2", "gemma3", "gemma3_text", "deepseek_v2", "deepseek_v3", "deepseek_v32", "phi3", "falcon",
             "opt", "gpt_oss", "jamba", "llama4", "llama4_text", "qwen3_next", "nemotron_h", "granite",
             "olmo2", "cohere", "cohere2", "glm4_moe", "ministral", "mistral3", "qwen2_5_vl", "qwen2_vl",
             "kimi_k2", "glm4_moe_lite", "ministral3", "exaone4", "qwen3_vl", "qwen3_vl_moe", "qwen3_5",
             "qwen3_5_moe", "kimi_k25", "minimax_m2", "exaone4_5", "olmo3", "mimo", "phi", "internlm2", "gptj")
# Families that cache an MLA latent (DeepSeek's architecture, and the models built on it; glm_moe_dsa
# is read by kvplan.specs.archs.glm_dsa, which starts from this group)
MLA_TYPES = ("deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "kimi_k25", "glm4_moe_lite", "glm_moe_dsa")


def config_path(path: Path) -> Path:
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise SpecError(f"{path}: no config.json found; pass a config.json or a model folder holding one")
    return config


def load_config(config: Path) -> dict:
    try:
        data = loads(read_text(config, "config.json"), config)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{config}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{config}: expected a JSON object")
    return data


def check_config(data: dict, where: Path | str) -> None:
    """check_types over a config and the language model's config nested in it: every config, local,
    cached or from the Hub, is checked here before anything reads it."""
    for part in (data, *(data[key] for key in NESTED if isinstance(data.get(key), dict))):
        check_types(part, where)


# The keys kvplan reads, by the kind of value they must hold; checked once, where the file is read,
# so that no later arithmetic sees a string, a bool or a zero head count (a ZeroDivisionError, or a
# 3-layer model from no_rope_layers: "abc").
POSITIVE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                 "vocab_size", "n_layer", "n_head", "n_embd", "d_model", "decoder_sparse_step",
                 "interleave_moe_layer_step", "attn_layer_period", "expert_layer_period", "full_attention_interval")  # the periods divide a layer index: 0 was a ZeroDivisionError
COUNT_KEYS = ("intermediate_size", "max_position_embeddings", "sliding_window", "attention_chunk_size",
              "n_routed_experts", "n_shared_experts", "num_experts", "num_experts_per_tok", "num_local_experts",
              "moe_intermediate_size", "shared_expert_intermediate_size", "q_lora_rank", "kv_lora_rank",
              "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "index_head_dim", "linear_num_value_heads",
              "linear_num_key_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim",
              "mamba_d_state", "mamba_d_conv", "mamba_expand", "ssm_state_size", "conv_kernel", "n_groups",
              "mamba_num_heads", "mamba_head_dim", "first_k_dense_replace", "ffn_dim",
              "num_nextn_predict_layers", "mtp_num_hidden_layers", "attention_head_dim", "attn_layer_offset", "expert_layer_offset",
              "max_window_layers", "global_head_dim", "num_global_key_value_heads", "num_kv_shared_layers",
              "top_k_experts", "hidden_size_per_layer_input", "vocab_size_per_layer_input")
LIST_KEYS = {"architectures": str, "layer_types": str, "no_rope_layers": int, "layers_block_type": str,
             "mlp_only_layers": int}
MAX_CONFIG_INT = 2**40
STRING_KEYS = ("model_type",)
# The values of torch_dtype (transformers < 4.56) and dtype (since): torch's dtype names
DTYPE_KEYS = ("torch_dtype", "dtype")
TORCH_DTYPES = ("float32", "float", "float64", "double", "float16", "half", "bfloat16", "int8", "uint8", "int16",
                "short", "int32", "int", "int64", "long", "bool", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                "float8_e5m2fnuz", "auto")


def check_types(cfg: dict, where: Path | str) -> None:
    """Every key kvplan reads holds what it must, or one SpecError naming the file, key and value."""
    for key in (*POSITIVE_KEYS, *COUNT_KEYS):
        value, least = cfg.get(key), 1 if key in POSITIVE_KEYS else 0
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_CONFIG_INT:
            raise SpecError(f"{where}: {key}: expected a whole number of at least {least}, got {value!r}; "
                            "fix the config")
    for key in STRING_KEYS:
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise SpecError(f"{where}: {key}: expected a string such as \"llama\", got {str(cfg[key])[:40]}; "
                            "fix the config")
    for key in DTYPE_KEYS:
        value = cfg.get(key)
        if value is not None and (not isinstance(value, str) or value.removeprefix("torch.") not in TORCH_DTYPES):
            raise SpecError(f"{where}: {key}: {repr(value)[:40]} is not a dtype; write one of bfloat16, float16 "
                            "or float32 (as torch names them), or remove it")
    for key, kind in LIST_KEYS.items():
        value = cfg.get(key)
        if value is not None and not (isinstance(value, list) and all(
                isinstance(item, kind) and not isinstance(item, bool) for item in value)):
            raise SpecError(f"{where}: {key}: expected a list of {kind.__name__}s, got {str(value)[:40]!r}; "
                            "fix the config")


# Where a multimodal config keeps its language model, and the text model_type a wrapper implies
# when the nested config does not say.
NESTED = ("text_config", "llm_config", "language_config")
TEXT_TYPES = {"gemma3": "gemma3_text", "llama4": "llama4_text", "mistral3": "mistral", "qwen2_5_vl": "qwen2",
              "qwen2_vl": "qwen2", "mllama": "mllama_text_model", "qwen3_vl": "qwen3", "qwen3_vl_moe": "qwen3_moe",
              "qwen3_5": "qwen3_5_text", "qwen3_5_moe": "qwen3_5_moe_text", "exaone4_5": "exaone4_5_text",
              "gemma4": "gemma4_text"}


def text_config(cfg: dict) -> dict:
    """The language model's config, with every key its class defaults where the file leaves it out.

    Multimodal configs (Gemma-3, Llama-4, Mistral-3, Qwen-VL, InternVL) nest it under text_config or
    llm_config; the KV cache is the language model's, the other towers count only as weights."""
    nested = next((cfg[key] for key in NESTED if isinstance(cfg.get(key), dict)), None)
    if nested is None:
        return with_class_defaults(cfg, cfg.get("model_type"))
    outer_type = cfg.get("model_type")
    text_type = nested.get("model_type") or TEXT_TYPES.get(outer_type or "", outer_type)
    return {**cfg, **with_class_defaults(nested, text_type), "model_type": text_type}


def _get(cfg: dict, *keys: str, default=None):
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


class Config:
    """Typed access to one config, with the file named in every complaint."""

    def __init__(self, cfg: dict, where: Path | str):
        self.cfg, self.where = cfg, where

    def int(self, *keys: str, default: int | None = None) -> int:
        value = _get(self.cfg, *keys, default=default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpecError(f"{self.where}: needs an integer {' or '.join(keys)}; the config has "
                            f"{value!r}")
        return value

    def get(self, *keys: str, default=None):
        return _get(self.cfg, *keys, default=default)


# --- layers ------------------------------------------------------------------------------------

def _attention(c: Config, kind: str, count: int, **extra) -> dict:
    heads = c.int("num_attention_heads", "n_head")
    kv = 1 if c.get("multi_query") and not c.get("new_decoder_architecture") else \
        c.int("num_key_value_heads", "num_kv_heads", default=heads)
    head_dim = c.get("head_dim", "attention_head_dim") or c.int("hidden_size", "d_model") // heads
    return {"kind": kind, "count": count, "num_kv_heads": kv, "head_dim": head_dim, **extra}


def _split(flags: list[bool]) -> tuple[int, int]:
    return sum(flags), len(flags) - sum(flags)


def _local_flags(c: Config, n: int) -> list[bool] | None:
    """Which layers are windowed, from whichever key this family uses; None: all full."""
    types = c.get("layer_types")
    if isinstance(types, list):
        return [t in ("sliding_attention", "local_attention") for t in types]
    model_type = c.get("model_type")
    if model_type == "gemma2":  # even layers local (transformers' Gemma2 convention)
        return [i % 2 == 0 for i in range(n)]
    if model_type in ("gemma3", "gemma3_text", "cohere2"):  # every period-th layer global
        period = c.int("sliding_window_pattern", default=6 if model_type != "cohere2" else 4)
        if period < 1:  # not checked with the others: EXAONE-4 writes it as a string ("LLLG")
            raise SpecError(f"{c.where}: sliding_window_pattern must be at least 1, not {period}; fix the config")
        return [(i + 1) % period != 0 for i in range(n)]
    if model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen2_5_vl", "qwen2_vl", "mimo"):
        if not c.get("use_sliding_window"):
            return None
        return [i >= c.int("max_window_layers", default=0) for i in range(n)]
    return [True] * n if c.get("sliding_window") else None


BLOCK_CHARS = {"mamba": "M", "attention": "*", "full_attention": "*", "moe": "E", "mlp": "-"}


def nemotron_pattern(c: Config) -> str | None:
    """Nemotron-H's layer string: hybrid_override_pattern, or built from layers_block_type."""
    blocks = c.get("layers_block_type")
    if c.get("hybrid_override_pattern") is None and isinstance(blocks, list):
        return "".join(BLOCK_CHARS.get(str(b), "?") for b in blocks)
    return c.get("hybrid_override_pattern")


def layer_count(c: Config) -> int:
    """The config's decoder layers (Nemotron-H's class derives them from its block list)."""
    pattern = nemotron_pattern(c)
    if c.get("model_type") == "nemotron_h" and c.get("num_hidden_layers") is None and pattern:
        return len(pattern)
    return c.int("num_hidden_layers", "n_layer", "num_layers")


def layer_groups(c: Config) -> list[dict]:
    n = layer_count(c)
    model_type = c.get("model_type")
    if model_type in MLA_TYPES:
        indexer = ({"index_head_dim": c.int("index_head_dim"), "index_n_heads": c.int("index_n_heads")}
                   if c.get("index_head_dim") else {})
        q_rank = {"q_lora_rank": c.int("q_lora_rank")} if c.get("q_lora_rank") else {}
        return [{"kind": "mla", "count": n, "kv_lora_rank": c.int("kv_lora_rank"),
                 "qk_rope_head_dim": c.int("qk_rope_head_dim"), "num_heads": c.int("num_attention_heads"),
                 "qk_nope_head_dim": c.int("qk_nope_head_dim"), "v_head_dim": c.int("v_head_dim"), **q_rank,
                 **indexer}]
    if model_type == "jamba":
        period, offset = c.int("attn_layer_period"), c.int("attn_layer_offset")
        if offset >= period:  # no layer would hold attention
            raise SpecError(f"{c.where}: attn_layer_offset {offset} must be less than attn_layer_period {period}; "
                            "fix the config")
        attn, mamba = _split([i % period == offset for i in range(n)])
        return [_attention(c, "full", attn),
                {"kind": "mamba", "count": mamba, "d_inner": c.int("mamba_expand") * c.int("hidden_size"),
                 "d_state": c.int("mamba_d_state"), "d_conv": c.int("mamba_d_conv")}]
    if model_type == "qwen3_next" or c.get("linear_num_value_heads"):  # Gated DeltaNet hybrids (Qwen3-Next, 3.5)
        return _qwen3_next(c, n)
    if model_type == "nemotron_h":
        return _nemotron_h(c, n)
    if model_type in ("llama4", "llama4_text") and c.get("attention_chunk_size"):
        rope = c.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(n)]
        chunked, full = _split([bool(x) for x in rope])
        return [g for g in (_attention(c, "chunked", chunked, chunk=c.int("attention_chunk_size")),
                            _attention(c, "full", full)) if g["count"]]
    local = _local_flags(c, n)
    if local is None or not any(local):
        return [_attention(c, "full", n)]
    windowed, full = _split(local)
    sinks = {"sinks": True} if model_type == "gpt_oss" else {}  # learned per-head sink logits
    groups = [_attention(c, "sliding", windowed, window=c.int("sliding_window"), **sinks), _attention(c, "full", full)]
    return [g for g in groups if g["count"]]


def _qwen3_next(c: Config, n: int) -> list[dict]:
    """Gated DeltaNet layers with a full-attention layer every full_attention_interval (default 4).
    A Qwen3.5 config's mamba_ssm_dtype sets the recurrent state's dtype: vLLM takes it for
    mamba_ssm_cache_dtype 'auto' (model_executor/models/config.py,
    Qwen3_5ForConditionalGenerationConfig.verify_and_update_config, 0.19 and 0.34)."""
    types = c.get("layer_types")
    if not isinstance(types, list):
        interval = c.int("full_attention_interval", default=4)
        types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n)]
    full, linear = _split([t == "full_attention" for t in types])
    ssm = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(str(c.get("mamba_ssm_dtype")))
    gdn = {"kind": "gdn", "count": linear, "num_k_heads": c.int("linear_num_key_heads"),
           "num_v_heads": c.int("linear_num_value_heads"), "head_k_dim": c.int("linear_key_head_dim"),
           "head_v_dim": c.int("linear_value_head_dim"), "conv_kernel": c.int("linear_conv_kernel_dim", default=4),
           **({"ssm_dtype": ssm} if ssm else {})}
    return [g for g in (_attention(c, "full", full), gdn) if g["count"]]


def _nemotron_h(c: Config, n: int) -> list[dict]:
    """hybrid_override_pattern, one character a layer: M Mamba-2, * attention, - (or E) an MLP block."""
    pattern = nemotron_pattern(c)
    if not isinstance(pattern, str) or len(pattern) != n or set(pattern) - set("M*-E"):
        raise SpecError(f"{c.where}: hybrid_override_pattern must be {n} characters of M, *, - or E")
    heads, head_dim = c.int("mamba_num_heads"), c.int("mamba_head_dim")
    ssm = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(str(c.get("mamba_ssm_cache_dtype")))
    mamba = {"kind": "mamba", "count": pattern.count("M"), "d_inner": heads * head_dim,
             "d_state": c.int("ssm_state_size"), "d_conv": c.int("conv_kernel", default=4),
             "n_groups": c.int("n_groups", default=1), "num_heads": heads, **({"ssm_dtype": ssm} if ssm else {})}
    return [g for g in (mamba, _attention(c, "full", pattern.count("*")),
                        {"kind": "mlp", "count": pattern.count("-") + pattern.count("E")}) if g["count"]]
