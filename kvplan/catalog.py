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
from typing import Generic, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from kvplan.errors import NotFoundError, SpecError
from kvplan.specs import GpuSpec, LayerGroup, ModelSpec

SPECS_ENV = "KVPLAN_SPECS"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = ("-instruct", "-chat", "-it", "-hf", "-base", "-pt")
Spec = TypeVar("Spec", ModelSpec, GpuSpec)


def packaged_specs_dir() -> Path:
    """In a wheel the database sits inside the package; in a checkout, beside it."""
    here = Path(__file__).resolve().parent
    inside = here / "model_specs"
    return inside if inside.is_dir() else here.parent / "model_specs"


def name_key(name: str) -> str:
    """'meta-llama/Meta-Llama-3-70B' -> 'metallama370b'; dots stay ('llama3.1-8b' -> 'llama3.18b')."""
    return re.sub(r"[-_\s]", "", name.rsplit("/", 1)[-1].lower())


def _strip_suffix(name: str) -> str:
    lowered = name.lower()
    for suffix in _SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- reading YAML with line numbers for error messages ------------------------------------------

def _line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a 1-based line number."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def format_validation_error(path: Path, err: ValidationError, root: yaml.Node | None) -> list[str]:
    """One line per problem: 'file:line: field.path: what is wrong'."""
    lines = []
    problems = err.errors()
    for problem in problems:
        if _follows_from_another(problem, problems):
            continue
        loc = [p for p in problem["loc"] if not (isinstance(p, str) and p in _KIND_TAGS)]
        where = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(root, loc)
        prefix = f"{path}:{line}" if line else str(path)
        lines.append(f"{prefix}: {where}: {problem['msg']}")
    return lines


# pydantic puts the discriminator's value into an error's location (layers.0.full.count): drop it.
_KIND_TAGS = {cls.model_fields["kind"].default for cls in get_args(get_args(LayerGroup)[0])}


def _follows_from_another(problem: dict, problems: list[dict]) -> bool:
    """A list reported 'too short' only because one of its items failed: say the item, not the list."""
    loc = tuple(problem["loc"])
    return problem["type"] == "too_short" and any(
        tuple(other["loc"][: len(loc)]) == loc and len(other["loc"]) > len(loc) for other in problems)


def read_text(path: Path, what: str = "spec file") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError(f"{path}: cannot read {what} ({reason})") from None


def parse_yaml(path: Path, text: str) -> object:
    """Parse YAML text; a syntax error becomes one SpecError line naming file and line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: YAML syntax error: {problem}; fix the YAML") from None


def validate_yaml(path: Path, text: str, cls: type[BaseModel]) -> BaseModel:
    """Parse and validate; problems become SpecError lines 'file:line: field: what is wrong'."""
    data = parse_yaml(path, text)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        root = yaml.compose(text, Loader=_Loader)  # only now: line numbers for the message
        raise SpecError("\n".join(format_validation_error(path, err, root))) from None


def load_spec_file(path: Path, cls: type[Spec]) -> Spec:
    return validate_yaml(path, read_text(path), cls)


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
    data = spec.model_dump(mode="json", exclude_defaults=True)
    if isinstance(spec, ModelSpec):  # keep the discriminator that exclude_defaults drops
        data["layers"] = [{"kind": g.kind, **g.model_dump(mode="json", exclude_defaults=True)}
                          for g in spec.layers]
    return yaml.safe_dump(data, sort_keys=False, width=100)
