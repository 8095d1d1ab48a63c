"""`kvplan import`: a local Hugging Face config.json (or model folder) to a ModelSpec, offline.

Layers come from the config's own keys (layer_types, sliding_window, attention_chunk_size,
kv_lora_rank, attn_layer_period, ...). Parameters come from the *.safetensors headers when the
folder has them (exact), else from the architecture (an estimate, said so in the notes).
An architecture whose cache we cannot describe is refused, never guessed.
"""

from __future__ import annotations

import re
from functools import partial
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kvplan.errors import SpecError
from kvplan.specs.archs import ARCHITECTURES, Architecture, architecture
from kvplan.specs.checkpoint import Checkpoint, local_checkpoint
from kvplan.specs.closest import closest_architecture
from kvplan.specs.hfconfig import (SUPPORTED, Config, check_config, config_path, layer_count, layer_groups, load_config,
                                   text_config)
from kvplan.specs.model import ModelSpec
from kvplan.specs.module_params import module_params
from kvplan.specs.params import estimate_params, inactive_expert_params, moe_block, tower_params
from kvplan.specs.quantization import read_kv_quantization, read_quantization
from kvplan.specs.vision import vision_from_config

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8_e4m3fn": "fp8"}


@dataclass(frozen=True)
class ImportResult:
    spec: ModelSpec
    notes: tuple[str, ...]


# --- the spec ---------------------------------------------------------------------------------

# The keys vLLM reads a model's length from, the smallest winning (_get_and_verify_max_len), and
# GPT-2's n_ctx; the RoPE types whose factor it does not apply (from vLLM 0.30, yarn among them:
# max_position_embeddings is taken as already scaled). docs/engine-rules/README.md has the history.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len", "n_ctx")
UNSCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling", "default")


def derived_context(c: Config, model_type: str) -> int:
    """The longest max_model_len the engine accepts for this config, as vLLM derives it: the smallest
    length key, times the RoPE scaling factor where its type multiplies (never for Gemma-3)."""
    found = [value for key in CONTEXT_KEYS if isinstance(value := c.get(key), int) and not isinstance(value, bool)
             and value > 0]
    if not found:
        raise SpecError(f"{c.where}: needs a positive whole max_position_embeddings (or n_positions, max_seq_len, "
                        "seq_length); fix the config")
    length = min(found)
    rope = c.get("rope_scaling")
    if isinstance(rope, dict) and "gemma3" not in model_type:
        kind = rope.get("rope_type", rope.get("type"))
        factor = rope.get("factor")
        if kind not in UNSCALED_ROPE and isinstance(factor, (int, float)) and not isinstance(factor, bool) \
                and 1 <= factor <= 1024:
            length = int(length * factor)
    return length


def _slug(raw: str) -> str:
    slug = re.sub(r"[^a-z0-9.\-]+", "-", raw.lower()).strip("-.")
    return slug or "imported-model"


def import_model(path: Path | str, name: str | None = None) -> ImportResult:
    """A spec from a local config.json or model folder (its *.safetensors headers counted exactly)."""
    config = config_path(Path(path))
    folder = config.parent
    return spec_from_config(load_config(config), config, source=str(config.resolve()), name=name,
                            display=name or folder.name, checkpoint=local_checkpoint(folder),
                            slug=name or folder.name)


