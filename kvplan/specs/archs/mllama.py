"""Llama-3.2 Vision (model_type mllama): a Llama text model whose text_config.cross_attention_layers
attend to the vision encoder's output instead of the text, and the vision tower's parameters.

Layers as vLLM 0.10.2 builds them (vllm/model_executor/models/mllama.py MllamaTextModel): of
num_hidden_layers, those listed in cross_attention_layers are MllamaCrossAttentionDecoderLayer (K/V of
the image's vision tokens, :class:`~kvplan.specs.kinds.mllama.CrossAttention`), the rest Llama
self-attention layers (K/V of the text). Both have num_key_value_heads heads of hidden_size //
num_attention_heads."""

from __future__ import annotations

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config, _attention
from kvplan.specs.kinds.mllama import vision_tokens_per_image


def _cross_layers(c: Config, n: int) -> int:
    """How many of the n layers are cross-attention, from text_config.cross_attention_layers."""
    layers = c.get("cross_attention_layers")
    if not isinstance(layers, list) or not layers or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in layers) or len(set(layers)) != len(layers):
        raise SpecError(f"{c.where}: text_config.cross_attention_layers must list distinct layer indices below "
                        f"num_hidden_layers {n}; fix the config")
    return len(layers)


def _vision(c: Config) -> Config:
    vision = c.get("vision_config")
    if not isinstance(vision, dict):
        raise SpecError(f"{c.where}: an mllama config needs a vision_config (image_size, patch_size, max_num_tiles); "
                        "fix the config")
    return Config(vision, f"{c.where} vision_config")


def vision_tokens(c: Config) -> int:
    """A request's vision tokens for one image at max_num_tiles tiles (vLLM 0.10.2 MllamaMultiModalProcessor)."""
    v = _vision(c)
    return vision_tokens_per_image(v.int("image_size"), v.int("patch_size"), v.int("max_num_tiles"))


def layer_groups(c: Config, n: int) -> list[dict]:
    cross = _cross_layers(c, n)
    groups = [_attention(c, "full", n - cross),
              _attention(c, "cross", cross, head_dim=c.int("hidden_size") // c.int("num_attention_heads"),
                         vision_tokens=vision_tokens(c))]
    return [g for g in groups if g["count"]]


def tower_params(vision: object, text_hidden: int) -> int:
    """MllamaVisionModel and the projector, counted from transformers' modeling_mllama: a patch conv
    (no bias), the class token, position embeddings per patch and per (aspect ratio, tile, patch), two
    tile embeddings with gates, num_hidden_layers local and num_global_layers gated encoder layers
    (q/k/v/o without bias, a biased GELU MLP, two LayerNorms), two LayerNorms, and the projector from
    vision_output_dim to the text width with its bias. Llama-3.2-11B-Vision: 895,028,755, which with
    its text model makes the 10,670,220,835 its safetensors hold."""
    if not isinstance(vision, dict):
        return 0
    v = Config(vision, "vision_config")
    h, inter, tiles = v.int("hidden_size"), v.int("intermediate_size"), v.int("max_num_tiles")
    patches = (v.int("image_size") // v.int("patch_size")) ** 2 + 1
    ratios = len(v.get("supported_aspect_ratios", default=[])) + 1  # max_aspect_ratio_id + 1 embedding rows
    conv = v.int("num_channels", default=3) * v.int("patch_size") ** 2 * h
    positions = patches * h + 1 + ratios * tiles * patches * h + 2 * (ratios * tiles * h + 1)
    layer = 4 * h * h + 2 * h * inter + inter + h + 4 * h
    encoders = v.int("num_hidden_layers") * layer + v.int("num_global_layers") * (layer + 2)
    projector = v.int("vision_output_dim") * text_hidden + text_hidden
    return conv + h + positions + 4 * h + encoders + projector


ARCHITECTURE = Architecture(
    model_types=("mllama", "mllama_text_model"),
    layer_groups=layer_groups,
    engine_layout="vLLM 0.10.2 vllm/model_executor/models/mllama.py: MllamaTextCrossAttention "
                  "(AttentionType.ENCODER_DECODER) and MllamaMultiModalProcessor.apply (encoder tokens = tiles x "
                  "calc_token_per_chunk)",
    tower_params=tower_params,
)
