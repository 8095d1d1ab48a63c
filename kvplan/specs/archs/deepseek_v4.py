"""DeepSeek-V4 (model_type deepseek_v4): a latent attention whose layers keep a 128-token window and,
by `compress_ratios`, one compressed latent per 4 tokens (with a lightning indexer, sparse) or per
128 tokens; hash-routed MoE in the first `num_hash_layers` layers; hyper-connections (hc_mult
residual streams). As vLLM 0.34 builds it: vllm/models/deepseek_v4/attention.py
(DeepseekV4Attention, DeepseekV4Indexer), compressor.py, nvidia/model.py (DeepseekV4MoE,
DeepseekV4DecoderLayer, DeepseekV4Model); the cache layout is in kvplan.specs.kinds.deepseek_v4.

compress_ratios lists one ratio per layer, the MTP layers (num_nextn_predict_layers) last
(vllm/transformers_utils/deepseek_v4_utils.py get_compress_ratios); transformers' DeepseekV4Config
gives layer_types and compress_rates instead. An MTP layer runs only as vLLM's speculative draft
(DeepSeekV4MTP, compress ratio 1: a window and no compressed cache), so neither its cache nor its
weights are counted here, as DeepSeek-V3's MTP layer is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture

if TYPE_CHECKING:
    from kvplan.specs.hfconfig import Config

RATIOS = (0, 4, 128)  # 0: the window only (sparse_swa._layer_type_for: swaonly, c4a, c128a)


def compress_ratios(c: Config, n: int) -> list[int]:
    """The ratio of each of the n main layers (MTP layers after them dropped)."""
    ratios = c.get("compress_ratios")
    if ratios is None and isinstance(c.get("layer_types"), list) and isinstance(c.get("compress_rates"), dict):
        ratios = [c.get("compress_rates").get(t, 0) for t in c.get("layer_types")]
    if not isinstance(ratios, list) or len(ratios) < n or any(r not in RATIOS for r in ratios[:n]):
        raise SpecError(f"{c.where}: compress_ratios must list at least {n} ratios (one a layer), each 0, 4 or 128; "
                        "fix the config")
    return list(ratios[:n])


def layer_groups(c: Config, n: int) -> list[dict]:
    ratios = compress_ratios(c, n)
    shared = {"head_dim": c.int("head_dim"), "rope_head_dim": c.int("qk_rope_head_dim"),
              "window": c.int("sliding_window")}
    groups = [{"kind": "dsv4_swa", "count": ratios.count(0), **shared},
              {"kind": "dsv4_compressed", "count": ratios.count(4), **shared, "compress_ratio": 4,
               "index_head_dim": c.int("index_head_dim"), "index_topk": c.int("index_topk")},
              {"kind": "dsv4_compressed", "count": ratios.count(128), **shared, "compress_ratio": 128}]
    return [g for g in groups if g["count"]]


def _attention_params(c: Config, ratio: int) -> int:
    """fused_wqa_wkv, q_norm, wq_b, kv_norm, the grouped wo_a, wo_b and the sinks; the compressor
    (ape, fused_wkv_wgate, norm) where ratio > 1; the indexer (wq_b, weights_proj, its compressor)
    where ratio is 4."""
    h, heads, head_dim = c.int("hidden_size"), c.int("num_attention_heads"), c.int("head_dim")
    q_rank, o_rank, o_groups = c.int("q_lora_rank"), c.int("o_lora_rank"), c.int("o_groups")
    params = h * (q_rank + head_dim) + q_rank + q_rank * heads * head_dim + head_dim \
        + heads * head_dim * o_rank + o_groups * o_rank * h + heads
    if ratio > 1:
        params += _compressor_params(h, head_dim, ratio)
    if ratio == 4:
        index_dim, index_heads = c.int("index_head_dim"), c.int("index_n_heads")
        params += q_rank * index_dim * index_heads + h * index_heads + _compressor_params(h, index_dim, ratio)
    return params


def _compressor_params(h: int, head_dim: int, ratio: int) -> int:
    width = (2 if ratio == 4 else 1) * head_dim  # coff x head_dim: ratio 4 overlaps two windows
    return ratio * width + h * 2 * width + head_dim


def _moe_params(c: Config, hashed: bool) -> int:
    """Routed and shared experts (gated), the router, and its bias, or for a hash layer its token ->
    expert table (tid2eid, vocab x top-k)."""
    h, experts, inter = c.int("hidden_size"), c.int("n_routed_experts"), c.int("moe_intermediate_size")
    shared = c.int("n_shared_experts", default=0)
    routing = c.int("vocab_size") * c.int("num_experts_per_tok") if hashed else experts
    return (experts + shared) * 3 * h * inter + h * experts + routing


def _hyper_params(c: Config) -> int:
    """Per layer: hc_attn/ffn_fn ((2 + m) x m, m x h), their bases and 3 scales each."""
    m, h = c.int("hc_mult"), c.int("hidden_size")
    mix = (2 + m) * m
    return 2 * (mix * m * h + mix + 3)


def params(c: Config, groups: list[dict]) -> int:
    n = sum(g["count"] for g in groups)
    h, vocab, hashed = c.int("hidden_size"), c.int("vocab_size"), c.int("num_hash_layers", default=0)
    layers = sum(_attention_params(c, r) + _moe_params(c, i < hashed) + _hyper_params(c) + 2 * h
                 for i, r in enumerate(compress_ratios(c, n)))
    m = c.int("hc_mult")
    head = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2) + h + m * m * h + m + 1
    return layers + head


ARCHITECTURE = Architecture(
    model_types=("deepseek_v4",), layer_groups=layer_groups, params=params,
    engine_layout="vllm/models/deepseek_v4/attention.py DeepseekV4Attention.get_kv_cache_spec, "
                  "DeepseekV4IndexerCache, compressor.py CompressorStateCache, "
                  "v1/attention/backends/mla/sparse_swa.py DeepseekV4SWACache")
