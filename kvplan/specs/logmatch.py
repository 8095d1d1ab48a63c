"""The model and GPU a start-up log names, found in kvplan's database: a log names its model as the
engine was given it (a Hugging Face id, or a local path whose last folder is usually the repo's
name) and its GPU as the driver spells it ("NVIDIA GeForce RTX 3090", "NVIDIA H100 80GB HBM3")."""

from __future__ import annotations

import re

from kvplan.errors import InputError, KvplanError
from kvplan.specs.catalog import Catalog
from kvplan.specs.engines.logs import LoggedStartup
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec


def _spellings(named: str) -> list[str]:
    """The log's model as a database may spell it: the id; a Hugging Face cache folder's repo
    (`.../models--Qwen--Qwen3-30B-A3B-FP8/snapshots/<sha>` is Qwen/Qwen3-30B-A3B-FP8); the path's last
    folder."""
    trimmed = named.rstrip("/")
    cached = re.search(r"models--([^/]+?)--([^/]+)", trimmed)
    repo = f"{cached[1]}/{cached[2]}" if cached else ""
    return [s for s in dict.fromkeys((repo, trimmed, trimmed.rsplit("/", 1)[-1])) if s]


def _resolved(cat: Catalog, spelling: str) -> ModelSpec | None:
    """The database spec a spelling names: exactly, or as a fine-tune or quantized repo of one."""
    if cat.models.has(spelling):
        return cat.model(spelling)
    if "/" in spelling and len(spelling) < 200:  # an id kvplan resolves without the Hub (quantized, a fine-tune)
        try:
            return cat.model(spelling)
        except KvplanError:
            return None
    return None


def logged_model(cat: Catalog, startup: LoggedStartup) -> ModelSpec | None:
    """The database model the log names, as served (a quantized repo's weights), or None where none is
    spelled so (a local path of another name)."""
    for spelling in _spellings(startup.model or ""):
        found = _resolved(cat, spelling)
        if found is not None:
            return found
    return None


def log_model(cat: Catalog, startup: LoggedStartup, asked: str | None) -> ModelSpec:
    """--model where given (refused where the log names another database model), else the one the
    log names; one line asking for --model where the database holds no such name."""
    named = logged_model(cat, startup)
    if asked:
        model = cat.model(asked)
        if named and named.name != model.name:
            raise InputError(f"{startup.where} is a log of {startup.model} ({named.name}), not of {asked}; plan "
                             f"{named.name} with it, or give a log of {asked}", "model")
        return named or model  # the log's repo as served (a quantized one's weights) where it is the same model
    if named is None:
        said = (f"names the model {startup.model}, which kvplan's database does not spell so" if startup.model
                else "names no model (an offline run, or a log cut before its config line)")
        raise InputError(f"{startup.where}: the log {said}; pass --model (a database name, a config folder or a "
                         "Hugging Face id)", "model")
    return named


_FORMS = {"pcie", "nvl"}  # the driver names the SXM parts without a form: "NVIDIA H100 80GB HBM3"
_NOISE = {"nvidia", "geforce", "tesla", "gb", "hbm3", "hbm3e", "hbm2e", "sxm", "sxm4", "sxm5", "pcie", "graphics"}


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", text.lower().replace("_", " ")) if t}


def log_gpu(cat: Catalog, startup: LoggedStartup, asked: str | None) -> GpuSpec | None:
    """--gpu where given, else the database GPU the log's name matches: its model number ("h100",
    "3090") among the GPU's names, a PCIe or NVL part only where the log says so, then the most of the
    log's other words (memory size); None where the log names no GPU or two match equally (the log's
    total memory is used then)."""
    if asked:
        return cat.gpu(asked)
    words = _tokens(startup.gpu_name or "")
    key = {w for w in words - _NOISE if any(c.isdigit() for c in w) and not w.endswith("gb")}
    if not key:
        return None
    scored = []
    for spec in cat.gpus.specs.values():
        names = _tokens(" ".join((spec.name, spec.display_name, *spec.aliases)))
        if key <= names and names & _FORMS <= words:  # a PCIe or NVL card says so ("NVIDIA H100 PCIe")
            scored.append((len(words & names), -len(names), spec.name))
    scored.sort(reverse=True)
    if not scored or (len(scored) > 1 and scored[0][:2] == scored[1][:2]):
        return None
    return cat.gpu(scored[0][2])