def spec_from_config(raw: dict, where: Path | str, *, source: str, name: str | None, display: str | None,
                     checkpoint: Checkpoint = Checkpoint(), slug: str | None = None) -> ImportResult:
    """A spec from a parsed config.json; `where` names it in every complaint."""
    check_config(raw, where)
    c = Config(text_config(raw), where)
    model_type = raw.get("model_type")
    arch = architecture(model_type)
    if not isinstance(model_type, str) or (model_type not in SUPPORTED and arch is None):
        known = (*SUPPORTED, *ARCHITECTURES)
        closest, why = closest_architecture(str(model_type), c.cfg, known)
        raise SpecError(f"{where}: architecture '{model_type}' is not one kvplan can describe (it reads "
                        f"{len(known)} model_types, listed in docs/database.md); the closest it models is "
                        f"'{closest}' ({why}): write its spec YAML by hand from that layout (`kvplan show llama3-8b` "
                        "prints one), checking what differs")
    groups = arch.layer_groups(c, layer_count(c)) if arch else layer_groups(c)
    total, st_dtype, notes = _params_total(c, groups, checkpoint, arch)
    towers = checkpoint.tower_params()
    if towers is None:  # no headers: the vision tower from its vision_config, added to the estimate
        arch = architecture(model_type)
        count_tower = arch.tower_params if arch is not None and arch.tower_params else tower_params
        towers = count_tower(raw.get("vision_config"), c.int("hidden_size"))
        if towers:
            notes[0] = (f"params_total {total + towers:,} estimated from the architecture: language model "
                        f"{total:,} + vision tower {towers:,} (no *.safetensors found; biases and extra tensors "
                        "not counted)")
        total += towers
    elif towers:
        notes.append(f"of which the vision / audio towers {towers:,} (by tensor name)")
    moe = moe_block(c)
    n = sum(g["count"] for g in groups)
    moe_layers = arch.moe_layers(c, n) if arch is not None and arch.moe_layers else None
    active = total - (towers or 0) - inactive_expert_params(c, n, moe_layers) if moe else None
    if active is not None and active <= 0:
        raise SpecError(f"{where}: the checkpoint holds {total:,} parameters, fewer than the "
                        "experts its config describes; check that every *.safetensors shard is there")
    if active is not None:
        notes.append(f"params_active {active:,} = total less the routed experts a token does not use"
                     + (" and the towers" if towers else ""))
    try:
        quant = read_quantization(raw.get("quantization_config") or c.get("quantization_config"),
                                  partial(module_params, c))
    except SpecError as err:
        raise SpecError(f"{where}: {err}") from None
    if quant is not None:
        notes.append(f"weights quantized: {quant.description}, {quant.bits_per_weight:.3f} bits/weight")
    spec_name = _slug(slug or model_type or "model")
    fields = {
        "name": spec_name, "display_name": display or spec_name,
        "family": model_type, "architecture": (raw.get("architectures") or [model_type])[0],
        "source": source, "hidden_size": c.int("hidden_size"),
        "intermediate_size": _intermediate_size(c, arch),
        "vocab_size": c.int("vocab_size"), "num_layers": sum(g["count"] for g in groups if not g.get("parallel")),
        "num_attention_heads": c.int("num_attention_heads", "n_head"), "params_total": total,
        "params_active": active, "dtype": _dtype(c, raw, st_dtype),
        "max_context": derived_context(c, model_type),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", default=False)),
        "mtp_layers": c.get("num_nextn_predict_layers", "mtp_num_hidden_layers", default=0) or 0,
        "draft_vocab_size": c.get("draft_vocab_size", default=None),
        "moe": moe, "layers": groups, "checkpoint_bytes": checkpoint.bytes,
        "tower_params": towers or None, "vision": vision_from_config(raw, model_type),
        **_vision_config_sizes(raw.get("vision_config")), "quantization": quant.format if quant else None,
        "kv_cache_quant": read_kv_quantization(raw.get("quantization_config") or c.get("quantization_config")),
        "quantization_bits": quant.bits_per_weight if quant else None,
        "params_source": "; ".join(notes), "notes": "imported by kvplan import",
    }
    try:
        spec = ModelSpec.model_validate(fields)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise SpecError(f"{where}: the config does not make a valid spec ({problems})") from None
    return ImportResult(spec, tuple(notes))


def _vision_config_sizes(vision: object) -> dict[str, int]:
    """vision_config's num_hidden_layers and hidden_size where the file states them as integers."""
    if not isinstance(vision, dict):
        return {}
    keys = {"vision_num_hidden_layers": "num_hidden_layers", "vision_hidden_size": "hidden_size"}
    return {field: vision[key] for field, key in keys.items()
            if isinstance(vision.get(key), int) and not isinstance(vision.get(key), bool)}


def _intermediate_size(c: Config, arch: Architecture | None) -> int:
    """The config's MLP width, or its architecture module's where each layer has its own (Nemotron-NAS)."""
    if arch is not None and arch.intermediate_size is not None:
        return arch.intermediate_size(c)
    return c.int("intermediate_size", "ffn_dim", "n_inner", default=4 * c.int("hidden_size"))


def _params_total(c: Config, groups: list[dict], checkpoint: Checkpoint,
                  arch: Architecture | None = None) -> tuple[int, str | None, list[str]]:
    counted = checkpoint.params()
    if counted is not None:
        return counted[0], counted[1], [f"params_total {counted[0]:,} counted from the *.safetensors headers"]
    total = arch.params(c, groups) if arch and arch.params else estimate_params(c, groups)
    return total, None, [f"params_total {total:,} estimated from the architecture (no *.safetensors "
                         "found; biases and extra tensors not counted)"]


def _dtype(c: Config, raw: dict, st_dtype: str | None) -> str:
    quant = raw.get("quantization_config") or {}
    if quant.get("quant_method") == "fp8":
        return "fp8"
    if st_dtype:
        return st_dtype
    return _DTYPES.get(str(c.get("torch_dtype", "dtype", default="bfloat16")), "bf16")
