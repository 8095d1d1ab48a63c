"""A config.json holds only what differs from its class: absent keys take transformers' class
defaults per model_type (kvplan.specs.defaults), keys set to null stay null, and the derived rules
(head_dim = hidden / heads where the class has no default) still apply."""

from __future__ import annotations

import json

import pytest

from kvplan.calc.kv import kv_size
from kvplan.specs.defaults import CLASS_DEFAULTS, with_class_defaults
from kvplan.specs.hfconfig import SUPPORTED
from kvplan.specs.importer import import_model


def imported(tmp_path, config: dict):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["TestForCausalLM"], **config}))
    return import_model(tmp_path).spec


def groups(spec) -> list[tuple]:
    return [(g.kind, g.count, getattr(g, "num_kv_heads", None), getattr(g, "head_dim", None),
             getattr(g, "window", None)) for g in spec.layers]


def test_gemma3_12b_takes_head_dim_256_from_its_class(tmp_path):
    """Gemma-3-12B's text_config leaves head_dim out: 3,840 / 16 heads would be 240, the class says 256."""
    spec = imported(tmp_path, {"model_type": "gemma3", "text_config": {
        "model_type": "gemma3_text", "hidden_size": 3840, "intermediate_size": 15360, "num_attention_heads": 16,
        "num_hidden_layers": 48, "num_key_value_heads": 8, "sliding_window": 1024}})
    # sliding_window_pattern 6 (class default): layers 6, 12, ... 48 global: 40 sliding, 8 full
    assert groups(spec) == [("sliding", 40, 8, 256, 1024), ("full", 8, 8, 256, None)]
    # 32k: 40 x 1,024 x (2 x 8 x 256 x 2 B) + 8 x 32,768 x 8,192 B = 335,544,320 + 2,147,483,648
    assert kv_size(spec, 32768).bytes_per_request_per_gpu == 2_483_027_968  # 2.3125 GiB, not 2.17
    assert spec.vocab_size == 262_208 and spec.tie_word_embeddings  # the class's, too


def test_gemma3_default_head_counts(tmp_path):
    """A text_config that relies on the class for its heads: 8 attention, 4 KV (Gemma3TextConfig)."""
    spec = imported(tmp_path, {"model_type": "gemma3", "text_config": {"hidden_size": 2560, "num_hidden_layers": 34}})
    assert spec.num_attention_heads == 8 and {g.num_kv_heads for g in spec.layers} == {4}


def test_qwen3_head_dim_defaults_to_128(tmp_path):
    # 2,560 / 32 heads would be 80; Qwen3Config says 128
    spec = imported(tmp_path, {"model_type": "qwen3", "hidden_size": 2560, "num_attention_heads": 32,
                               "num_key_value_heads": 8, "num_hidden_layers": 36, "intermediate_size": 9728})
    assert groups(spec) == [("full", 36, 8, 128, None)]


def test_llama_head_dim_is_derived(tmp_path):
    spec = imported(tmp_path, {"model_type": "llama", "hidden_size": 2048, "num_attention_heads": 32,
                               "num_key_value_heads": 8, "num_hidden_layers": 16, "intermediate_size": 8192})
    assert groups(spec) == [("full", 16, 8, 64, None)]  # 2,048 / 32


def test_mistral_windows_every_layer_unless_the_file_says_null(tmp_path):
    base = {"model_type": "mistral", "num_hidden_layers": 32}
    assert groups(imported(tmp_path, base)) == [("sliding", 32, 8, 128, 4096)]  # 4,096 / 32 heads = 128
    assert groups(imported(tmp_path, {**base, "sliding_window": None})) == [("full", 32, 8, 128, None)]


def test_qwen2_kv_heads_default_is_the_classs_not_the_heads(tmp_path):
    """Qwen2Config's num_key_value_heads defaults to 32 when absent (null would mean the heads)."""
    spec = imported(tmp_path, {"model_type": "qwen2", "hidden_size": 4096, "num_attention_heads": 32,
                               "num_hidden_layers": 4})
    assert groups(spec)[0][2] == 32


def test_gpt_oss_defaults(tmp_path):
    spec = imported(tmp_path, {"model_type": "gpt_oss", "layer_types": ["sliding_attention", "full_attention"] * 12,
                               "num_hidden_layers": 24, "num_local_experts": 32})
    assert groups(spec) == [("sliding", 12, 8, 64, 128), ("full", 12, 8, 64, None)]


def test_qwen3_next_defaults(tmp_path):
    spec = imported(tmp_path, {"model_type": "qwen3_next", "num_experts": 512, "num_experts_per_tok": 10,
                               "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512})
    full, gdn = spec.layers
    assert (full.count, full.num_kv_heads, full.head_dim) == (12, 2, 256)  # 48 layers, every 4th full
    assert (gdn.count, gdn.num_k_heads, gdn.num_v_heads, gdn.head_k_dim, gdn.conv_kernel) == (36, 16, 32, 128, 4)


@pytest.mark.parametrize("family", sorted(f for f in CLASS_DEFAULTS if f in SUPPORTED and f not in (
    "jamba", "nemotron_h", "gemma3", "llama4", "qwen3_next")))
def test_a_config_of_model_type_alone_takes_every_default(tmp_path, family):
    """Only the model_type: every cache-shaping key comes from the class (hybrids need more keys)."""
    spec = imported(tmp_path, {"model_type": family})
    defaults = with_class_defaults({}, family)  # GPT-J's own names under the standard ones (its attribute_map)
    assert spec.num_layers == defaults["num_hidden_layers"]
    assert spec.num_attention_heads == defaults["num_attention_heads"]
    assert spec.vocab_size == defaults["vocab_size"] and spec.hidden_size == defaults["hidden_size"]


def test_every_default_family_is_one_kvplan_reads():
    assert set(CLASS_DEFAULTS) <= set(SUPPORTED)


def test_gptj_reads_its_own_key_names_as_its_class_maps_them(tmp_path):
    """GPTJConfig names its sizes n_embd, n_head, n_layer and n_positions (attribute_map gives them as
    hidden_size, num_attention_heads, num_hidden_layers, max_position_embeddings); n_inner null is 4 x n_embd.
    A config of two layers leaves the rest to the class: 4,096 wide, 16 heads of 4,096 / 16 = 256,
    50,400 tokens, 2,048 positions, an untied lm_head."""
    spec = imported(tmp_path, {"model_type": "gptj", "n_layer": 2, "n_inner": None})
    assert groups(spec) == [("full", 2, 16, 256, None)]
    assert (spec.hidden_size, spec.intermediate_size, spec.vocab_size, spec.max_context) == (4096, 16384, 50400, 2048)
    assert not spec.tie_word_embeddings
    # 2 x 2 (K, V) x 16 x 256 x 2 B = 32,768 B a token
    assert kv_size(spec, 1).bytes_per_request_per_gpu == 32_768
    # embeddings and lm_head 2 x 50,400 x 4,096 = 412,876,800; a layer's q, k, v, o 4 x 4,096^2 = 67,108,864 and
    # its ungated MLP 2 x 4,096 x 16,384 = 134,217,728; 2 x 2 + 1 norms of 4,096 = 20,480 (no biases counted)
    assert spec.params_total == 412_876_800 + 2 * (67_108_864 + 134_217_728) + 20_480
    # the file's own names win over the class's, as every key it sets
    wide = imported(tmp_path, {"model_type": "gptj", "n_layer": 1, "n_embd": 2048, "n_head": 8, "n_positions": 1024})
    assert groups(wide) == [("full", 1, 8, 256, None)] and wide.max_context == 1024
