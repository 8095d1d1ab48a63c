"""Nemotron-NAS (model_type nemotron-nas, DeciLMForCausalLM): Llama blocks that a neural architecture
search reshaped one by one, described by the config's per-layer `block_configs`.

vLLM (model_executor/models/nemotron_nas.py DeciLMDecoderLayer, 0.10.2 to 0.34) reads each layer's
block: an attention that is not `no_op` is a Llama attention with num_attention_heads /
n_heads_in_group KV heads of head_dim (a full-attention KV cache); a `no_op` one is skipped (no
Attention, no cache). An ffn that is not `no_op` is a gated Llama MLP of
_ffn_mult_to_intermediate_size(ffn_mult, hidden_size) (int(2 x ffn_mult x hidden / 3) rounded up
to a multiple of 256), or of ffn.intermediate_size where the block gives no ffn_mult.

Layers are grouped here by their KV heads (one full group per count) and the attention-free ones
into an mlp group. `replace_with_linear` (transformers' remote DeciLM code: one hidden x hidden
linear instead of attention or MLP) caches nothing and is counted as that linear; vLLM has no
branch for it (its DeciLMDecoderLayer builds an attention or an MLP wherever no_op is false), so a
model that uses it does not load there: no published config read here does.
"""

from __future__ import annotations

from collections import Counter

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config


def _blocks(c: Config, n: int) -> list[tuple[dict, dict]]:
    blocks = c.get("block_configs")
    if not isinstance(blocks, list) or len(blocks) != n or not all(
            isinstance(b, dict) and isinstance(b.get("attention"), dict) and isinstance(b.get("ffn"), dict)
            for b in blocks):
        raise SpecError(f"{c.where}: block_configs must list {n} blocks (num_hidden_layers), each with an "
                        "attention and an ffn; fix the config")
    return [(b["attention"], b["ffn"]) for b in blocks]


def _cached(attention: dict) -> bool:
    return not attention.get("no_op") and not attention.get("replace_with_linear")


def kv_heads(c: Config, i: int, attention: dict) -> int:
    """num_attention_heads // n_heads_in_group, as DeciLMDecoderLayer computes it."""
    heads, group = c.int("num_attention_heads"), attention.get("n_heads_in_group")
    if not isinstance(group, int) or isinstance(group, bool) or group < 1 or heads % group:
        raise SpecError(f"{c.where}: block_configs[{i}].attention.n_heads_in_group {group!r} must divide "
                        f"num_attention_heads {heads}; fix the config")
    return heads // group


def mlp_width(c: Config, i: int, ffn: dict) -> int:
    """vLLM's _ffn_mult_to_intermediate_size: int(2 x ffn_mult x hidden / 3), then _find_multiple(., 256)."""
    mult, hidden = ffn.get("ffn_mult"), c.int("hidden_size")
    if mult is None:
        size = ffn.get("intermediate_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SpecError(f"{c.where}: block_configs[{i}].ffn needs an ffn_mult or an intermediate_size; fix the config")
        return size
    if isinstance(mult, bool) or not isinstance(mult, (int, float)) or not 0 < mult < 1024:
        raise SpecError(f"{c.where}: block_configs[{i}].ffn.ffn_mult {mult!r} is not a positive number; fix the config")
    size = int(2 * mult * hidden / 3)  # the same float arithmetic, in the same order, as vLLM's
    return size if size % 256 == 0 else size + 256 - size % 256


def mlp_widths(c: Config) -> list[int]:
    """Each layer's MLP width (0: no MLP, a no_op or a linear ffn)."""
    blocks = _blocks(c, c.int("num_hidden_layers"))
    return [0 if ffn.get("no_op") or ffn.get("replace_with_linear") else mlp_width(c, i, ffn)
            for i, (_, ffn) in enumerate(blocks)]


def layer_groups(c: Config, n: int) -> list[dict]:
    """A full group per KV head count (in the order they first appear), then the layers with no cache."""
    blocks = _blocks(c, n)
    heads = c.int("num_attention_heads")
    head_dim = c.get("head_dim") or c.int("hidden_size") // heads  # LlamaAttention's rule
    counts = Counter(kv_heads(c, i, a) for i, (a, _) in enumerate(blocks) if _cached(a))
    groups = [{"kind": "full", "count": k, "num_kv_heads": kv, "head_dim": head_dim} for kv, k in counts.items()]
    uncached = n - sum(counts.values())
    return groups + ([{"kind": "mlp", "count": uncached}] if uncached else [])


def intermediate_size(c: Config) -> int:
    """The widest layer's MLP: what a forward pass's largest transient takes."""
    return max(mlp_widths(c), default=0) or c.int("hidden_size")


def params(c: Config, groups: list[dict]) -> int:
    """Embeddings and an untied lm_head, then per layer what its block holds: an attention (q, k, v, o
    with its KV heads; no biases) or a hidden x hidden linear, and its input_layernorm; a gated MLP
    (3 x hidden x width) or a linear, and its post_attention_layernorm; the final norm."""
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    heads = c.int("num_attention_heads")
    head_dim = c.get("head_dim") or h // heads
    total = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2) + h
    for i, ((attention, ffn), width) in enumerate(zip(_blocks(c, c.int("num_hidden_layers")), mlp_widths(c))):
        if _cached(attention):
            total += 2 * h * heads * head_dim + 2 * h * kv_heads(c, i, attention) * head_dim + h
        elif attention.get("replace_with_linear"):
            total += h * h + h
        if width:
            total += 3 * h * width + h
        elif ffn.get("replace_with_linear") and not ffn.get("no_op"):
            total += h * h + h
    return total


ARCHITECTURE = Architecture(
    model_types=("nemotron-nas",), layer_groups=layer_groups, params=params, intermediate_size=intermediate_size,
    engine_layout="vllm model_executor/models/nemotron_nas.py DeciLMDecoderLayer (an attention of "
                  "num_attention_heads // n_heads_in_group KV heads unless no_op; _ffn_mult_to_intermediate_size)")
