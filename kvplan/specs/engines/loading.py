"""What an engine loads beside the parameters, counted with the weights: the RoPE cos/sin table and
padding that quantized experts gain for their kernels (vLLM's model loading reports both)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
