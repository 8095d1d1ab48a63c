"""Reading a Hugging Face config.json as the engines do: typed access with the file named in every
complaint, nested language-model configs, the config classes' defaults, and the layer groups
(attention kind, windows, chunks, latents, SSM and linear-attention states) each family describes."""

from __future__ import annotations

import json
from pathlib import Path

from kvplan.errors import SpecError
from kvplan.specs.yamlio import read_text

SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
             "gemma2", "gemma3", "gemma3_text", "deepseek_v2", "deepseek_v3", "phi3", "falcon",
             "opt", "gpt_oss", "jamba", "llama4", "llama4_text")


def config_path(path: Path) -> Path:
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise SpecError(f"{path}: no config.json found; pass a config.json or a model folder holding one")
    return config


def load_config(config: Path) -> dict:
    try:
        data = json.loads(read_text(config, "config.json"))
    except json.JSONDecodeError as exc:
        raise SpecError(f"{config}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{config}: expected a JSON object")
    return data


# What transformers' config classes assume when a published config.json leaves a key out.
_FAMILY_DEFAULTS = {
    "gemma": {"tie_word_embeddings": True},
    "gemma2": {"tie_word_embeddings": True},
    "gemma3_text": {"tie_word_embeddings": True, "vocab_size": 262_208,
                    "max_position_embeddings": 131_072, "sliding_window_pattern": 6},
    "falcon": {"tie_word_embeddings": True, "max_position_embeddings": 2048},
    "opt": {"tie_word_embeddings": True},
}


def text_config(cfg: dict) -> dict:
    """Multimodal configs (Gemma-3, Llama-4) nest the language model under text_config; keys the
    file leaves out take their config class's defaults."""
    text = cfg.get("text_config")
    merged = {**cfg, **text} if isinstance(text, dict) else dict(cfg)
    for family in (cfg.get("model_type"), merged.get("model_type")):
        for key, value in _FAMILY_DEFAULTS.get(family, {}).items():
            if merged.get(key) is None:
                merged[key] = value
    return merged


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
    head_dim = c.get("head_dim") or c.int("hidden_size", "d_model") // heads
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
    if model_type in ("gemma3", "gemma3_text"):
        period = c.int("sliding_window_pattern", default=6)
        return [(i + 1) % period != 0 for i in range(n)]
    if model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        if not c.get("use_sliding_window"):
            return None
        return [i >= c.int("max_window_layers", default=0) for i in range(n)]
    return [True] * n if c.get("sliding_window") else None


def layer_groups(c: Config) -> list[dict]:
    n = c.int("num_hidden_layers", "n_layer", "num_layers")
    model_type = c.get("model_type")
    if model_type in ("deepseek_v2", "deepseek_v3"):
        return [{"kind": "mla", "count": n, "kv_lora_rank": c.int("kv_lora_rank"),
                 "qk_rope_head_dim": c.int("qk_rope_head_dim"), "num_heads": c.int("num_attention_heads"),
                 "qk_nope_head_dim": c.int("qk_nope_head_dim"), "v_head_dim": c.int("v_head_dim")}]
    if model_type == "jamba":
        period, offset = c.int("attn_layer_period"), c.int("attn_layer_offset")
        attn, mamba = _split([i % period == offset for i in range(n)])
        return [_attention(c, "full", attn),
                {"kind": "mamba", "count": mamba, "d_inner": c.int("mamba_expand") * c.int("hidden_size"),
                 "d_state": c.int("mamba_d_state"), "d_conv": c.int("mamba_d_conv")}]
    if model_type in ("llama4", "llama4_text") and c.get("attention_chunk_size"):
        rope = c.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(n)]
        chunked, full = _split([bool(x) for x in rope])
        return [g for g in (_attention(c, "chunked", chunked, chunk=c.int("attention_chunk_size")),
                            _attention(c, "full", full)) if g["count"]]
    local = _local_flags(c, n)
    if local is None or not any(local):
        return [_attention(c, "full", n)]
    windowed, full = _split(local)
    groups = [_attention(c, "sliding", windowed, window=c.int("sliding_window")), _attention(c, "full", full)]
    return [g for g in groups if g["count"]]
