"""The prebuilt index of the packaged specs: fresh, and what it builds equals what validation builds."""

from __future__ import annotations

import json
import shutil

import pytest

from kvplan.calc.kv import kv_size
from kvplan.specs.catalog import Catalog, Registry, _load_packaged
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.index import INDEX_NAME, build_index, construct_gpu, construct_model, index_text, packaged_specs_dir
from kvplan.specs.model import ModelSpec
from kvplan.specs.yamlio import load_spec_file

PACKAGED = packaged_specs_dir()
STORED = json.loads((PACKAGED / INDEX_NAME).read_text())


def test_index_is_fresh():
    assert (PACKAGED / INDEX_NAME).read_text() == index_text(PACKAGED), (
        "model_specs/index.json is stale: run `python -m kvplan.specs.index` and commit it")


def test_a_stale_index_is_caught(tmp_path):
    copy = tmp_path / "specs"
    shutil.copytree(PACKAGED, copy)
    path = copy / "models" / "llama3-8b.yaml"
    path.write_text(path.read_text().replace("max_context: 8192", "max_context: 8191"))
    assert index_text(copy) != (copy / INDEX_NAME).read_text()
    assert build_index(copy)["models"]["llama3-8b"]["spec"]["max_context"] == 8191


def test_index_covers_every_file():
    files = {p.relative_to(PACKAGED).as_posix() for p in PACKAGED.glob("*/*.yaml")}
    indexed = {entry["file"] for kind in ("models", "gpus") for entry in STORED[kind].values()}
    assert indexed == files and len(STORED["models"]) >= 37 and len(STORED["gpus"]) >= 22


@pytest.mark.parametrize("name", sorted(STORED["models"]))
def test_constructed_model_equals_validated(name):
    entry = STORED["models"][name]
    built, validated = construct_model(entry["spec"]), load_spec_file(PACKAGED / entry["file"], ModelSpec)
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert kv_size(built, 4096, tp=1) == kv_size(validated, 4096, tp=1)


@pytest.mark.parametrize("name", sorted(STORED["gpus"]))
def test_constructed_gpu_equals_validated(name):
    entry = STORED["gpus"][name]
    assert construct_gpu(entry["spec"]) == load_spec_file(PACKAGED / entry["file"], GpuSpec)


def test_without_an_index_the_yaml_is_read(tmp_path):
    copy = tmp_path / "specs"
    shutil.copytree(PACKAGED, copy)
    (copy / INDEX_NAME).unlink()
    catalog = Catalog(Registry("model"), Registry("GPU"))
    _load_packaged(copy, catalog, [])
    assert catalog.model("llama3-70b").num_layers == 80  # the published config: 80 layers
    assert catalog.models.origin["llama3-70b"] == copy / "models" / "llama3-70b.yaml"


def test_packaged_specs_are_built_only_when_used():
    catalog = Catalog(Registry("model"), Registry("GPU"))
    _load_packaged(PACKAGED, catalog, [])
    catalog.model("Meta-Llama-3-70B-Instruct")  # a display name with a suffix resolves
    assert set(catalog.models._built) == {"llama3-70b"}
    assert len(catalog.models.specs) == len(STORED["models"])
