"""Cross-attention to an image's vision tokens (Llama-3.2 Vision, model_type mllama): the layer kind
:class:`CrossAttention`, and the vision token count a request with an image brings.

The layout follows vLLM 0.10.2, the last release that serves mllama (it was dropped with the V0
engine): vllm/model_executor/models/mllama.py. MllamaTextCrossAttention caches K and V of the
vision encoder's output tokens (an ``Attention`` of ``AttentionType.ENCODER_DECODER``, num_key_value_heads
heads of hidden_size // num_attention_heads), not of the text tokens; MllamaMultiModalProcessor.apply
sets the encoder prompt, and so the cross-attention block table, to ``decode_tiles x token_per_chunk``
tokens, ``calc_token_per_chunk(image_size) = (image_size // 14)**2 + 1`` (the patches of one tile and
its class token) and at most ``max_num_tiles`` tiles an image.
"""

from __future__ import annotations

from typing import Literal

from kvplan.errors import SpecError
from kvplan.specs.base import Tokens
from kvplan.specs.layer_base import _AttentionLayers
from kvplan.units import ceil_div
from kvplan.specs.layer_text import (attention_elements, describe, elements_formula, heads, held_formula, no_state,
                                     state_formula)


def vision_tokens_per_image(image_size: int, patch_size: int, max_num_tiles: int) -> int:
    """Encoder tokens one image of max_num_tiles tiles brings: tiles x (patches a tile + 1 class token),
    vLLM 0.10.2 calc_token_per_chunk x the tiles (560 px, 14 px patches, 4 tiles: 4 x 1,601 = 6,404).
    vLLM divides by 14 whatever the config says; a patch_size that does not divide image_size is refused."""
    if image_size % patch_size:
        raise SpecError(f"vision_config image_size {image_size} is not a multiple of patch_size {patch_size}; "
                        "fix the config")
    return max_num_tiles * ((image_size // patch_size) ** 2 + 1)


class CrossAttention(_AttentionLayers):
    """Cross-attention layers: K and V of a request's vision tokens, as many bytes a token as full
    attention, but ``vision_tokens`` tokens whatever the context (vLLM 0.10.2 MllamaTextCrossAttention).

    ``vision_tokens`` is what a request with one image at max_num_tiles tiles holds (the planning
    case); only the last group of consecutive images is cached (_get_num_image_in_last_group), so
    several images in one group multiply it. A text-only request holds nothing in these layers: its
    encoder prompt is empty and the engine gives it no cross-attention blocks.

    Per layer, as the LayerKind protocol counts. The engines that serve mllama allocate otherwise: vLLM
    V0's block manager takes a request's cross-attention blocks and its text blocks from one pool whose
    every block spans all num_hidden_layers layers (vllm/core/block_manager.py allocate,
    vllm/worker/cache_engine.py), so there a request costs (ceil(ctx / 16) + ceil(vision / 16)) blocks of
    every layer, self and cross alike.
    """

    kind: Literal["cross"] = "cross"
    vision_tokens: Tokens

    def cached_tokens(self, ctx: int) -> int:
        return self.vision_tokens

    def attended_pairs(self, ctx: int) -> int:
        """Every text token attends to every vision token (no causal mask across the two)."""
        return ctx * self.vision_tokens

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """The vision tokens' pages, whatever max_model_len: cdiv(vision_tokens, block_size)."""
        return ceil_div(self.vision_tokens, block_size)


# --- words (kvplan.specs.layer_text) --------------------------------------------------------------------

@describe.register(CrossAttention)
def _(group: CrossAttention) -> str:
    return f"{heads(group)}, cross-attention to {group.vision_tokens:,} vision tokens"


@held_formula.register(CrossAttention)
def _(group: CrossAttention, ctx: int) -> str:
    return f"{group.vision_tokens:,} vision tokens of one image (none for a text-only request), whatever the context"


elements_formula.register(CrossAttention, attention_elements)
state_formula.register(CrossAttention, no_state)
