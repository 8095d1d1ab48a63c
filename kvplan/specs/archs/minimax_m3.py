"""MiniMax-M3 (model_type minimax_m3): GQA layers with per-head QK norms, most of them block-sparse
(MiniMax Sparse Attention: a lightning indexer's key per token picks the top blocks each query reads),
a dense MLP in the first layers and a sigmoid-routed MoE with one shared expert in the rest. As vLLM
0.34 builds it (vllm/models/minimax_m3/nvidia/model.py: MiniMaxM3DecoderLayer, MiniMaxM3Attention,
MiniMaxM3SparseAttention, MiniMaxM3MLP, MiniMaxM3MoE, MiniMaxM3Model); the sparse layers' cache
is kvplan.specs.kinds.minimax_m3.

The config's legacy keys are read as transformers' MiniMaxM3VLTextConfig.__post_init__ reads them
(vLLM takes its config class from transformers): sparse_attention_config's sparse_attention_freq
(1: a sparse layer, "minimax_m3_sparse" in layer_types), sparse_num_index_heads, sparse_index_dim,
sparse_block_size, sparse_topk_blocks; moe_layer_freq (1: an MoE layer, "sparse" in
mlp_layer_types). The flat keys (layer_types, mlp_layer_types, index_*) are read where a config
gives them instead.

MTP: num_mtp_modules / num_nextn_predict_layers describe draft modules that run only as vLLM's
speculative decoder (MiniMaxM3MTP); MiniMaxM3Model.load_weights skips every "mtp." weight and builds
no MTP layer, so they add neither cache nor weights here.

The config names MiniMaxM3ForCausalLM, which vLLM 0.34's registry does not list: it registers
MiniMaxM3SparseForCausalLM (model_executor/models/registry.py), the model read here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture

if TYPE_CHECKING:
    from kvplan.specs.hfconfig import Config
from kvplan.specs.params import stacked_params

SPARSE, FULL = "minimax_m3_sparse", "full_attention"
LEGACY_INDEX_KEYS = {"index_n_heads": "sparse_num_index_heads", "index_head_dim": "sparse_index_dim",
                     "index_block_size": "sparse_block_size", "index_topk_blocks": "sparse_topk_blocks"}


def _sparse_config(c: Config) -> dict:
    cfg = c.get("sparse_attention_config", default={})
    if not isinstance(cfg, dict):
        raise SpecError(f"{c.where}: sparse_attention_config must be a mapping of the sparse_* keys; fix the config")
    return cfg


def _flags(c: Config, n: int, key: str, values: tuple[str, str]) -> list[str]:
    """One entry a layer, `values` = (the 1 entry, the 0 entry), from a 0/1 list (a legacy key)."""
    raw = _sparse_config(c).get(key) if key == "sparse_attention_freq" else c.get(key)
    if not (isinstance(raw, list) and len(raw) >= n and all(type(f) is int and f in (0, 1) for f in raw[:n])):
        raise SpecError(f"{c.where}: {key} must list {n} entries, 0 or 1, one a layer; fix the config")
    return [values[0] if f else values[1] for f in raw[:n]]


def attention_types(c: Config, n: int) -> list[str]:
    """Each layer's attention: layer_types where the config gives it, else from sparse_attention_freq,
    else every layer full (MiniMaxM3VLTextConfig.__post_init__); vLLM reads it as
    _sparse_attention_layer_ids."""
    types = c.get("layer_types")
    if types is None and "sparse_attention_freq" in _sparse_config(c):
        types = _flags(c, n, "sparse_attention_freq", (SPARSE, FULL))
    types = types if types is not None else [FULL] * n
    if len(types) < n or set(types[:n]) - {SPARSE, FULL}:
        raise SpecError(f"{c.where}: layer_types must list {n} entries, {SPARSE!r} or {FULL!r}; fix the config")
    return list(types[:n])


def moe_flags(c: Config, n: int) -> list[bool]:
    """Which layers hold the MoE: mlp_layer_types ("sparse"), else moe_layer_freq, else every layer
    (MiniMaxM3VLTextConfig.__post_init__; vLLM's _is_moe_layer reads mlp_layer_types)."""
    types = c.get("mlp_layer_types")
    if types is None and c.get("moe_layer_freq") is not None:
        types = _flags(c, n, "moe_layer_freq", ("sparse", "dense"))
    types = types if types is not None else ["sparse"] * n
    if len(types) < n or set(types[:n]) - {"sparse", "dense"}:
        raise SpecError(f"{c.where}: mlp_layer_types must list {n} entries, 'sparse' or 'dense'; fix the config")
    return [t == "sparse" for t in types[:n]]


def index_setting(c: Config, key: str) -> int:
    """An index_* value: the legacy sparse_attention_config key where given, else the flat key, else
    MiniMaxM3VLTextConfig's default (4 heads, 128 dims, blocks of 128, top 16)."""
    defaults = {"index_n_heads": 4, "index_head_dim": 128, "index_block_size": 128, "index_topk_blocks": 16}
    legacy = _sparse_config(c).get(LEGACY_INDEX_KEYS[key])
    value = legacy if legacy is not None else c.get(key, default=defaults[key])
    if type(value) is not int or value < 1:
        raise SpecError(f"{c.where}: {LEGACY_INDEX_KEYS[key]} must be a whole number of at least 1, not {value!r}; "
                        "fix the config")
    return value


def layer_groups(c: Config, n: int) -> list[dict]:
    """Dense layers: a FullAttentionSpec of num_key_value_heads x head_dim (MiniMaxM3Attention); sparse
    layers the same K/V and an index key (MiniMaxM3SparseAttention.get_kv_cache_spec,
    MiniMaxM3IndexerCache.get_kv_cache_spec)."""
    types = attention_types(c, n)
    kv, head_dim = c.int("num_key_value_heads"), c.int("head_dim")
    sparse = types.count(SPARSE)
    if sparse and index_setting(c, "index_n_heads") != kv:  # MinimaxM3QKVParallelLinearWithIndexer asserts it
        raise SpecError(f"{c.where}: sparse_num_index_heads {index_setting(c, 'index_n_heads')} must equal "
                        f"num_key_value_heads {kv} (vLLM shards index_q like the KV heads); fix the config")
    full = {"kind": "full", "count": types.count(FULL), "num_kv_heads": kv, "head_dim": head_dim}
    indexed = {"kind": "msa", "count": sparse, "num_kv_heads": kv, "head_dim": head_dim,
               "index_head_dim": index_setting(c, "index_head_dim"),
               "index_block_size": index_setting(c, "index_block_size"),
               "index_topk_blocks": index_setting(c, "index_topk_blocks")}
    return [g for g in (full, indexed) if g["count"]]


def _attention_params(c: Config, sparse: bool) -> int:
    """qkv_proj, o_proj, the per-head q_norm and k_norm; a sparse layer's index_q (index_n_heads heads)
    and its one index_k head with their norms (MinimaxM3QKVParallelLinearWithIndexer)."""
    h, heads, kv, head_dim = c.int("hidden_size"), c.int("num_attention_heads"), c.int("num_key_value_heads"), \
        c.int("head_dim")
    params = h * (heads + 2 * kv) * head_dim + heads * head_dim * h + 2 * head_dim
    if sparse:
        index_dim = index_setting(c, "index_head_dim")
        params += h * (index_setting(c, "index_n_heads") + 1) * index_dim + 2 * index_dim
    return params


def _mlp_params(c: Config, moe: bool) -> int:
    """A dense layer's gated MLP of dense_intermediate_size; an MoE layer's num_local_experts gated
    experts and one shared expert, both of intermediate_size as MiniMaxM3MoE builds them, the fp32
    router and its e_score_correction_bias."""
    h = c.int("hidden_size")
    if not moe:
        return 3 * h * c.int("dense_intermediate_size")
    experts, inter = c.int("num_local_experts"), c.int("intermediate_size")
    return (experts + 1) * 3 * h * inter + h * experts + experts


def params(c: Config, groups: list[dict]) -> int:
    """Embeddings and lm_head, each layer's attention and MLP, two norms a layer and the final one."""
    n, h = sum(g["count"] for g in groups), c.int("hidden_size")
    return stacked_params(c, (_attention_params(c, t == SPARSE) + _mlp_params(c, moe) + 2 * h
                              for t, moe in zip(attention_types(c, n), moe_flags(c, n))))


def moe_layers(c: Config, n: int) -> int:
    return sum(moe_flags(c, n))


ARCHITECTURE = Architecture(
    model_types=("minimax_m3", "minimax_m3_vl_text"), layer_groups=layer_groups, params=params, moe_layers=moe_layers,
    engine_layout="vllm/models/minimax_m3/nvidia/model.py MiniMaxM3SparseAttention.get_kv_cache_spec, "
                  "common/indexer.py MiniMaxM3IndexerCache.get_kv_cache_spec")
