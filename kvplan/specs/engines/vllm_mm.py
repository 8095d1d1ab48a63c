"""vLLM V1's multimodal profile: the encoder run on the largest dummy input before the text profile.

vllm/v1/worker/gpu_model_runner.py profile_run: unless every modality's --limit-mm-per-prompt is 0
(or --skip-mm-profiling), the runner encodes max_items_per_batch dummy items of the modality with
the most tokens per item (MultiModalBudget.get_modality_with_max_tokens), keeps their outputs in the
encoder cache, then runs the text forward pass and the sampler with that cache still alive. The
profiled peak is the larger of the encoder's forward and the cache plus the text profile.

Items (vllm/v1/worker/utils.py MultiModalBudget.get_max_items, v1/core/encoder_cache_manager.py
compute_mm_encoder_budget): budget = max(max_num_batched_tokens, max_tokens_per_mm_item); items =
max(1, min(budget // tokens_per_item, max_num_seqs x max(1, min(limit, max_model_len // tokens)))).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt
from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, Replica, Term
from kvplan.units import DTYPE_BYTES

if TYPE_CHECKING:
    from kvplan.specs.model import ModelSpec
    from kvplan.specs.vision import VisionSpec

DEFAULT_LIMIT = 999  # vllm/config/multimodal.py get_limit_per_prompt: an unnamed modality's limit
# Releases that count a Qwen3-VL video's tokens as its soft tokens x 12.5 (each frame pair's
# "<t seconds>" text, vision start and end: qwen3_vl.py get_max_video_tokens, 0.11 and 0.12 only)
FORMATTED_VIDEO = ((0, 11), (0, 12))
# Bytes a ViT block's attention holds per patch x width (the tower's width / TP), at its peak:
# Qwen2-VL (qwen2_vl.py Qwen2VisionAttention.forward): the qkv output (3 x 2 B), contiguous q, k, v
# (3 x 2 B) and a rotary's fp32 copy and result (apply_rotary_pos_emb_vision: 4 + 4 B) = 20;
# Qwen2.5-VL and Qwen3-VL (qwen2_5_vl.py Qwen2_5_VisionAttention): the qkv output (3 x 2 B), q and k
# rearranged (2 x 2 B) and rotated (2 x 2 B) = 14.
ATTENTION_BYTES = {"qwen2_vl": 20}
ATTENTION_BYTES_NEWER = 14


@dataclass(frozen=True)
class Item:
    """The dummy item of one modality at its largest: LM tokens as the budget counts them, the
    encoder's output tokens and its patches."""

    modality: str
    budget_tokens: int
    tokens: int
    patches: int


