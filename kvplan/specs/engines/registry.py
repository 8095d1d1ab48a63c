"""The engine registry: every engine's release presets, oldest first, and `engine(spec)`, which takes
what a user types (`vllm`, `vllm==0.19.1`) to its preset."""

from __future__ import annotations

import re

from kvplan.errors import InputError
from kvplan.specs.engines import DEFAULT_ENGINE, TEXTBOOK_ENGINE
from kvplan.specs.engines.base import BatchLimits, CommandLine, Deploy, Engine, Replica, Term
from kvplan.specs.engines.raw import RAW
from kvplan.specs.engines.releases import release_text, release_tuple
from kvplan.specs.engines.sglang_older import SGLANG_PRESETS
from kvplan.specs.engines.trtllm import TRTLLM_PRESETS
from kvplan.specs.engines.vllm_newer import VLLM, VLLM_PRESETS

__all__ = ["release_text", "release_tuple", "BatchLimits", "CommandLine", "DEFAULT_ENGINE", "Deploy", "TEXTBOOK_ENGINE", "ENGINES", "PRESETS", "Engine",
           "Replica", "Term", "engine"]

# Every engine's presets, oldest first; the default preset of each is the one its name alone takes.
PRESETS: dict[str, tuple[Engine, ...]] = {
    VLLM.name: VLLM_PRESETS, SGLANG_PRESETS[-1].name: SGLANG_PRESETS, TRTLLM_PRESETS[-1].name: TRTLLM_PRESETS,
    RAW.name: (RAW,)}
DEFAULTS: dict[str, Engine] = {name: presets[-1] for name, presets in PRESETS.items()}  # the newest
ENGINES: dict[str, Engine] = DEFAULTS  # by name: the preset the name alone takes
assert DEFAULT_ENGINE in PRESETS and TEXTBOOK_ENGINE in PRESETS  # the names every command starts with

# A release as engines print and pip names it (PEP 440): the numbers, then any pre-release, dev or
# local tail, which selects the preset of the numbered release ("0.11.0rc2", "0.10.2.dev123+g4a1b",
# "0.10.1+cu128", "1.1.0rc5" are 0.11.0, 0.10.2, 0.10.1, 1.1.0), or a post release, which sorts
# after its release and before the next (SGLang changed a rule at 0.4.9.post3): see release_tuple.
_SPEC = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:==\s*v?(\d+(?:\.\d+)*)(\.x|[-_.+]?[A-Za-z][\w.+-]*)?)?\s*$")
def asked_release(spec: str) -> tuple[int, ...] | None:
    """The release an --engine names (vllm==0.15.0 -> (0, 15, 0)); None where it names none."""
    match = _SPEC.match(spec)
    return release_tuple(match[2], match[3]) if match and match[2] else None


def engine(spec: str) -> Engine:
    """The preset a user's --engine names: 'vllm' (its default preset), 'vllm==0.19' or 'vllm==0.19.1'
    (the preset holding that release); anything else is one line with the choices."""
    match = _SPEC.match(spec)
    name = match[1].lower() if match else spec
    typed, _, release = spec.partition("==")
    if not match and typed.strip().lower() in PRESETS:
        raise InputError(f"'{release.strip()}' in --engine {spec} is not a release; give one as the engine prints it "
                         f"({typed.strip().lower()}==0.19.1, ==0.6.3.post1): `kvplan engines` lists the presets",
                         "engine")
    if name not in PRESETS:
        raise InputError(f"unknown engine '{spec}'; choose one of {', '.join(PRESETS)} (with ==VERSION for a "
                         "release: `kvplan engines` lists them)", "engine")
    if not match or match[2] is None:
        return DEFAULTS[name]
    version = release_tuple(match[2], match[3])
    found = [preset for preset in PRESETS[name] if preset.release and preset.holds(version)]
    if not found:
        releases = ", ".join(p.key for p in PRESETS[name] if p.release) or f"none ({name} has no releases)"
        raise InputError(f"no preset of {name} holds release {match[2]}; choose one of {releases}", "engine")
    return found[-1]
