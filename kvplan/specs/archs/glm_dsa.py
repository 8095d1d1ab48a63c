"""GLM-5 (model_type glm_moe_dsa): DeepSeek-V3.2's latent attention with its sparse-attention
indexer, where from GLM-5.2 on most layers share a neighbour's indexer (IndexCache). As vLLM 0.34
builds it (vllm/models/deepseek_v32/attention.py DeepseekV32Attention, the CUDA and ROCm model; the generic
model_executor/models/deepseek_v2.py DeepseekV2MLAAttention `_skip_topk` agrees wherever
indexer_types is absent):

    skip_topk = layer_id in compute_skip_topk_layers(config)   # model_executor/models/utils.py
    indexer = None if skip_topk (and not an MTP layer) else DeepseekV32Indexer(...)

A layer without an indexer builds no DeepseekV32IndexerCache, so it caches no indexer key, but it
is still sparse attention (use_sparse=True): its latent keeps the sparse layout (fp8_ds_mla in fp8).
GLM-5 and GLM-5.1 name none of the keys below, so every layer has its own indexer, as before.
The MTP layer (num_nextn_predict_layers) always has one, but is not counted, as DeepSeek-V3's is not.
"""

from __future__ import annotations

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config
from kvplan.specs.hfconfig import layer_groups as mla_layer_groups

INDEXER_TYPES = ("full", "shared")


def _whole(c: Config, key: str, default: int, least: int) -> int:
    """A key read with getattr(config, key, default), as vLLM reads it: an int of at least `least`."""
    value = c.cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SpecError(f"{c.where}: {key} must be a whole number of at least {least}, not {value!r}; fix the config")
    return value


def shared_indexer_layers(c: Config, n: int) -> set[int]:
    """The layers that reuse the top-k of the closest preceding indexer layer (vLLM 0.34
    model_executor/models/utils.py compute_skip_topk_layers): none without index_topk; else those
    indexer_types marks "shared"; else, with index_topk_pattern, those it marks "S"; else those with
    max(i - index_skip_topk_offset + 1, 0) % index_topk_freq != 0 (defaults 2 and 1: none)."""
    if c.get("index_topk") is None:
        return set()
    types = c.get("indexer_types")
    if types is not None:
        if not (isinstance(types, list) and len(types) == n and all(t in INDEXER_TYPES for t in types)):
            raise SpecError(f"{c.where}: indexer_types must list {n} entries (one a layer), each \"full\" or "
                            "\"shared\"; fix the config")
        return {i for i, t in enumerate(types) if t == "shared"}
    freq = _whole(c, "index_topk_freq", 1, 1)
    offset = _whole(c, "index_skip_topk_offset", 2, 0)
    pattern = c.get("index_topk_pattern")
    if pattern is not None:
        if not isinstance(pattern, (str, list)):
            raise SpecError(f"{c.where}: index_topk_pattern must be a string or list (\"S\" a shared layer); "
                            "fix the config")
        return {i for i in range(min(n, len(pattern))) if pattern[i] == "S"}
    return {i for i in range(n) if max(i - offset + 1, 0) % freq != 0}


def layer_groups(c: Config, n: int) -> list[dict]:
    """The MLA group with an indexer on every layer, split where layers share one: those keep the
    latent and its sparse layout but no indexer key (shared_indexer: true)."""
    (group,) = mla_layer_groups(c)
    shared = len(shared_indexer_layers(c, n))
    if not shared or "index_head_dim" not in group:
        return [group]
    latent_only = {key: value for key, value in group.items() if key not in ("index_head_dim", "index_n_heads")}
    groups = [{**group, "count": n - shared}, {**latent_only, "count": shared, "shared_indexer": True}]
    return [g for g in groups if g["count"]]


ARCHITECTURE = Architecture(
    model_types=("glm_moe_dsa",), layer_groups=layer_groups,
    engine_layout="vllm/models/deepseek_v32/attention.py (0.34) DeepseekV32Attention (an indexer only where "
                  "model_executor/models/utils.py compute_skip_topk_layers leaves it), "
                  "model_executor/models/deepseek_v2.py DeepseekV32IndexerCache")
