"""The spec database: the only code that opens spec files.

Packaged specs live in ``model_specs/{models,gpus}/*.yaml``. Users add or override specs with
folders of the same shape, from ``KVPLAN_SPECS`` (os.pathsep-separated) and ``--specs DIR``;
later folders override earlier ones by name. Names resolve forgivingly (case, dashes, org prefix,
``-instruct``-style suffixes, aliases); an unknown name lists the closest matches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from pydantic import BaseModel

from kvplan.errors import NotFoundError, SpecError
from kvplan.specs.hfcache import looks_like_path
from kvplan.specs.index import packaged_specs_dir

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

SPECS_ENV = "KVPLAN_SPECS"
_SUFFIXES = ("-instruct", "-chat", "-it", "-hf", "-base", "-pt")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


Spec = TypeVar("Spec", bound=_Named)  # ModelSpec or GpuSpec: each is imported where it is first needed
SpecModel = TypeVar("SpecModel", "ModelSpec", "GpuSpec")  # a spec class read from YAML files


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
    """Specs of one kind by name, with an index of every spelling that resolves to each.

    Packaged specs arrive as validated data from the index and are built on first use."""

    what: str  # "model" or "GPU", for messages
    origin: dict[str, Path] = field(default_factory=dict)
    _built: dict[str, Spec] = field(default_factory=dict)
    _pending: dict[str, tuple[Callable[[dict], Spec], dict]] = field(default_factory=dict)
    _index: dict[str, str] = field(default_factory=dict)

    def add(self, spec: Spec, path: Path) -> None:
        self._pending.pop(spec.name, None)
        self._built[spec.name] = spec
        self.origin[spec.name] = path
        self._index = {}

    def add_validated(self, data: dict, build: Callable[[dict], Spec], path: Path) -> None:
        """A spec from the prebuilt index: its data was validated when the index was generated."""
        self._built.pop(data["name"], None)
        self._pending[data["name"]] = (build, data)
        self.origin[data["name"]] = path
        self._index = {}

    def _build(self, name: str) -> Spec:
        if name in self._pending:
            build, data = self._pending.pop(name)
            self._built[name] = build(data)
        return self._built[name]

    @property
    def specs(self) -> dict[str, Spec]:
        return {name: self._build(name) for name in self.origin}

    def _spellings(self) -> Iterable[tuple[str, str]]:
        """(spelling, spec name) for every name, display name, alias and Hugging Face repo."""
        for name, data in [*self._built.items(), *((n, d) for n, (_, d) in self._pending.items())]:
            get = data.get if isinstance(data, dict) else lambda key, default=None, d=data: getattr(d, key, default)
            for spelling in (name, get("display_name"), *get("aliases", ()), get("hf_repo")):
                if spelling:
                    yield spelling, name

    @property
    def index(self) -> dict[str, str]:
        if not self._index:
            for spelling, name in self._spellings():
                self._index.setdefault(name_key(spelling), name)
            for name in self.origin:  # a spec's own name always wins
                self._index[name_key(name)] = name
        return self._index

    def _find(self, name: str) -> str | None:
        for candidate in (name, _strip_suffix(name)):
            hit = self.index.get(name_key(candidate))
            if hit:
                return hit
        return None

    def is_spelling(self, name: str) -> bool:
        """Whether `name`, organisation and suffixes included (any case), is a spec's name, display
        name, alias or repo: a claim of the database, not a forgiving guess."""
        wanted = name.strip().lower()
        return any(spelling.lower() == wanted for spelling, _ in self._spellings())

    def within(self, name: str, shortest: int = 6) -> str | None:
        """The spec whose spelling is the longest one inside `name` ('Hermes-3-Llama-3.1-70B' holds
        'Llama-3.1-70B'), when exactly one spec spells it; None when none does or two tie."""
        key = name_key(name)
        by_length: dict[int, set[str]] = {}
        for spelling, spec in self._spellings():
            found = name_key(spelling)
            if len(found) >= shortest and found in key:
                by_length.setdefault(len(found), set()).add(spec)
        longest = by_length.get(max(by_length)) if by_length else None
        return next(iter(longest)) if longest and len(longest) == 1 else None

    def has(self, name: str) -> bool:
        return self._find(name) is not None

    def get(self, name: str) -> Spec:
        hit = self._find(name)
        if hit is None:
            raise NotFoundError(self.not_found_message(name))
        return self._build(hit)

    def closest(self, name: str) -> list[str]:
        import difflib  # only on the error path: keeps start-up short

        close = difflib.get_close_matches(name_key(name), list(self.index), n=8, cutoff=0.6)
        return list(dict.fromkeys(self.index[k] for k in close))[:4]

    def origin_note(self, name: str) -> str:
        """Where a spec came from, in words that do not depend on where kvplan is installed."""
        path, packaged = self.origin[name], packaged_specs_dir()
        if path.is_relative_to(packaged):
            return f"kvplan's database ({path.relative_to(packaged).as_posix()})"
        return f"spec file {path}"

    def not_found_message(self, name: str) -> str:
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
        """A model by name, alias or hf_repo from the database, else by path, Hugging Face cache or
        Hub (see kvplan.specs.resolve); the spec's origin says which, and `served` what the engine
        loads. A repo id the database does not spell (a fine-tune, an Instruct or quantized repo of
        a model it holds) is read from its own config in the cache or on the Hub first; only when
        that cannot be had is the database's base used, and the origin says what may differ."""
        from kvplan.specs.hfcache import parse_repo_id

        ref = parse_repo_id(name)
        try:
            if looks_like_path(name):  # written as a path and there: the user means the files
                raise NotFoundError(name)
            if ref is not None and not self.models.is_spelling(name):
                raise NotFoundError(name)  # its own config first; the forgiving match is the fallback
            spec = self.models.get(name)
        except NotFoundError:
            from kvplan.specs.resolve import resolve_external  # imported only when the database misses

            return resolve_external(name, self._database_model, self.models.not_found_message, self._base_within)
        served = {"served": ref.repo, "revision": None if ref.revision == "main" else ref.revision} if ref else {}
        return spec.model_copy(update={"origin": self.models.origin_note(spec.name), **served})

    def _database_model(self, name: str) -> ModelSpec | None:
        """The database's spec for a name, forgivingly matched (case, organisation, suffixes)."""
        if not self.models.has(name):
            return None
        spec = self.models.get(name)
        return spec.model_copy(update={"origin": self.models.origin_note(spec.name)})

    def _base_within(self, name: str) -> ModelSpec | None:
        """The one database model whose name a fine-tune's name holds, if exactly one does."""
        hit = self.models.within(name)
        return self._database_model(hit) if hit else None

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
    try:
        is_dir = root.is_dir()
    except OSError as exc:  # a name too long for the file system, a path it cannot look at
        raise SpecError(f"spec folder {str(root)[:60]}...: cannot look at it ({exc.strerror}); "
                        "pass a folder holding models/ or gpus/") from None
    if not is_dir:
        raise SpecError(f"spec folder {root} does not exist; pass a folder holding models/ or gpus/")
    if not (root / "models").is_dir() and not (root / "gpus").is_dir():
        raise SpecError(f"{root} holds neither models/ nor gpus/; put model specs in "
                        f"{root}/models/*.yaml and GPU specs in {root}/gpus/*.yaml")


