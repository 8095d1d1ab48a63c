"""Falcon-H1 (model_type falcon_h1): attention and a Mamba-2 mixer side by side in every decoder layer.

vLLM (model_executor/models/falcon_h1.py, 0.10.2 to 0.34) builds each layer as FalconH1ParallelHybrid:
a FalconH1AttentionDecoderLayer (an Attention with num_key_value_heads KV heads of head_dim, a KV
cache per token) and a FalconH1SSMDecoderLayer (a MambaMixer2, registered under the prefix of layer
num_hidden_layers + i, a constant state per request), both fed the same input and summed, then a
gated MLP. vLLM's KV cache manager so sees num_hidden_layers attention layers and as many Mamba
layers: here one full group and one Mamba group flagged `parallel` (it adds no decoder layer).

The state is MambaStateShapeCalculator.mamba2_state_shape as FalconH1ForCausalLM
.get_mamba_state_shape_from_config calls it: intermediate_size = mamba_d_ssm (mamba_expand x
hidden_size where the config sets it to null), n_groups = mamba_n_groups, num_heads = mamba_n_heads,
head_dim = mamba_d_head, state_size = mamba_d_state, conv_kernel = mamba_d_conv; in the model's
dtype (mamba2_state_dtype with mamba_cache_dtype and mamba_ssm_cache_dtype "auto").
"""

from __future__ import annotations

from kvplan.errors import SpecError
from kvplan.specs.archs import Architecture
from kvplan.specs.hfconfig import Config, _attention
from kvplan.specs.params import _mamba2_params, _mlp_params

# transformers' FalconH1Config defaults (configuration_falcon_h1.py), where a config leaves a key out
_DEFAULTS = {"mamba_n_heads": 128, "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_conv": 4, "mamba_expand": 2}


def _positive(c: Config, key: str) -> int:
    value = c.int(key, default=_DEFAULTS.get(key))
    if value < 1:
        raise SpecError(f"{c.where}: {key} must be at least 1, not {value}; fix the config")
    return value


def mamba_widths(c: Config) -> tuple[int, int, int]:
    """(mamba_d_ssm, mamba_n_heads, mamba_d_head) as FalconH1Config settles them: d_ssm from the key
    (mamba_expand x hidden_size where it is null), d_head from the key (d_ssm / n_heads where it is
    "auto" or absent); the class refuses a config where n_heads x d_head is not d_ssm, and so does this.

    Where mamba_d_ssm is absent, the class's default (1024) passes that check only when n_heads x
    d_head is 1024: kvplan takes n_heads x d_head, the one width a loadable config can have. (The
    Falcon-H1-0.5B fixture, a subset of the published config, lacks the key: see its SOURCES row.)"""
    heads, d_head = _positive(c, "mamba_n_heads"), c.get("mamba_d_head")
    if "mamba_d_ssm" in c.cfg and c.cfg["mamba_d_ssm"] is None:
        d_ssm = _positive(c, "mamba_expand") * c.int("hidden_size")
    elif c.get("mamba_d_ssm") is not None:
        d_ssm = _positive(c, "mamba_d_ssm")
    elif isinstance(d_head, int) and not isinstance(d_head, bool):
        d_ssm = heads * d_head
    else:
        d_ssm = 1024
    if d_head in (None, "auto"):
        d_head = d_ssm // heads
    if not isinstance(d_head, int) or isinstance(d_head, bool) or d_head < 1 or heads * d_head != d_ssm:
        raise SpecError(f"{c.where}: mamba_n_heads {heads} x mamba_d_head {d_head!r} is not mamba_d_ssm {d_ssm}; "
                        "transformers' FalconH1Config refuses it too: fix the config")
    return d_ssm, heads, d_head


def layer_groups(c: Config, n: int) -> list[dict]:
    """One full-attention group of every layer, and the Mamba-2 mixers beside it (parallel)."""
    d_ssm, heads, _ = mamba_widths(c)
    mamba = {"kind": "mamba", "count": n, "d_inner": d_ssm, "d_state": _positive(c, "mamba_d_state"),
             "d_conv": _positive(c, "mamba_d_conv"), "n_groups": _positive(c, "mamba_n_groups"),
             "num_heads": heads, "parallel": True}
    return [_attention(c, "full", n), mamba]


def params(c: Config, groups: list[dict]) -> int:
    """Embeddings (and an untied lm_head), then per layer: q/k/v/o (no biases: FalconH1's qkv_proj and
    o_proj are bias=False), the Mamba-2 mixer (in_proj, the conv with its bias where mamba_conv_bias,
    dt_bias, A, D, the gated norm only where mamba_rms_norm, out_proj), the gated MLP
    (gate_up_proj + down_proj), input_layernorm and pre_ff_layernorm; the final norm."""
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    attention, mamba = groups
    heads = c.int("num_attention_heads")
    qo = 2 * h * heads * attention["head_dim"]
    kv = 2 * h * attention["num_kv_heads"] * attention["head_dim"]
    mixer = _mamba2_params(mamba, h)
    if not c.get("mamba_rms_norm", default=False):
        mixer -= mamba["d_inner"]  # no gated-norm weight
    if not c.get("mamba_conv_bias", default=True):
        mixer -= mamba["d_inner"] + 2 * mamba["n_groups"] * mamba["d_state"]  # no conv bias
    mlp = _mlp_params(h, c.int("intermediate_size"), gated=True)
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", default=False) else 2)
    return embeddings + attention["count"] * (qo + kv + mixer + mlp + 2 * h) + h


ARCHITECTURE = Architecture(
    model_types=("falcon_h1",), layer_groups=layer_groups, params=params,
    engine_layout="vllm model_executor/models/falcon_h1.py FalconH1ParallelHybrid (an Attention and a MambaMixer2 "
                  "in every layer); FalconH1ForCausalLM.get_mamba_state_shape_from_config -> "
                  "MambaStateShapeCalculator.mamba2_state_shape")