def _side(pixels: int, factor: int) -> int:
    """The side of the largest square smart_resize keeps under a pixel cap, a multiple of factor."""
    return max(factor, isqrt(pixels) // factor * factor)


def items(model: ModelSpec, vision: VisionSpec, engine_first: tuple[int, ...], max_model_len: int) -> list[Item]:
    """Each modality's largest item (Qwen2VLProcessingInfo.get_mm_max_tokens_per_item): the image at
    the processor's pixel cap; the video as many frames of that image as max_model_len holds, up to 14
    (Qwen2-VL, Qwen2.5-VL: _get_max_video_frames, _MAX_FRAMES_PER_VIDEO), or all its frames under
    the video cap (Qwen3-VL: 0.11-0.12 at the frame cap, then 2 frames of half the cap)."""
    p, m, t = vision.patch_size, vision.merge_size, vision.temporal_patch_size
    side = _side(vision.image_max_pixels, p * m) // p  # patches a side
    image = Item("image", side * side // (m * m), side * side // (m * m), side * side)
    if vision.video_max_pixels is None:
        frames = max((n for n in range(1, 15) if -(-n // t) * image.tokens <= max_model_len), default=1)
        grid_t = max(-(-frames // t), 1)
        video = Item("video", grid_t * image.tokens, grid_t * image.tokens, grid_t * image.patches)
    elif FORMATTED_VIDEO[0] <= engine_first[:2] <= FORMATTED_VIDEO[1]:
        patches = vision.video_max_pixels // (p * p * t)
        video = Item("video", int(patches // (m * m) * 12.5), patches // (m * m), patches)
    else:
        vside = _side(vision.video_max_pixels // t, p * m) // p
        video = Item("video", vside * vside // (m * m), vside * vside // (m * m), vside * vside)
    return [image, video]


def profiled(model: ModelSpec, engine_first: tuple[int, ...], replica: Replica,
             limits: BatchLimits) -> tuple[Item, int] | None:
    """(the item the profile encodes, how many) or None where no encoder is profiled."""
    if model.vision is None:
        return None
    given = dict(replica.mm_limits or ())
    candidates = [i for i in items(model, model.vision, engine_first, replica.max_model_len)
                  if given.get(i.modality, DEFAULT_LIMIT) > 0]
    if not candidates:
        return None
    item = max(candidates, key=lambda i: i.budget_tokens)  # the first of equals, as max() over the dict
    budget = max(limits.max_num_batched_tokens, item.budget_tokens)
    per_prompt = max(1, min(given.get(item.modality, DEFAULT_LIMIT), replica.max_model_len // item.budget_tokens))
    seqs = limits.max_num_seqs if limits.chunked_prefill else \
        min(limits.max_num_seqs, limits.max_num_batched_tokens // item.budget_tokens)
    return item, max(1, min(budget // item.budget_tokens, seqs * per_prompt))


def encoder_peak(model: ModelSpec, item: Item, count: int, replica: Replica) -> tuple[int, int, str]:
    """(the encoder forward's peak, the encoder cache, the formula) on one rank. The pixels arrive
    in fp32 and are cast to the tower's dtype (4 + 2 B a value); a block holds its input and the
    residual stream (2 x width x 2 B a patch) and, at its peak, the attention's tensors
    (ATTENTION_BYTES) or the MLP's (fc1 and its activation, 2 x intermediate; gate/up and the product
    where gated, 3 x) over the tower's TP share; Qwen3-VL's deepstack outputs stay alive. With
    --mm-encoder-tp-mode data the tower is replicated and the items split over the ranks: the first
    rank encodes ceil(items / tp) of them, whole."""
    vision = model.vision
    assert vision is not None
    width = DTYPE_BYTES.get(replica.dtype, 2)
    data = replica.mm_encoder_tp_mode == "data" and replica.tp > 1
    split = 1 if data else replica.tp
    patches = item.patches * (-(-count // replica.tp) if data else count)
    tokens = patches // vision.merge_size ** 2
    pixels = item.patches * count * vision.patch_values * (4 + width)
    resident = 2 * patches * vision.hidden_size * width
    attention = patches * -(-vision.hidden_size // split) * ATTENTION_BYTES.get(model.family, ATTENTION_BYTES_NEWER)
    mlp = patches * -(-vision.intermediate_size // split) * width * (3 if vision.gated_mlp else 2)
    deepstack = vision.deepstack_layers * tokens * vision.out_hidden_size * width
    cache = item.tokens * count * vision.out_width * width
    formula = (f"{count} {item.modality} x {item.patches:,} patches: pixels {pixels:,} B + blocks "
               f"{resident:,} B + max(attention {attention:,} B, MLP {mlp:,} B)"
               + (f" + deepstack {deepstack:,} B" if deepstack else "") + (" (data-parallel encoder)" if data else ""))
    return pixels + resident + max(attention, mlp) + deepstack, cache, formula


class EncoderProfile:
    """The V1 presets' activation: the text profile (text_activation), and the encoder profile
    before it where the model has a vision tower and a modality is allowed."""

    first: tuple[int, ...] = ()

    def text_activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        raise NotImplementedError

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        text = self.text_activation(model, replica, limits)
        chosen = profiled(model, self.first, replica, limits)  # every rank runs it (profile_run)
        if chosen is None:
            return text
        item, count = chosen
        encoder, cache, formula = encoder_peak(model, item, count, replica)
        if encoder >= cache + text.value:
            return Term(encoder, f"multimodal encoder over {count} {item.modality} of {item.tokens:,} tokens",
                        f"max(encoder {formula}, cache {cache:,} B + {text.value:,} B)")
        return Term(cache + text.value, f"{text.source} + encoder cache of {count} {item.modality}",
                    f"max(encoder {encoder:,} B, cache {cache:,} B + {text.formula})")

