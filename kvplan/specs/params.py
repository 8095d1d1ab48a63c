"""Parameter counts from a config alone, when no safetensors header is at hand: embeddings,
attention (or latents, or linear attention), MLP or experts, norms. Biases, position tables and
quantization scales are not counted: an estimate, and every spec built from one says so."""

from __future__ import annotations

from collections.abc import Iterable

from kvplan.errors import SpecError
from kvplan.specs.hfconfig import Config, nemotron_pattern


def _mlp_params(h: int, inter: int, gated: bool) -> int:
    return (3 if gated else 2) * h * inter


def _gdn_params(group: dict, h: int) -> int:
    """Gated DeltaNet: in_proj_qkvz, in_proj_ba, the causal conv, dt_bias and A_log, the gated norm,
    out_proj (transformers' Qwen3NextGatedDeltaNet)."""
    key, value = group["num_k_heads"] * group["head_k_dim"], group["num_v_heads"] * group["head_v_dim"]
    conv = (2 * key + value) * group["conv_kernel"]
    return h * (2 * key + 2 * value) + h * 2 * group["num_v_heads"] + conv + 2 * group["num_v_heads"] \
        + group["head_v_dim"] + value * h


def _mamba2_params(group: dict, h: int) -> int:
    """Mamba-2 mixer: in_proj (x, z, B, C, dt), the conv with its bias, dt_bias, A_log and D, the
    gated norm, out_proj."""
    inner, state, heads, groups = group["d_inner"], group["d_state"], group["num_heads"], group["n_groups"]
    conv_dim = inner + 2 * groups * state
    return h * (2 * inner + 2 * groups * state + heads) + conv_dim * (group["d_conv"] + 1) + 3 * heads + inner + inner * h


def _nemotron_h_params(c: Config, groups: list[dict]) -> int:
    """Nemotron-H: each layer is one block (Mamba-2, attention or a non-gated relu2 MLP) and one norm."""
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    per_kind = {"mamba": lambda g: _mamba2_params(g, h), "full": lambda g: _attn_params(c, g, h),
                "mlp": lambda g: _mlp_params(h, c.int("intermediate_size"), gated=False)}
    blocks = sum(g["count"] * (per_kind[g["kind"]](g) + h) for g in groups)
    moe = _nemotron_moe_layers(c)
    if moe:  # 'E' blocks are mixtures of relu2 experts (Nemotron-3), counted here instead of as MLPs
        count, per_layer = moe
        blocks += count * (per_layer - _mlp_params(h, c.int("intermediate_size"), gated=False))
    return vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2) + blocks + h


def _nemotron_moe_layers(c: Config) -> tuple[int, int] | None:
    """('E' layers, parameters of one: routed experts, the shared expert, the router)."""
    count = str(nemotron_pattern(c) or "").count("E")
    if not count:
        return None
    h, experts = c.int("hidden_size"), c.int("n_routed_experts")
    shared = c.get("moe_shared_expert_intermediate_size", default=0) or 0
    latent = c.get("moe_latent_size")  # LatentMoE (Nemotron-3 Super): experts work in a narrower space
    width = latent if isinstance(latent, int) and latent > 0 else h
    projections = 2 * h * width if width != h else 0
    per_layer = (experts * _mlp_params(width, c.int("moe_intermediate_size"), gated=False) + 2 * h * shared
                 + h * experts + projections)
    return count, per_layer


def _indexer_params(group: dict, h: int) -> int:
    """DeepSeek sparse attention's lightning indexer, on a layer that has one (vLLM deepseek_v2.py
    Indexer): wq_b [q_lora_rank -> heads x dim], wk [hidden -> dim], k_norm (a LayerNorm: weight and
    bias) and weights_proj [hidden -> heads]."""
    dim, heads = group.get("index_head_dim"), group.get("index_n_heads")
    if not dim or not heads:
        return 0
    return group.get("q_lora_rank", 0) * heads * dim + h * dim + 2 * dim + h * heads


def _attn_params(c: Config, group: dict, h: int) -> int:
    if group["kind"] == "gdn":
        return _gdn_params(group, h)
    if group["kind"] == "mla":
        heads, rope, nope, v = group["num_heads"], group["qk_rope_head_dim"], group["qk_nope_head_dim"], group["v_head_dim"]
        q_rank, kv_rank = c.get("q_lora_rank"), group["kv_lora_rank"]
        q = h * q_rank + q_rank + q_rank * heads * (nope + rope) if q_rank else h * heads * (nope + rope)
        return q + h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v) + heads * v * h + _indexer_params(group, h)
    heads = c.int("num_attention_heads", "n_head")
    gated_output = c.get("model_type") == "qwen3_next" or c.get("attn_output_gate")
    gate = 2 if gated_output else 1  # a gated attention output: q_proj twice as wide
    k_dim = group["head_dim"]
    v_dim = group.get("v_head_dim") or k_dim  # V's head size where it differs from K's (MiMo-V2)
    q, o = gate * h * heads * k_dim, heads * v_dim * h
    kv = h * group["num_kv_heads"] * (k_dim + v_dim)
    return q + o + kv


