"""A vision tower's sizes, as the engine's multimodal profile reads them (ModelSpec.vision).

vLLM's profile run encodes the largest image (or video) a prompt may carry before it sizes the KV
pool (vllm/v1/worker/gpu_model_runner.py profile_run); how large that is follows from the tower's
patch and merge sizes and the processor's pixel cap (vllm/model_executor/models/qwen2_vl.py
Qwen2VLProcessingInfo._get_vision_info, get_image_size_with_most_features; qwen3_vl.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, Strict

from kvplan.specs.base import Dim, Frozen, Small

Pixels = Annotated[int, Strict(), Field(ge=1, le=2**34)]

# The processor's pixel cap where preprocessor_config.json is not read (kvplan imports config.json
# only), from the published processors: Qwen2-VL and Qwen2.5-VL's "max_pixels": 12845056 (3,584^2,
# Qwen2VLImageProcessor; a video frame takes the same cap); Qwen3-VL's image "size": {"longest_edge":
# 16777216} (4,096^2) and video_preprocessor_config.json's {"longest_edge": 25165824}, a cap on all
# the frames' pixels together (transformers qwen3_vl video_processing smart_resize). Qwen3.5 and 3.6 ship
# Qwen3-VL's processor and tower (27 blocks of 1,152, no deepstack): a 0.19 log profiles "1 image items"
# of 16,384 tokens, 4,096^2 pixels at 16-pixel patches merged 2 x 2.
PROCESSOR_PIXELS: dict[str, tuple[int, int | None]] = {
    "qwen2_vl": (12_845_056, None), "qwen2_5_vl": (12_845_056, None),
    "qwen3_vl": (16_777_216, 25_165_824), "qwen3_vl_moe": (16_777_216, 25_165_824),
    "qwen3_5": (16_777_216, 25_165_824), "qwen3_5_moe": (16_777_216, 25_165_824),
}


class VisionSpec(Frozen):
    """A patch-merging ViT (Qwen2-VL and its successors): patches of patch_size^2 pixels x
    temporal_patch_size frames, merge_size^2 patches to one language-model token."""

    patch_size: Dim
    merge_size: Dim
    temporal_patch_size: Dim = 1
    in_channels: Small = 3
    hidden_size: Dim  # the ViT's width (Qwen2-VL's embed_dim)
    intermediate_size: Dim  # its MLP's width (Qwen2-VL: embed_dim x mlp_ratio)
    gated_mlp: Annotated[bool, Strict()] = False  # gate and up projections (Qwen2.5-VL's SiLU MLP)
    out_hidden_size: Dim  # the merger's output: the language model's hidden size
    deepstack_layers: Annotated[int, Strict(), Field(ge=0, le=1000)] = 0  # Qwen3-VL: features fed to the LM too
    image_max_pixels: Pixels  # the image processor's cap (max_pixels, size.longest_edge)
    video_max_pixels: Pixels | None = None  # a cap on a whole video's pixels (Qwen3-VL); None: per frame

    @property
    def patch_values(self) -> int:
        """Values a patch holds: channels x temporal_patch_size x patch_size^2 (pixel_values' width)."""
        return self.in_channels * self.temporal_patch_size * self.patch_size ** 2

    @property
    def out_width(self) -> int:
        """Values an encoder-output token holds: the merger's and each deepstack merger's."""
        return self.out_hidden_size * (1 + self.deepstack_layers)


def _int(vision: dict[str, Any], *keys: str) -> int | None:
    return next((vision[k] for k in keys if isinstance(vision.get(k), int) and not isinstance(vision.get(k), bool)),
                None)


def vision_from_config(raw: dict[str, Any], model_type: object) -> VisionSpec | None:
    """The tower from config.json's vision_config, for the families whose processor kvplan knows
    (PROCESSOR_PIXELS); None for the rest. Qwen2-VL names the width embed_dim (its hidden_size is the
    merger's output) and the MLP mlp_ratio x embed_dim."""
    vision = raw.get("vision_config")
    if model_type not in PROCESSOR_PIXELS or not isinstance(vision, dict):
        return None
    image, video = PROCESSOR_PIXELS[str(model_type)]
    width = _int(vision, "embed_dim") if model_type == "qwen2_vl" else _int(vision, "hidden_size")
    out = _int(vision, "hidden_size") if model_type == "qwen2_vl" else _int(vision, "out_hidden_size")
    ratio = vision.get("mlp_ratio")
    inter = (int(width * ratio) if width and isinstance(ratio, (int, float)) else None) if model_type == "qwen2_vl" \
        else _int(vision, "intermediate_size")
    if not (width and out and inter):
        return None
    return VisionSpec(
        patch_size=_int(vision, "patch_size", "spatial_patch_size") or 14, merge_size=_int(vision, "spatial_merge_size") or 2,
        temporal_patch_size=_int(vision, "temporal_patch_size") or 1,
        in_channels=_int(vision, "in_channels", "in_chans") or 3, hidden_size=width, intermediate_size=inter,
        gated_mlp=str(vision.get("hidden_act", "")).lower() == "silu", out_hidden_size=out,
        deepstack_layers=len(vision.get("deepstack_visual_indexes") or ()),
        image_max_pixels=image, video_max_pixels=video)
