"""`kvplan import`: a local Hugging Face config.json (or model folder) to a ModelSpec, offline.

Layers come from the config's own keys (layer_types, sliding_window, attention_chunk_size,
kv_lora_rank, attn_layer_period, ...). Parameters come from the *.safetensors headers when the
folder has them (exact), else from the architecture (an estimate, said so in the notes).
An architecture whose cache we cannot describe is refused, never guessed.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kvplan.errors import SpecError
from kvplan.specs.model import ModelSpec
from kvplan.specs.yamlio import read_text

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8_e4m3fn": "fp8"}
_ST_DTYPES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F8_E4M3": "fp8"}
SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
             "gemma2", "gemma3", "gemma3_text", "deepseek_v2", "deepseek_v3", "phi3", "falcon",
             "opt", "gpt_oss", "jamba", "llama4", "llama4_text")


@dataclass(frozen=True)
class ImportResult:
    spec: ModelSpec
    notes: tuple[str, ...]


def _config_path(path: Path) -> Path:
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


def _text_config(cfg: dict) -> dict:
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


class _Config:
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

def _attention(c: _Config, kind: str, count: int, **extra) -> dict:
    heads = c.int("num_attention_heads", "n_head")
    kv = 1 if c.get("multi_query") and not c.get("new_decoder_architecture") else \
        c.int("num_key_value_heads", "num_kv_heads", default=heads)
    head_dim = c.get("head_dim") or c.int("hidden_size", "d_model") // heads
    return {"kind": kind, "count": count, "num_kv_heads": kv, "head_dim": head_dim, **extra}


def _split(flags: list[bool]) -> tuple[int, int]:
    return sum(flags), len(flags) - sum(flags)


def _local_flags(c: _Config, n: int) -> list[bool] | None:
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


def _layer_groups(c: _Config) -> list[dict]:
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


# --- parameters -------------------------------------------------------------------------------

# bytes per element of each safetensors dtype (packed 4-bit formats are stored as U8 or I32)
ST_WIDTHS = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
             "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint's files say about its weights: every tensor's (dtype, element count) from
    the safetensors headers, and the index's total_size, where either is known."""

    tensors: tuple[tuple[str, int], ...] = ()
    total_size: int | None = None

    @property
    def bytes(self) -> int | None:
        """The weights' bytes, exactly: elements x width per tensor (else the index's total_size)."""
        if self.tensors:
            return sum(count * ST_WIDTHS.get(dtype, 2) for dtype, count in self.tensors)
        return self.total_size

    def params(self) -> tuple[int, str] | None:
        """(tensor elements, the dtype holding most of them), or None without headers."""
        if not self.tensors:
            return None
        by_dtype = Counter()
        for dtype, count in self.tensors:
            by_dtype[dtype] += count
        return sum(by_dtype.values()), _ST_DTYPES.get(by_dtype.most_common(1)[0][0], "bf16")


def header_tensors(header: dict) -> list[tuple[str, int]]:
    """(dtype, element count) of every tensor a safetensors header describes."""
    return [(t["dtype"], math.prod(t["shape"])) for name, t in header.items() if name != "__metadata__"]


def local_checkpoint(folder: Path) -> Checkpoint:
    """The headers of every *.safetensors file in a folder, and its index's total_size."""
    tensors = [item for path in sorted(folder.glob("*.safetensors")) for item in header_tensors(_safetensors_header(path))]
    return Checkpoint(tuple(tensors), index_total_size(folder / "model.safetensors.index.json"))


def index_total_size(path: Path) -> int | None:
    try:
        total = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("total_size")
    except (OSError, ValueError, AttributeError):
        return None
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None


def safetensors_params(folder: Path) -> tuple[int, str] | None:
    """(parameter count, dominant dtype) from the headers of every *.safetensors file, or None."""
    return local_checkpoint(folder).params()


def _safetensors_header(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                raise ValueError("header length is implausible")
            return json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise SpecError(f"{path}: not a readable safetensors file ({exc})") from None


def _mlp_params(h: int, inter: int, gated: bool) -> int:
    return (3 if gated else 2) * h * inter


def _attn_params(c: _Config, group: dict, h: int) -> int:
    if group["kind"] == "mla":
        heads, rope, nope, v = group["num_heads"], group["qk_rope_head_dim"], group["qk_nope_head_dim"], group["v_head_dim"]
        q_rank, kv_rank = c.get("q_lora_rank"), group["kv_lora_rank"]
        q = h * q_rank + q_rank + q_rank * heads * (nope + rope) if q_rank else h * heads * (nope + rope)
        return q + h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v) + heads * v * h
    heads = c.int("num_attention_heads", "n_head")
    qo = 2 * h * heads * group["head_dim"]
    kv = 2 * h * group["num_kv_heads"] * group["head_dim"]
    return qo + kv


def estimate_params(c: _Config, groups: list[dict]) -> int:
    """Total parameters from the architecture: embeddings, attention, MLP or experts, norms.

    Biases, position tables and quantization scales are not counted: an estimate, said so.
    """
    if any(g["kind"] == "mamba" for g in groups):
        raise SpecError(f"{c.where}: cannot count a Mamba hybrid's parameters from its config alone; "
                        "pass the model folder with its *.safetensors files")
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    n = sum(g["count"] for g in groups)
    attention = sum(g["count"] * _attn_params(c, g, h) for g in groups)
    inter = c.int("intermediate_size", "ffn_dim", default=4 * h)
    moe = _moe(c)
    if moe is None:
        mlp = n * _mlp_params(h, inter, gated=c.get("model_type") not in ("opt", "falcon"))
    else:
        moe_layers = _moe_layer_count(c, n)
        per_layer = (moe["num_experts"] + moe["shared_experts"]) * _mlp_params(h, moe["expert_intermediate_size"], True)
        mlp = (n - moe_layers) * _mlp_params(h, inter, True) + moe_layers * (per_layer + h * moe["num_experts"])
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2)
    return embeddings + attention + mlp + (2 * n + 1) * h


