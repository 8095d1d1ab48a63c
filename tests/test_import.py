"""`kvplan import`: published config.json files (tests/fixtures/hf_configs, sources in SOURCES.md)
become specs whose cache-relevant fields equal the packaged database's; exact parameter counts from
safetensors headers; unknown architectures refused."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import pytest

from kvplan.cli import main
from kvplan.errors import SpecError
from kvplan.specs.checkpoint import ST_WIDTHS
from kvplan.specs.importer import import_model

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
CONFIGS = sorted(p.name for p in FIXTURES.iterdir() if (p / "config.json").is_file())


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file (8-byte length + JSON header + data); the data is a hole (a sparse file of
    the size the header claims: the importer reads headers only, and refuses a file shorter than them)."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = ST_WIDTHS[dtype] * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    os.truncate(path, 8 + len(raw) + offset)


def model_folder(tmp_path: Path, fixture: str, tensors: dict) -> Path:
    folder = tmp_path / fixture
    folder.mkdir()
    (folder / "config.json").write_text((FIXTURES / fixture / "config.json").read_text())
    write_safetensors(folder / "model.safetensors", tensors)
    return folder


def layer_shapes(spec) -> list[tuple]:
    return sorted(tuple(sorted(g.model_dump().items())) for g in spec.layers)


@pytest.mark.parametrize("name", CONFIGS)
def test_import_matches_packaged_spec(catalog, name, tmp_path):
    folder = FIXTURES / name
    if name == "jamba-v0.1":  # a Mamba hybrid needs its checkpoint's headers for a parameter count
        folder = model_folder(tmp_path, name, {"all": ("BF16", [catalog.model(name).params_total])})
    imported = import_model(folder).spec
    packaged = catalog.model(name)
    assert layer_shapes(imported) == layer_shapes(packaged)
    for field in ("hidden_size", "num_layers", "num_attention_heads", "vocab_size", "tie_word_embeddings", "mtp_layers"):
        assert getattr(imported, field) == getattr(packaged, field), field
    assert (imported.moe is None) == (packaged.moe is None)
    if imported.moe:
        assert imported.moe.num_experts == packaged.moe.num_experts
        assert imported.moe.experts_per_token == packaged.moe.experts_per_token


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "jamba-v0.1"])
def test_parameter_estimate_is_close_to_the_published_count(catalog, name):
    """The architecture formula (no biases, no vision tower) within 2% of the published count."""
    imported = import_model(FIXTURES / name).spec
    packaged = catalog.model(name)
    assert abs(imported.params_total - packaged.params_total) / packaged.params_total < 0.02
    if packaged.params_active:
        assert abs(imported.params_active - packaged.params_active) / packaged.params_active < 0.05


def test_llama3_8b_parameter_formula_is_exact():
    # embed + lm_head: 2 x 128,256 x 4,096 = 1,050,673,152
    # per layer: q,o 2 x 4096^2 + k,v 2 x 4096 x 1024 + MLP 3 x 4096 x 14336 + 2 norms x 4096 = 218,112,000
    # total: 1,050,673,152 + 32 x 218,112,000 + 4,096 (final norm) = 8,030,261,248
    assert import_model(FIXTURES / "llama3-8b").spec.params_total == 8_030_261_248


def test_mamba_hybrid_needs_safetensors():
    with pytest.raises(SpecError, match="cannot count a Mamba hybrid's parameters from its config alone"):
        import_model(FIXTURES / "jamba-v0.1")


def test_safetensors_headers_give_the_exact_count(tmp_path):
    model = tmp_path / "tiny-llama"
    model.mkdir()
    config = json.loads((FIXTURES / "llama3-8b" / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config))
    write_safetensors(model / "model-00001-of-00002.safetensors", {"a": ("BF16", [3, 5]), "b": ("BF16", [7])})
    write_safetensors(model / "model-00002-of-00002.safetensors", {"c": ("F32", [2, 2, 2])})
    result = import_model(model)
    assert result.spec.params_total == 3 * 5 + 7 + 2 * 2 * 2  # 30
    assert result.spec.dtype == "bf16"  # 22 of 30 parameters
    assert result.spec.name == "tiny-llama"
    assert "counted from the *.safetensors headers" in result.notes[0]


def test_moe_active_params_from_exact_total(tmp_path):
    folder = model_folder(tmp_path, "mixtral-8x7b", {"w": ("BF16", [46_702_792_704])})
    spec = import_model(folder).spec
    # unused: 32 MoE layers x (8 - 2) experts x 3 x 4096 x 14336 = 33,822,867,456
    assert spec.params_active == 46_702_792_704 - 33_822_867_456 == 12_879_925_248


def test_jamba_active_params_match_the_database(catalog, tmp_path):
    folder = model_folder(tmp_path, "jamba-v0.1", {"w": ("BF16", [51_570_323_328])})
    # MoE on every 2nd layer: 16 layers x (16 - 2) experts x 3 x 4096 x 14336 = 39,460,012,032 unused
    assert import_model(folder).spec.params_active == 51_570_323_328 - 39_460_012_032
    assert catalog.model("jamba-v0.1").params_active == 12_110_311_296


def test_truncated_checkpoint_is_refused(tmp_path):
    folder = model_folder(tmp_path, "mixtral-8x7b", {"w": ("BF16", [1000])})
    with pytest.raises(SpecError, match="fewer than the experts its config describes"):
        import_model(folder)


def test_unknown_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(SpecError, match="architecture 'bert' is not one kvplan can describe"):
        import_model(tmp_path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"model_type": "llama", "hidden_size": "big"}', "hidden_size: expected a whole number of at least 1, got 'big'"),
    ('{"model_type": "llama", "num_attention_heads": 0}', "num_attention_heads: expected a whole number of at least 1, got 0"),
    ('{"model_type": "llama", "num_hidden_layers": true}', "num_hidden_layers: expected a whole number of at least 1, got True"),
    ('{"model_type": "llama4_text", "no_rope_layers": "abc"}', "no_rope_layers: expected a list of ints, got 'abc'"),
    ('{"model_type": "llama", "architectures": 3}', "architectures: expected a list of strs, got '3'"),
])
def test_bad_config(tmp_path, content, message):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(SpecError, match=message):
        import_model(tmp_path / "config.json")


def test_missing_config(tmp_path):
    with pytest.raises(SpecError, match="no config.json found"):
        import_model(tmp_path)


def test_import_cli_writes_a_spec_the_catalog_uses(tmp_path, capsys):
    assert main(["import", str(FIXTURES / "mistral-7b-v0.1"), "--name", "my-mistral", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "models" / "my-mistral.yaml").is_file()
    capsys.readouterr()
    assert main(["size", "my-mistral", "--ctx", "32k", "--json", "--specs", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bytes_per_request_per_gpu"] == 32 * 4096 * 2 * 8 * 128 * 2  # window 4096, not 32k
