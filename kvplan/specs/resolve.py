"""Resolving a MODEL argument that the spec database does not hold, in this order:

1. (the database, by name, alias or hf_repo: kvplan.specs.catalog, before this module is asked)
2. a local path: a config.json, or a model folder holding one (with *.safetensors: exact weights);
3. a Hugging Face repo id (`org/name`, optionally `@revision`) in the local Hugging Face cache;
4. the Hub itself, unless offline (--offline, HF_HUB_OFFLINE=1): huggingface_hub, imported here only;
5. a quantized repo's name (`RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic`) whose base model is in the
   database: that spec, with the weights format the name implies, said to be inferred;
6. a fine-tune's or variant's name that holds exactly one database model's name
   (`NousResearch/Hermes-3-Llama-3.1-70B`, `Qwen/Qwen2.5-7B-Instruct-1M`): that base, said to be
   inferred, with what its own config may change (context, dtype, quantization);
7. nothing: the closest names, and how to import a model or point at its config.

Every spec this returns says where it came from in `origin`, and in `served` what the engine loads:
the path or the repo id as the user named it, never the base's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from kvplan.errors import NotFoundError, SpecError
from kvplan.specs.checkpoint import local_checkpoint
from kvplan.specs.hfcache import RepoRef, cached_snapshot, is_model_path, parse_repo_id
from kvplan.specs.hfconfig import load_config
from kvplan.specs.importer import import_model, spec_from_config
from kvplan.specs.model import ModelSpec

# A quantized repo's name -> the weights format it implies (first match wins; case-insensitive).
NAME_FORMATS = (
    (r"[-_.]nvfp4\b", "nvfp4"),
    (r"[-_.](?:bnb-4bit|nf4)\b", "nf4"),
    (r"[-_.](?:w4a16|awq|gptq(?:-int4)?|int4|4bit|w4a4)\b", "int4"),
    (r"[-_.](?:fp8(?:-dynamic|-static|-block)?|w8a8-fp8|fp8-w8a8)\b", "fp8"),
    (r"[-_.](?:w8a8|int8|8bit|gptq-int8)\b", "int8"),
)
_QUANT_TAIL = re.compile(r"([-_.](quantized|w4a16|w8a8|awq|gptq|int4|int8|4bit|8bit|bnb|nf4|nvfp4|fp8|dynamic|static|"
                         r"block|w4a4|fp8-dynamic))+$", flags=re.I)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_external(name: str, database: Callable[[str], ModelSpec | None],
                     unknown: Callable[[str], str],
                     within: Callable[[str], ModelSpec | None] = lambda _name: None) -> ModelSpec:
    """Steps 2-7 above for a name the database does not spell; `database` looks a name up there
    forgivingly, `within` finds the one database model a longer name holds."""
    unreachable = None
    for step in (_from_path, _from_cache, _from_hub):
        try:
            spec = step(name)
        except SpecError as err:
            if type(err).__name__ != "HubUnreachable":
                raise
            spec, unreachable = None, err  # the name alone may still say what the model is
        if spec is not None:
            return spec
    spec = _inferred(name, database, within) or _variant(name, database, within)
    if spec is not None:
        return _served_as_named(spec, name)
    raise unreachable or NotFoundError(_not_found(name, unknown))


def _from_path(name: str) -> ModelSpec | None:
    path = Path(name).expanduser()
    if not is_model_path(path):
        return None
    result = import_model(path)
    folder = Path(name) if path.is_dir() else Path(name).parent  # the engine loads the folder
    return result.spec.model_copy(update={"origin": f"local path {path}", "served": str(folder)})


def _from_cache(name: str) -> ModelSpec | None:
    ref = parse_repo_id(name)
    found = cached_snapshot(ref) if ref else None
    if ref is None or found is None:
        return None
    snapshot, sha = found
    raw = load_config(snapshot / "config.json")
    spec = spec_from_config(raw, snapshot / "config.json", source=f"https://huggingface.co/{ref.repo}/blob/{sha}/config.json",
                            name=None, display=ref.repo, checkpoint=local_checkpoint(snapshot),
                            slug=ref.repo.split("/")[-1])
    return spec.spec.model_copy(update={"origin": f"Hugging Face cache {ref.repo}@{sha} ({snapshot})",
                                        "hf_repo": ref.repo, **_served(ref)})


def _from_hub(name: str) -> ModelSpec | None:
    ref = parse_repo_id(name)
    if ref is None or offline():
        return None
    from kvplan.specs.hub import fetch_checkpoint, fetch_config

    raw, sha, path = fetch_config(ref)
    result = spec_from_config(raw, f"{ref.repo}@{sha} config.json", source=f"https://huggingface.co/{ref.repo}/blob/{sha}/config.json",
                              name=None, display=ref.repo, checkpoint=fetch_checkpoint(ref, sha),
                              slug=ref.repo.split("/")[-1])
    return result.spec.model_copy(update={"origin": f"Hugging Face Hub {ref.repo}@{sha}", "hf_repo": ref.repo,
                                          **_served(ref)})


def weights_format_in_name(name: str) -> str | None:
    repo = name.rsplit("/", 1)[-1]
    return next((fmt for pattern, fmt in NAME_FORMATS if re.search(pattern, repo, flags=re.I)), None)


def _served(ref: RepoRef) -> dict:
    return {"served": ref.repo, "revision": None if ref.revision == "main" else ref.revision}


def _served_as_named(spec: ModelSpec, name: str) -> ModelSpec:
    ref = parse_repo_id(name)
    return spec.model_copy(update=_served(ref) if ref else {"served": name, "revision": None})


def _inferred(name: str, database: Callable[[str], ModelSpec | None],
              within: Callable[[str], ModelSpec | None]) -> ModelSpec | None:
    fmt = weights_format_in_name(name)
    if fmt is None:
        return None
    base_name = _QUANT_TAIL.sub("", name.rsplit("/", 1)[-1].split("@")[0])
    base = (database(base_name) or within(base_name)) if base_name else None
    if base is None:
        return None
    note = (f"its name '{name}', inferred: {base.name} from the database, weights {fmt} "
            f"(no checkpoint read: its own context and dtype may differ; point at its config.json, or go "
            "online, for the real one)")
    return base.model_copy(update={"quantization": fmt, "checkpoint_bytes": None, "origin": note})


def _variant(name: str, database: Callable[[str], ModelSpec | None],
             within: Callable[[str], ModelSpec | None]) -> ModelSpec | None:
    """A fine-tune or variant of a database model, by its repo id alone (its config was not read); a
    bare name that is no repo id is a typo to report, not a model to guess."""
    if parse_repo_id(name) is None:
        return None
    bare = name.rsplit("/", 1)[-1].split("@")[0]
    base = database(bare) or within(bare)
    if base is None:
        return None
    note = (f"its name '{name}', inferred: {base.name} from the database (its config.json was not read: offline "
            "or not cached; its own context, dtype and quantization may differ; point at its config.json, or go "
            "online, for the real one)")
    return base.model_copy(update={"origin": note})


def _not_found(name: str, unknown: Callable[[str], str]) -> str:
    if name.startswith((".", "/", "~")) or name.endswith(".json") or name.count("/") > 1:  # written as a path
        path = Path(name).expanduser()
        there = "is neither a config.json nor a folder holding one" if path.exists() else "no such file or folder"
        return (f"{name}: {there}; pass a model's config.json or its folder, or a model name (`kvplan models` "
                "lists them)")
    message = unknown(name)
    if parse_repo_id(name):
        where = "offline and not in the local Hugging Face cache" if offline() else "not found"
        return (f"{message}; as a Hugging Face repo it is {where}: download it (`hf download {name} config.json`), "
                "or pass a local config.json or model folder")
    return f"{message}; or pass a config.json or model folder (`kvplan import PATH` writes a spec)"