def estimate_params(c: Config, groups: list[dict]) -> int:
    """Total parameters from the architecture: embeddings, attention, MLP or experts, norms.

    Biases, position tables and quantization scales are not counted: an estimate, said so.
    """
    if c.get("model_type") == "nemotron_h":
        return _nemotron_h_params(c, groups)
    if any(g["kind"] == "mamba" for g in groups):
        raise SpecError(f"{c.where}: cannot count a Mamba hybrid's parameters from its config alone; "
                        "pass the model folder with its *.safetensors files")
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    n = sum(g["count"] for g in groups)
    attention = sum(g["count"] * _attn_params(c, g, h) for g in groups)
    inter = c.int("intermediate_size", "ffn_dim", "n_inner", default=4 * h)
    moe = moe_block(c)
    if moe is None:
        mlp = n * _mlp_params(h, inter, gated=c.get("model_type") not in ("opt", "falcon", "phi", "gptj"))
    else:
        moe_layers = _moe_layer_count(c, n)
        routed = moe["num_experts"] * _mlp_params(h, moe["expert_intermediate_size"], True)
        shared_size = c.get("shared_expert_intermediate_size")  # Qwen MoE: one wider shared expert, gated
        shared = (_mlp_params(h, shared_size, True) + h if shared_size
                  else moe["shared_experts"] * _mlp_params(h, moe["expert_intermediate_size"], True))
        mlp = (n - moe_layers) * _mlp_params(h, inter, True) + moe_layers * (routed + shared + h * moe["num_experts"])
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2)
    return embeddings + attention + mlp + (2 * n + 1) * h


def _moe_layer_count(c: Config, n: int) -> int:
    """Layers whose MLP is a mixture of experts, by each family's key."""
    if c.get("model_type") == "jamba":
        period, offset = c.int("expert_layer_period", default=1), c.int("expert_layer_offset", default=0)
        return sum(1 for i in range(n) if i % period == offset)
    if c.get("first_k_dense_replace") is not None:  # DeepSeek
        return n - c.int("first_k_dense_replace")
    if isinstance(c.get("moe_layer_freq"), list):  # MiMo-V2: 1 a layer whose MLP is experts
        return sum(1 for flag in c.get("moe_layer_freq")[:n] if flag)
    if c.get("mlp_only_layers"):  # Qwen MoE
        return n - len(c.get("mlp_only_layers"))
    if c.get("model_type") == "nemotron_h":
            return str(nemotron_pattern(c) or "").count("E")
    return n // c.int("interleave_moe_layer_step", "decoder_sparse_step", default=1)


def inactive_expert_params(c: Config, n: int, moe_layers: int | None = None) -> int:
    """Parameters of the routed experts a token does not use: total - active. moe_layers: the MoE
    layers where an architecture module counts them (else the shared count)."""
    moe = moe_block(c)
    if moe is None:
        return 0
    gated = c.get("model_type") != "nemotron_h"  # Nemotron-3's experts are two relu2 matrices
    latent = c.get("moe_latent_size")
    width = latent if isinstance(latent, int) and latent > 0 else c.int("hidden_size")
    expert = _mlp_params(width, moe["expert_intermediate_size"], gated)
    layers = _moe_layer_count(c, n) if moe_layers is None else moe_layers
    return layers * (moe["num_experts"] - moe["experts_per_token"]) * expert


def moe_block(c: Config) -> dict | None:
    experts = c.get("num_local_experts", "n_routed_experts", "num_experts")
    if not experts:
        return None
    top_k = c.int("num_experts_per_tok", "experts_per_token", "num_experts_per_token", "top_k_experts")  # Gemma-4: the last
    size = c.int("moe_intermediate_size", "intermediate_size")
    one_shared = c.get("model_type", "").startswith("llama4") or c.get("shared_expert_intermediate_size")
    shared = c.get("n_shared_experts", "num_shared_experts", default=0) or (1 if one_shared else 0)
    return {"num_experts": experts, "experts_per_token": top_k, "shared_experts": shared,
            "expert_intermediate_size": size}


def tower_params(vision: object, text_hidden: int) -> int:
    """A vision tower's parameters from its vision_config (ViT blocks: q/k/v/o, the MLP, two norms;
    patch and position embeddings; a projector to the language model's width). An estimate, within
    a few percent for SigLIP, Llama-4's and Qwen-VL's towers; 0 without a vision_config."""
    if not isinstance(vision, dict):
        return 0
    get = lambda *keys, default=0: next((vision[k] for k in keys if isinstance(vision.get(k), int)), default)  # noqa: E731
    h, depth = get("hidden_size", "embed_dim", "width"), get("num_hidden_layers", "depth")
    if not h or not depth:
        return 0
    inter = get("intermediate_size", default=4 * h)
    gated = str(vision.get("hidden_act", "")).lower() in ("silu", "swiglu")
    blocks = depth * (4 * h * h + (3 if gated else 2) * h * inter + 4 * h)
    patch = get("patch_size", "spatial_patch_size", default=14)
    channels = get("num_channels", "in_chans", "in_channels", default=3)
    patches = channels * patch * patch * get("temporal_patch_size", default=1) * h
    image = get("image_size")
    positions = (image // patch) ** 2 * h if image else 0
    merge = get("spatial_merge_size", default=1) ** 2  # Qwen-VL merges 2 x 2 patches before projecting
    out = get("out_hidden_size", default=text_hidden)
    projector = (h * merge) ** 2 + h * merge * out if merge > 1 else h * out
    return blocks + patches + positions + projector


def stacked_params(c: Config, layers: Iterable[int]) -> int:
    """A decoder stack's parameters from each layer's own: the embeddings (and an untied LM head), the
    layers, the final norm."""
    h = c.int("hidden_size")
    embeddings = c.int("vocab_size") * h * (1 if c.get("tie_word_embeddings", default=False) else 2)
    return embeddings + sum(layers) + h
