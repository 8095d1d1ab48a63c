"""What an engine loads beside the parameters, counted with the weights: the RoPE cos/sin table,
padding that quantized experts gain for their kernels (vLLM's model loading reports both), and the
MLA tensors tensor parallelism does not split (vLLM and SGLang alike).

Whole on every rank in MLA (vLLM models/deepseek_v2.py, 0.8 to 0.34; SGLang models/deepseek_v2.py
and layers/attention/nsa/nsa_indexer.py, 0.4 to 0.5): the query's and the latent's down-projections
(q_a_proj and kv_a_proj_with_mqa, ReplicatedLinear; vLLM from 0.10 fused_qkv_a_proj, disable_tp=True,
SGLang fused_qkv_a_proj_with_mqa) in the checkpoint's format, their RMSNorms, DeepSeek sparse
attention's indexer (wq_b and wk in the checkpoint's format, weights_proj unquantized, k_norm a
LayerNorm), and each layer's router (vLLM's gate, SGLang's MoEGate: unquantized) with its fp32
score-correction bias."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.layers import MLALatent
from kvplan.units import DTYPE_BYTES

if TYPE_CHECKING:
    from kvplan.specs.engines.base import Replica
    from kvplan.specs.model import ModelSpec


def rotary_dim(model: ModelSpec) -> int:
    """The rotary dimension of the model's attention (MLA: qk_rope_head_dim), 0 when it has none."""
    for group in model.layers:
        dim = getattr(group, "qk_rope_head_dim", None) or getattr(group, "head_dim", None)
        if dim:
            return int(dim)
    return 0


def mxfp4_experts(model: ModelSpec) -> bool:
    """The experts are MXFP4: the checkpoint's format, or gpt-oss, which ships its experts alone in
    MXFP4 (its spec counts the mixed checkpoint's bytes)."""
    return model.quantization == "mxfp4" or model.family == "gpt-oss"


def mxfp4_padding(model: ModelSpec, replica: Replica) -> tuple[int, str] | None:
    """(bytes, what) MXFP4 experts gain by padding (quantization/mxfp4.py, 0.10.1 on): the MoE Marlin
    kernel of Ampere and Ada pads each rank's expert width to 128 and the hidden size to 256; Hopper's
    Triton kernels the width to 64; Blackwell's FlashInfer kernels both to 256. An element is 4 bits
    plus a one-byte scale per 32."""
    moe, gpu = model.moe, replica.gpu
    if not mxfp4_experts(model) or moe is None or gpu is None or gpu.vendor != "nvidia":
        return None
    up = lambda n, m: -(-n // m) * m  # noqa: E731
    inter, hidden = -(-(moe.expert_intermediate_size or model.intermediate_size) // replica.tp), model.hidden_size
    if gpu.architecture.startswith("Blackwell"):
        padded, width = (up(inter, 256), up(hidden, 256)), "FlashInfer"
    elif gpu.architecture == "Hopper":
        padded, width = (up(inter, 64), hidden), "Triton"
    else:
        padded, width = (up(inter, 128), up(hidden, 256)), "Marlin"
    elements = lambda i, h: 3 * i * h  # noqa: E731  w13 (2 x i x h) and w2 (h x i)
    per_layer = moe.num_experts * (elements(*padded) - elements(inter, hidden))
    layers = -(-model.num_layers // replica.pp)
    extra = layers * per_layer * 17 // 32  # 0.5 B + 1/32 B a weight
    return (extra, f"MXFP4 padding ({width}: {inter:,} x {hidden:,} -> {padded[0]:,} x {padded[1]:,})") if extra else None


def loaded_format(model: ModelSpec, replica: Replica) -> str | None:
    """The linear weights' format as loaded: the one asked for, else the checkpoint's quantization (or
    its fp8 dtype: DeepSeek-V3's spec); None for the served dtype."""
    if replica.weights_dtype != "auto":
        return replica.weights_dtype
    return model.quantization or ("fp8" if model.dtype == "fp8" else None)


def mla_replicated(model: ModelSpec, replica: Replica) -> int | None:
    """The share beyond 1/TP of MLA's whole-on-every-rank tensors (module docstring), one GPU of the
    fullest pipeline stage: each layer's a-projections, their norms, its indexer and its router
    (the first dense layers' router counted too: 3 x 256 x 7,168 x 2 B = 11 MB for DeepSeek-V3),
    and the decoder's norms. None where the model is not MLA throughout or its format is one whose
    tensors kvplan does not lay out (NVFP4, integer formats)."""
    if not model.layers or not all(isinstance(g, MLALatent) for g in model.layers):
        return None
    fmt = loaded_format(model, replica)
    if fmt not in (None, "fp8", "bf16", "fp16", "fp32"):
        return None
    served = DTYPE_BYTES.get(replica.dtype, 2)
    width = DTYPE_BYTES[fmt] if fmt else served
    h, tp, whole = model.hidden_size, replica.tp, 0
    for g in model.layers:
        if not isinstance(g, MLALatent):
            continue
        q, kv = g.q_lora_rank or 0, g.kv_lora_rank + g.qk_rope_head_dim
        layer = h * (q + kv) * width + (q + g.kv_lora_rank) * served  # a-projections, their RMSNorms
        dim, heads = g.index_head_dim, g.index_n_heads
        if dim and heads:
            layer += (q * heads * dim + h * dim) * width + (h * heads + 2 * dim) * served  # the indexer
        if model.moe is not None:
            layer += model.moe.num_experts * (h * served + 4)  # the router and its fp32 score bias
        whole += -(-g.count // replica.pp) * layer
    whole += (2 * -(-model.num_layers // replica.pp) + 1) * h * served  # the decoder's norms
    return whole * (tp - 1) // tp
