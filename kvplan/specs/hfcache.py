"""Models on this machine: a local config.json or model folder, or the local Hugging Face cache,
read offline and without importing huggingface_hub.

The cache layout is huggingface_hub's (the same client kvplan uses online, so what it downloads
resolves here next time):

    $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default $XDG_CACHE_HOME/huggingface or
    ~/.cache/huggingface)/models--ORG--NAME/
        refs/REVISION            the commit sha a branch or tag points at
        snapshots/SHA/config.json, model.safetensors.index.json, *.safetensors
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(?:@(?P<revision>[\w.\-/]+))?$")
SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class RepoRef:
    repo: str
    revision: str  # a branch, a tag or a commit sha

    def __str__(self) -> str:
        return self.repo if self.revision == "main" else f"{self.repo}@{self.revision}"


def parse_repo_id(text: str) -> RepoRef | None:
    """'org/name' or 'org/name@revision' -> RepoRef; anything else (a path, a bare name) -> None."""
    match = REPO_ID.match(text.strip())
    if not match or text.startswith((".", "/", "~")):
        return None
    return RepoRef(match["repo"], match["revision"] or "main")


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = Path(os.environ.get("HF_HOME") or xdg / "huggingface").expanduser()
    return home / "hub"


def repo_folder(ref: RepoRef, cache: Path | None = None) -> Path:
    return (cache or hub_cache_dir()) / ("models--" + ref.repo.replace("/", "--"))


def cached_snapshot(ref: RepoRef, cache: Path | None = None) -> tuple[Path, str] | None:
    """(the snapshot folder holding config.json, its commit sha), or None when not cached."""
    folder = repo_folder(ref, cache)
    sha = ref.revision if SHA.match(ref.revision) else _read_ref(folder / "refs" / ref.revision)
    if sha is None:
        return None
    snapshot = folder / "snapshots" / sha
    return (snapshot, sha) if (snapshot / "config.json").is_file() else None


def _read_ref(path: Path) -> str | None:
    try:
        sha = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return sha if SHA.match(sha) else None


def looks_like_path(name: str) -> bool:
    """Written as a path (./x, /x, ~/x, a/b/c, x.json) and naming a config or model folder that exists.
    `org/name` alone is a repo id: the database first, then the cache and the Hub."""
    written = name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(".json")
    return written and is_model_path(Path(name).expanduser())


def is_model_path(path: Path) -> bool:
    try:
        return path.is_file() or (path.is_dir() and (path / "config.json").is_file())
    except OSError:  # a name too long for the file system, or a path it cannot look at: not a model path
        return False