def _load_dir(root: Path, catalog: Catalog, problems: list[str]) -> None:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

    _load_files(root / "models", catalog.models, ModelSpec, problems)
    _load_files(root / "gpus", catalog.gpus, GpuSpec, problems)


def _load_files(folder: Path, registry: Registry[SpecModel], cls: type[SpecModel], problems: list[str]) -> None:
    from kvplan.specs.yamlio import load_spec_file  # user folders only: the packaged specs are indexed

    names_here: dict[str, Path] = {}
    for path in sorted(folder.glob("*.y*ml")):
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


def _load_packaged(root: Path, catalog: Catalog, problems: list[str]) -> None:
    """The packaged specs from their prebuilt index (see kvplan.specs.index), else from the YAML."""
    from kvplan.specs.index import construct_gpu, construct_model, read_index

    index = read_index(root)
    if index is None:
        _load_dir(root, catalog, problems)
        return
    for entry in index["models"].values():
        catalog.models.add_validated(entry["spec"], construct_model, root / entry["file"])
    for entry in index["gpus"].values():
        catalog.gpus.add_validated(entry["spec"], construct_gpu, root / entry["file"])


def load_catalog(extra_dirs: Sequence[Path | str] = ()) -> Catalog:
    """Load packaged specs, then KVPLAN_SPECS folders, then extra_dirs (later ones override)."""
    return _load_catalog(tuple(Path(p) for p in extra_dirs), os.environ.get(SPECS_ENV, ""), os.getcwd())


@cache
def _load_catalog(extra: tuple[Path, ...], _env: str, _cwd: str) -> Catalog:
    """Cached per spec folders, $KVPLAN_SPECS and working directory (relative folders resolve there)."""
    catalog = Catalog(Registry("model"), Registry("GPU"))
    problems: list[str] = []
    packaged, *users = _spec_dirs(extra)
    _load_packaged(packaged, catalog, problems)
    for root in users:
        _check_user_dir(root)
        _load_dir(root, catalog, problems)
    if problems:
        raise SpecError("\n".join(problems))
    return catalog


def find_model(name: str, extra_dirs: Sequence[Path | str] = ()) -> ModelSpec:
    """One model by any spelling."""
    return load_catalog(extra_dirs).model(name)


def spec_to_yaml(spec: BaseModel) -> str:
    """The YAML a spec file would hold (defaults left out), for `kvplan show` and `kvplan import`."""
    import yaml

    data = spec.model_dump(mode="json", exclude_defaults=True, exclude={"origin", "served", "revision"})
    if hasattr(spec, "layers"):  # a model: keep the discriminator that exclude_defaults drops
        data["layers"] = [{"kind": g.kind, **g.model_dump(mode="json", exclude_defaults=True)}
                          for g in spec.layers]
    released = getattr(spec, "released", None)
    if released:  # a date, which YAML writes unquoted and reads back as a date
        data["released"] = released
    return yaml.safe_dump(data, sort_keys=False, width=100)
