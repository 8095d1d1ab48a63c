"""Models from the Hugging Face Hub, through huggingface_hub (imported only here, and only when the
database, a local path and the local cache have all come up empty).

`config.json` is downloaded into the standard cache (so the next run resolves offline), and every
tensor's dtype and shape comes from the safetensors headers by range requests, without downloading
weights. huggingface_hub honours HF_ENDPOINT, HF_TOKEN (gated repos) and HF_HUB_OFFLINE.
"""

from __future__ import annotations

import json
from pathlib import Path

from kvplan.errors import NotFoundError, SpecError
from kvplan.specs.checkpoint import Checkpoint
from kvplan.specs.hfcache import RepoRef
from kvplan.specs.jsonio import loads


def fetch_config(ref: RepoRef) -> tuple[dict, str, Path]:
    """(config.json, the commit sha it came from, the cached file), or one clear error."""
    hub = _client()
    try:  # one HEAD without retries first: an unreachable Hub fails at once, not after 5 back-offs
        hub.get_hf_file_metadata(hub.hf_hub_url(ref.repo, "config.json", revision=ref.revision))
        path = Path(hub.hf_hub_download(ref.repo, "config.json", revision=ref.revision))
    except Exception as exc:  # huggingface_hub's errors, told apart by class below
        raise _error(ref, exc) from None
    try:
        config = loads(path.read_text(encoding="utf-8"), path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{ref}: its config.json is not valid JSON ({exc}); point at a local copy") from None
    if not isinstance(config, dict):
        raise SpecError(f"{ref}: its config.json is not a JSON object; point at a local copy")
    return config, path.parent.name, path


def fetch_checkpoint(ref: RepoRef, sha: str) -> Checkpoint:
    """Every tensor's name, dtype and element count from the repo's safetensors headers (none: empty)."""
    hub = _client()
    try:
        meta = hub.get_safetensors_metadata(ref.repo, revision=sha)
    except hub.errors.NotASafetensorsRepoError:
        return Checkpoint()
    except hub.errors.SafetensorsParsingError as exc:
        raise SpecError(f"{ref}: a safetensors header on the Hub is corrupt ({exc}); "
                        "point at a local folder, or give the weights with --weights-gib") from None
    except Exception as exc:
        raise _error(ref, exc) from None
    tensors = tuple((name, info.dtype, info.parameter_count) for file in meta.files_metadata.values()
                    for name, info in file.tensors.items())
    return Checkpoint(tensors, (meta.metadata or {}).get("total_size"))


def _client():
    try:
        import huggingface_hub
        import huggingface_hub.errors  # the classes _error tells apart
        from huggingface_hub.utils import disable_progress_bars, logging
    except ImportError:  # pragma: no cover - a core dependency
        raise SpecError("resolving Hugging Face repos needs huggingface_hub: pip install huggingface_hub") from None
    logging.set_verbosity_error()  # its retry warnings: kvplan reports the outcome in one line
    disable_progress_bars()
    return huggingface_hub


def _error(ref: RepoRef, exc: Exception) -> Exception:
    """huggingface_hub's exception as one line that names the problem and the fix."""
    name = type(exc).__name__
    if name == "GatedRepoError":
        return SpecError(f"{ref.repo} is gated on the Hub: accept its licence there and set HF_TOKEN "
                         "(or run `hf auth login`), or point at a local copy of its config.json")
    if name in ("RepositoryNotFoundError",):
        return NotFoundError(f"{ref.repo} is not a model repo on the Hub (or it is private: set HF_TOKEN); "
                             "check the name, or run `kvplan models` for the database")
    if name == "RevisionNotFoundError":
        return NotFoundError(f"{ref.repo} has no revision '{ref.revision}' on the Hub; use a branch, tag or "
                             "commit sha that exists")
    if name in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
        return SpecError(f"{ref} has no config.json on the Hub; kvplan needs a transformers model repo")
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return NotFoundError(f"{ref} is not in the local Hugging Face cache and the Hub is off "
                             "(offline); download it once online, or point at a local config.json")
    return HubUnreachable(f"{ref}: cannot read it from the Hub ({name}: {str(exc).splitlines()[0][:200]}); "
                          "check the network and HF_ENDPOINT, or use --offline with a cached or local model")


class HubUnreachable(SpecError):
    """The Hub did not answer (network, endpoint): not a verdict on the repo."""