def _moe_layer_count(c: _Config, n: int) -> int:
    """Layers whose MLP is a mixture of experts, by each family's key."""
    if c.get("model_type") == "jamba":
        period, offset = c.int("expert_layer_period", default=1), c.int("expert_layer_offset", default=0)
        return sum(1 for i in range(n) if i % period == offset)
    if c.get("first_k_dense_replace") is not None:  # DeepSeek
        return n - c.int("first_k_dense_replace")
    if c.get("mlp_only_layers"):  # Qwen MoE
        return n - len(c.get("mlp_only_layers"))
    return n // c.int("interleave_moe_layer_step", "decoder_sparse_step", default=1)


def inactive_expert_params(c: _Config, n: int) -> int:
    """Parameters of the routed experts a token does not use: total - active."""
    moe = _moe(c)
    if moe is None:
        return 0
    expert = _mlp_params(c.int("hidden_size"), moe["expert_intermediate_size"], True)
    return _moe_layer_count(c, n) * (moe["num_experts"] - moe["experts_per_token"]) * expert


def _moe(c: _Config) -> dict | None:
    experts = c.get("num_local_experts", "n_routed_experts", "num_experts")
    if not experts:
        return None
    top_k = c.int("num_experts_per_tok", "experts_per_token", "num_experts_per_token")
    size = c.int("moe_intermediate_size", "intermediate_size")
    shared = c.get("n_shared_experts", default=0) or (1 if c.get("model_type", "") .startswith("llama4") else 0)
    return {"num_experts": experts, "experts_per_token": top_k, "shared_experts": shared,
            "expert_intermediate_size": size}


# --- the spec ---------------------------------------------------------------------------------

def _slug(raw: str) -> str:
    slug = re.sub(r"[^a-z0-9.\-]+", "-", raw.lower()).strip("-.")
    return slug or "imported-model"


def import_model(path: Path | str, name: str | None = None) -> ImportResult:
    """A spec from a local config.json or model folder (its *.safetensors headers counted exactly)."""
    config_path = _config_path(Path(path))
    folder = config_path.parent
    return spec_from_config(load_config(config_path), config_path, source=str(config_path.resolve()), name=name,
                            display=name or folder.name, checkpoint=local_checkpoint(folder),
                            slug=name or folder.name)


def spec_from_config(raw: dict, where: Path | str, *, source: str, name: str | None, display: str | None,
                     checkpoint: Checkpoint = Checkpoint(), slug: str | None = None) -> ImportResult:
    """A spec from a parsed config.json; `where` names it in every complaint."""
    c = _Config(_text_config(raw), where)
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED:
        raise SpecError(f"{where}: architecture '{model_type}' is not one kvplan can describe "
                        f"(supported: {', '.join(SUPPORTED)}); write the spec YAML by hand "
                        "(see `kvplan show llama3-8b`)")
    groups = _layer_groups(c)
    total, st_dtype, notes = _params_total(c, groups, checkpoint)
    moe = _moe(c)
    active = total - inactive_expert_params(c, sum(g["count"] for g in groups)) if moe else None
    if active is not None and active <= 0:
        raise SpecError(f"{where}: the checkpoint holds {total:,} parameters, fewer than the "
                        "experts its config describes; check that every *.safetensors shard is there")
    if active is not None:
        notes.append(f"params_active {active:,} = total less the routed experts a token does not use")
    spec_name = _slug(slug or model_type or "model")
    fields = {
        "name": spec_name, "display_name": display or spec_name,
        "family": model_type, "architecture": (raw.get("architectures") or [model_type])[0],
        "source": source, "hidden_size": c.int("hidden_size"),
        "intermediate_size": c.int("intermediate_size", "ffn_dim", default=4 * c.int("hidden_size")),
        "vocab_size": c.int("vocab_size"), "num_layers": sum(g["count"] for g in groups),
        "num_attention_heads": c.int("num_attention_heads", "n_head"), "params_total": total,
        "params_active": active, "dtype": _dtype(c, raw, st_dtype),
        "max_context": c.int("max_position_embeddings", "n_ctx", "max_seq_len"),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", default=False)),
        "moe": moe, "layers": groups, "checkpoint_bytes": checkpoint.bytes,
        "params_source": "; ".join(notes), "notes": "imported by kvplan import",
    }
    try:
        spec = ModelSpec.model_validate(fields)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise SpecError(f"{where}: the config does not make a valid spec ({problems})") from None
    return ImportResult(spec, tuple(notes))


def _params_total(c: _Config, groups: list[dict], checkpoint: Checkpoint) -> tuple[int, str | None, list[str]]:
    counted = checkpoint.params()
    if counted is not None:
        return counted[0], counted[1], [f"params_total {counted[0]:,} counted from the *.safetensors headers"]
    total = estimate_params(c, groups)
    return total, None, [f"params_total {total:,} estimated from the architecture (no *.safetensors "
                         "found; biases and extra tensors not counted)"]


def _dtype(c: _Config, raw: dict, st_dtype: str | None) -> str:
    quant = raw.get("quantization_config") or {}
    if quant.get("quant_method") == "fp8":
        return "fp8"
    if st_dtype:
        return st_dtype
    return _DTYPES.get(str(c.get("torch_dtype", "dtype", default="bfloat16")), "bf16")
