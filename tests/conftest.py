"""Factories with hand-checkable defaults, and the packaged catalog."""

from __future__ import annotations

import pytest

import os
import tempfile

from kvplan.specs.catalog import load_catalog
from kvplan.specs.model import ModelSpec

# No test touches the internet: the Hub is off and the Hugging Face cache is an empty folder of the
# run's own, unless a test sets up its own (tests/test_resolve.py: a real cache layout, a local Hub).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="kvplan-test-hf-")

# A Llama-3-8B-shaped model: 32 layers, 8 KV heads of 128, bf16 -> 131,072 B per token.
BASE_MODEL = dict(
    name="test-model", display_name="Test-Model", family="test", architecture="TestForCausalLM",
    source="tests", hidden_size=4096, intermediate_size=14336, vocab_size=128256, num_layers=32,
    num_attention_heads=32, params_total=8_030_261_248, dtype="bf16", max_context=8192,
    layers=[{"kind": "full", "count": 32, "num_kv_heads": 8, "head_dim": 128}],
)


def make_model(**overrides) -> ModelSpec:
    fields = {**BASE_MODEL, **overrides}
    if "layers" in overrides and "num_layers" not in overrides:
        fields["num_layers"] = sum(g["count"] for g in overrides["layers"])
    return ModelSpec.model_validate(fields)


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()
