"""The spec database: every packaged file valid and round-tripping, names resolving forgivingly,
user folders extending and overriding, malformed files reported one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kvplan.errors import NotFoundError, SpecError
from kvplan.specs.catalog import load_catalog, name_key, packaged_specs_dir, spec_to_yaml
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.specs.yamlio import load_spec_file

PACKAGED = packaged_specs_dir()
MODEL_FILES = sorted((PACKAGED / "models").glob("*.yaml"))
GPU_FILES = sorted((PACKAGED / "gpus").glob("*.yaml"))

REQUIRED_MODELS = """llama2-7b llama2-13b llama2-70b llama3-8b llama3-70b llama3.1-8b llama3.1-70b
llama3.1-405b llama3.2-1b llama3.2-3b llama3.3-70b llama4-scout mistral-7b-v0.1 mistral-7b-v0.3
mixtral-8x7b mixtral-8x22b qwen2.5-7b qwen2.5-14b qwen2.5-32b qwen2.5-72b qwen3-8b qwen3-32b
qwen3-30b-a3b qwen3-235b-a22b gemma2-9b gemma2-27b gemma3-27b deepseek-v2-lite deepseek-v3
deepseek-r1 phi3-mini-4k phi4 falcon-7b gpt-oss-20b gpt-oss-120b opt-13b jamba-v0.1""".split()
REQUIRED_GPUS = """h100-sxm h100-pcie h100-nvl h200 h20 b200 gb200 a100-40gb-sxm a100-80gb-sxm
a100-40gb-pcie a100-80gb-pcie l40s l4 a10g a10 t4 v100 rtx-4090 rtx-3090 mi300x mi325x""".split()


def test_required_models_and_gpus_are_present(catalog):
    assert set(REQUIRED_MODELS) <= set(catalog.models.specs)
    assert set(REQUIRED_GPUS) <= set(catalog.gpus.specs)


@pytest.mark.parametrize("path", MODEL_FILES + GPU_FILES, ids=lambda p: p.name)
def test_packaged_file_validates_and_round_trips(path):
    cls = GpuSpec if path.parent.name == "gpus" else ModelSpec
    spec = load_spec_file(path, cls)
    assert path.stem == spec.name
    assert cls.model_validate(yaml.safe_load(spec_to_yaml(spec))) == spec
    assert spec.source


def test_no_spelling_resolves_to_two_specs(catalog):
    for registry in (catalog.models, catalog.gpus):
        seen: dict[str, str] = {}
        for spec in registry.specs.values():
            spellings = {spec.name, spec.display_name, *spec.aliases, getattr(spec, "hf_repo", None) or spec.name}
            for key in {name_key(s) for s in spellings}:
                assert seen.setdefault(key, spec.name) == spec.name, f"{key}: {seen[key]} and {spec.name}"


@pytest.mark.parametrize("spelling", ["llama3-70b", "Llama-3-70B", "meta-llama/Meta-Llama-3-70B",
                                      "LLAMA3_70B", "Meta-Llama-3-70B-Instruct"])
def test_forgiving_model_names(catalog, spelling):
    assert catalog.model(spelling).name == "llama3-70b"


@pytest.mark.parametrize("spelling, name", [("h100", "h100-sxm"), ("H100-SXM5", "h100-sxm"),
                                            ("a100", "a100-80gb-sxm"), ("MI300X", "mi300x")])
def test_forgiving_gpu_names(catalog, spelling, name):
    assert catalog.gpu(spelling).name == name


def test_unknown_name_lists_closest(catalog):
    with pytest.raises(NotFoundError) as err:
        catalog.model("lama3-70b")
    message = str(err.value)
    assert message.startswith("unknown model 'lama3-70b' (closest: llama3-70b")
    assert "kvplan models" in message


def test_gpus_hold_their_datasheet_numbers(catalog):
    h100 = catalog.gpu("h100")
    assert h100.memory_bytes == 80 * 2**30
    assert h100.usable_memory_bytes == 81_559 * 2**20 == 85_520_809_984  # nvidia-smi 81559 MiB
    assert (h100.hbm_bandwidth_gbps, h100.bf16_tflops_dense, h100.fp8_tflops_dense) == (3350, 989.4, 1978.9)
    assert h100.host_link.generation == 5


def _write(root: Path, sub: str, name: str, text: str) -> Path:
    path = root / sub / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _user_model(name: str, kv_heads: int = 8) -> str:
    spec = yaml.safe_load((PACKAGED / "models" / "llama3-8b.yaml").read_text())
    spec.update(name=name, aliases=[], hf_repo=None, display_name=name)
    spec["layers"][0]["num_kv_heads"] = kv_heads
    return yaml.safe_dump(spec)


def test_user_folder_adds_and_overrides(tmp_path):
    _write(tmp_path, "models", "mine.yaml", _user_model("my-model"))
    _write(tmp_path, "models", "llama3-8b.yaml", _user_model("llama3-8b", kv_heads=4))
    cat = load_catalog([tmp_path])
    assert cat.model("my-model").name == "my-model"
    assert cat.model("llama3-8b").layers[0].num_kv_heads == 4
    assert cat.models.origin["llama3-8b"] == tmp_path / "models" / "llama3-8b.yaml"


def test_specs_from_environment(tmp_path, monkeypatch):
    _write(tmp_path, "models", "env.yaml", _user_model("env-model"))
    monkeypatch.setenv("KVPLAN_SPECS", str(tmp_path))
    assert load_catalog().model("env-model").name == "env-model"


def test_malformed_file_one_line_per_problem_with_line_numbers(tmp_path):
    text = _user_model("bad-model").replace("num_kv_heads: 8", "num_kv_heads: -1")
    text = text.replace("hidden_size: 4096", "hidden_size: lots\ncolour: red")
    path = _write(tmp_path, "models", "bad.yaml", text)
    with pytest.raises(SpecError) as err:
        load_catalog([tmp_path])
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    line_of = {key: i + 1 for i, row in enumerate(text.splitlines()) for key in ("colour", "hidden_size", "num_kv_heads") if row.strip().lstrip("- ").startswith(key + ":")}
    assert f"{path}:{line_of['colour']}: colour: unknown key; remove it or check its spelling" in lines
    assert f"{path}:{line_of['hidden_size']}: hidden_size: Input should be a valid integer" in lines
    assert f"{path}:{line_of['num_kv_heads']}: layers.0.num_kv_heads: Input should be greater than or equal to 1" in lines


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, "models", "broken.yaml", "name: x\nlayers: [\n  {kind: full\n")
    with pytest.raises(SpecError, match=rf"^{path}:\d+: YAML syntax error"):
        load_catalog([tmp_path])


def test_layer_counts_must_add_up(tmp_path):
    text = _user_model("short").replace("num_layers: 32", "num_layers: 30")
    _write(tmp_path, "models", "short.yaml", text)
    with pytest.raises(SpecError, match="layers add up to 32 but num_layers is 30"):
        load_catalog([tmp_path])


def test_duplicate_names_in_one_folder(tmp_path):
    _write(tmp_path, "models", "a.yaml", _user_model("twin"))
    _write(tmp_path, "models", "b.yaml", _user_model("twin"))
    with pytest.raises(SpecError, match="name 'twin' is also used by"):
        load_catalog([tmp_path])


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "holds neither models/ nor gpus/"),
])
def test_bad_spec_folder(tmp_path, make, message):
    with pytest.raises(SpecError, match=message):
        load_catalog([make(tmp_path)])


def test_example_user_spec_loads():
    examples = Path(__file__).resolve().parents[1] / "examples" / "specs"
    model = load_catalog([examples]).model("llama3-8b-32k")
    assert model.max_context == 32_768
    assert model.layers == load_catalog().model("llama3-8b").layers
