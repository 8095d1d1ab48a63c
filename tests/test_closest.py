"""A config kvplan cannot describe is refused with the modelled architecture closest to it named:
by what the config caches first (the most specific layout wins), then by the model_type's name."""

from __future__ import annotations

import json

import pytest

from kvplan.errors import SpecError
from kvplan.specs.archs import ARCHITECTURES
from kvplan.specs.closest import closest_architecture
from kvplan.specs.hfconfig import SUPPORTED
from kvplan.specs.importer import import_model

KNOWN = (*SUPPORTED, *ARCHITECTURES)


@pytest.mark.parametrize("config, closest", [
    ({"kv_lora_rank": 512, "sliding_window": 4096}, "deepseek_v3"),  # the latent outranks the window
    ({"attn_type_list": [0, 1], "num_local_experts": 32}, "qwen3_next"),  # a linear state outranks experts
    ({"mamba_d_state": 128, "layer_types": ["full_attention"]}, "nemotron_h"),
    ({"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 512}, "gemma3"),
    ({"sliding_window": 4096}, "mistral"),
    ({"q_lora_rank": 1024, "sliding_window": 128}, "deepseek_v32"),
    ({"num_local_experts": 8}, "mixtral"),
    ({"sliding_window": None, "num_experts": 0}, "llama"),  # empty keys say nothing
])
def test_the_most_specific_layout_a_config_names_wins(config, closest):
    assert closest_architecture("zzz_unknown", config, KNOWN)[0] == closest


def test_without_a_layout_the_nearest_name_wins_and_else_plain_llama():
    assert closest_architecture("qwen4", {}, KNOWN) == ("qwen3", "the nearest name")
    assert closest_architecture("bert", {}, KNOWN)[0] == "llama"


def test_the_refusal_names_the_closest_and_how_many_types_kvplan_reads(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "zzz_linear", "attn_type_list": [0, 0, 1]}))
    with pytest.raises(SpecError) as refused:
        import_model(tmp_path)
    message = str(refused.value)
    assert f"it reads {len(KNOWN)} model_types" in message
    assert ("the closest it models is 'qwen3_next' (linear-attention layers beside full attention, as this "
            "config's attn_type_list)") in message
