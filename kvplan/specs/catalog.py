"""The spec database: the only code that opens spec files.

Packaged specs live in ``model_specs/{models,gpus}/*.yaml``. Users add or override specs with
folders of the same shape, from ``KVPLAN_SPECS`` (os.pathsep-separated) and ``--specs DIR``;
later folders override earlier ones by name. Names resolve forgivingly (case, dashes, org prefix,
``-instruct``-style suffixes, aliases); an unknown name lists the closest matches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from kvplan.errors import NotFoundError, SpecError
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.specs.yamlio import load_spec_file

SPECS_ENV = "KVPLAN_SPECS"
_SUFFIXES = ("-instruct", "-chat", "-it", "-hf", "-base", "-pt")
Spec = TypeVar("Spec", ModelSpec, GpuSpec)


def packaged_specs_dir() -> Path:
    """In a wheel the database sits inside the package; in a checkout, beside it."""
    package = Path(__file__).resolve().parents[1]
    inside = package / "model_specs"
    return inside if inside.is_dir() else package.parent / "model_specs"


def name_key(name: str) -> str:
    """'meta-llama/Meta-Llama-3-70B' -> 'metallama370b'; dots stay ('llama3.1-8b' -> 'llama3.18b')."""
    return re.sub(r"[-_\s]", "", name.rsplit("/", 1)[-1].lower())


def _strip_suffix(name: str) -> str:
    lowered = name.lower()
    for suffix in _SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- the catalog ---------------------------------------------------------------------------------

@dataclass
class Registry(Generic[Spec]):
    """Specs of one kind by name, with an index of every spelling that resolves to each."""

    what: str  # "model" or "GPU", for messages
    specs: dict[str, Spec] = field(default_factory=dict)
    origin: dict[str, Path] = field(default_factory=dict)
    _index: dict[str, str] = field(default_factory=dict)

    def add(self, spec: Spec, path: Path) -> None:
        self.specs[spec.name] = spec
        self.origin[spec.name] = path
        self._index = {}

    def _spellings(self, spec: Spec) -> Iterable[str]:
        yield spec.name
        yield spec.display_name
        yield from spec.aliases
        if getattr(spec, "hf_repo", None):
            yield spec.hf_repo

    @property
    def index(self) -> dict[str, str]:
        if not self._index:
            for spec in self.specs.values():
                for spelling in self._spellings(spec):
                    self._index.setdefault(name_key(spelling), spec.name)
            for spec in self.specs.values():  # a spec's own name always wins
                self._index[name_key(spec.name)] = spec.name
        return self._index

    def get(self, name: str) -> Spec:
        for candidate in (name, _strip_suffix(name)):
            hit = self.index.get(name_key(candidate))
            if hit:
                return self.specs[hit]
        raise NotFoundError(self._unknown_message(name))

    def closest(self, name: str) -> list[str]:
        import difflib  # only on the error path: keeps start-up short

        close = difflib.get_close_matches(name_key(name), list(self.index), n=8, cutoff=0.6)
        return list(dict.fromkeys(self.index[k] for k in close))[:4]

    def _unknown_message(self, name: str) -> str:
        names = self.closest(name)
        hint = f"closest: {', '.join(names)}" if names else "no close match"
        plural = "gpus" if self.what == "GPU" else "models"
        return (f"unknown {self.what} '{name}' ({hint}); run `kvplan {plural}` to list them, "
                f"or add a spec with --specs DIR")


@dataclass
class Catalog:
    models: Registry[ModelSpec]
    gpus: Registry[GpuSpec]

    def model(self, name: str) -> ModelSpec:
        return self.models.get(name)

    def gpu(self, name: str) -> GpuSpec:
        return self.gpus.get(name)

    def unknown_message(self, name: str) -> str:
        """For a name that may be either kind: the closest models and GPUs together."""
        close = [n for r in (self.models, self.gpus) for n in r.closest(name)]
        hint = f"closest: {', '.join(close[:4])}" if close else "no close match"
        return (f"unknown model or GPU '{name}' ({hint}); run `kvplan models` or `kvplan gpus` "
                "to list them")


def _spec_dirs(extra: Sequence[Path]) -> list[Path]:
    env = [Path(p) for p in os.environ.get(SPECS_ENV, "").split(os.pathsep) if p.strip()]
    return [packaged_specs_dir(), *env, *extra]


def _check_user_dir(root: Path) -> None:
    if not root.is_dir():
        raise SpecError(f"spec folder {root} does not exist; pass a folder holding models/ or gpus/")
    if not (root / "models").is_dir() and not (root / "gpus").is_dir():
        raise SpecError(f"{root} holds neither models/ nor gpus/; put model specs in "
                        f"{root}/models/*.yaml and GPU specs in {root}/gpus/*.yaml")


def _load_dir(root: Path, catalog: Catalog, problems: list[str]) -> None:
    for sub, registry, cls in (("models", catalog.models, ModelSpec), ("gpus", catalog.gpus, GpuSpec)):
        names_here: dict[str, Path] = {}
        for path in sorted((root / sub).glob("*.y*ml")):
            try:
                spec = load_spec_file(path, cls)
            except SpecError as err:
                problems.extend(str(err).splitlines())
                continue
            if spec.name in names_here:
                problems.append(f"{path}: name '{spec.name}' is also used by {names_here[spec.name]}; "
                                "give each spec a unique name")
            names_here[spec.name] = path
            registry.add(spec, path)


def load_catalog(extra_dirs: Sequence[Path | str] = ()) -> Catalog:
    """Load packaged specs, then KVPLAN_SPECS folders, then extra_dirs (later ones override)."""
    return _load_catalog(tuple(Path(p) for p in extra_dirs), os.environ.get(SPECS_ENV, ""))


@cache
def _load_catalog(extra: tuple[Path, ...], _env: str) -> Catalog:
    catalog = Catalog(Registry("model"), Registry("GPU"))
    problems: list[str] = []
    for i, root in enumerate(_spec_dirs(extra)):
        if i:  # the packaged folder is trusted to exist
            _check_user_dir(root)
        _load_dir(root, catalog, problems)
    if problems:
        raise SpecError("\n".join(problems))
    return catalog


def find_model(name: str, extra_dirs: Sequence[Path | str] = ()) -> ModelSpec:
    """One model by any spelling. When only the packaged database is in play and the name is a
    spec's own name, read just that file (start-up time); otherwise load the whole catalog."""
    if not extra_dirs and not os.environ.get(SPECS_ENV, "").strip():
        stems = {name_key(p.stem): p for p in (packaged_specs_dir() / "models").glob("*.yaml")}
        path = stems.get(name_key(name))
        if path is not None:
            return load_spec_file(path, ModelSpec)
    return load_catalog(extra_dirs).model(name)


def spec_to_yaml(spec: BaseModel) -> str:
    """The YAML a spec file would hold (defaults left out), for `kvplan show` and `kvplan import`."""
    import yaml

    data = spec.model_dump(mode="json", exclude_defaults=True)
    if isinstance(spec, ModelSpec):  # keep the discriminator that exclude_defaults drops
        data["layers"] = [{"kind": g.kind, **g.model_dump(mode="json", exclude_defaults=True)}
                          for g in spec.layers]
    return yaml.safe_dump(data, sort_keys=False, width=100)
