"""The prebuilt index of the packaged specs: every file of ``model_specs/`` validated once, when the
index is generated, and stored as JSON in ``model_specs/index.json``.

At run time the packaged specs are built from it without validating them again (pydantic's
``model_construct``), and neither YAML nor a schema is needed: a database name starts in the time
it takes to read one JSON file. ``tests/test_index.py`` fails when the index is stale, and
validates every packaged file. Regenerate it after editing ``model_specs/``:

    python -m kvplan.specs.index
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # each spec module is imported where it is first needed: `size` builds no GPU class
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

INDEX_NAME = "index.json"
KINDS = ("models", "gpus")


def packaged_specs_dir() -> Path:
    """In a wheel the database sits inside the package; in a checkout, beside it."""
    package = Path(__file__).resolve().parents[1]
    inside = package / "model_specs"
    return inside if inside.is_dir() else package.parent / "model_specs"


# --- generating (validates every file) ------------------------------------------------------------

def spec_files(root: Path) -> Iterator[tuple[str, Path]]:
    for kind in KINDS:
        for path in sorted((root / kind).glob("*.y*ml")):
            yield kind, path


def build_index(root: Path) -> dict:
    """{"models": {name: {"file": "models/NAME.yaml", "spec": {...}}}, "gpus": {...}}, every spec
    validated from its YAML file (a bad file raises SpecError, as at run time)."""
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec
    from kvplan.specs.yamlio import load_spec_file

    classes: dict[str, type[ModelSpec] | type[GpuSpec]] = {"models": ModelSpec, "gpus": GpuSpec}
    index: dict = {kind: {} for kind in KINDS}
    for kind, path in spec_files(root):
        spec = load_spec_file(path, classes[kind])
        index[kind][spec.name] = {"file": path.relative_to(root).as_posix(),
                                  "spec": spec.model_dump(mode="json", exclude_unset=True)}
    return index


def index_text(root: Path) -> str:
    return json.dumps(build_index(root), indent=1, sort_keys=True) + "\n"


# --- reading (trusts the index) -------------------------------------------------------------------

def read_index(root: Path) -> dict | None:
    """The index beside the packaged specs, or None where there is none (then the YAML is read)."""
    try:
        return json.loads((root / INDEX_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def construct_model(data: dict) -> ModelSpec:
    """A ModelSpec from validated data, built without validating it again."""
    from kvplan.specs.layers import layer_class
    from kvplan.specs.model import ModelSpec, MoESpec

    layers = tuple(layer_class(g["kind"]).model_construct(**g) for g in data["layers"])
    fields = {**data, "layers": layers, "aliases": tuple(data.get("aliases", ()))}
    if data.get("moe"):
        fields["moe"] = MoESpec.model_construct(**data["moe"])
    if data.get("vision"):
        from kvplan.specs.vision import VisionSpec
        fields["vision"] = VisionSpec.model_construct(**data["vision"])
    if data.get("released"):  # JSON holds the date as text
        fields["released"] = date.fromisoformat(data["released"])
    return ModelSpec.model_construct(**fields)


def construct_gpu(data: dict) -> GpuSpec:
    """A GpuSpec from validated data, built without validating it again."""
    from kvplan.specs.gpu import GpuSpec, HostLink, ScaleUpLink

    fields = {**data, "host_link": HostLink.model_construct(**data["host_link"]),
              "aliases": tuple(data.get("aliases", ()))}
    if data.get("scale_up"):
        fields["scale_up"] = ScaleUpLink.model_construct(**data["scale_up"])
    return GpuSpec.model_construct(**fields)


def main() -> None:
    root = packaged_specs_dir()
    (root / INDEX_NAME).write_text(index_text(root), encoding="utf-8")
    print(f"wrote {root / INDEX_NAME}")


if __name__ == "__main__":
    main()
