"""The serving engines kvplan plans for, one entry each: what the memory fraction means, the pool
and start-up rules, the batch defaults, and the command line (written by `fit`/`plan`, read back by
`check`). Nothing outside this package names an engine; adding one is a module here and its tests.
"""

from __future__ import annotations

from kvplan.errors import InputError
from kvplan.specs.engines.base import BatchLimits, CommandLine, Deploy, Engine, Term
from kvplan.specs.engines.raw import RAW
from kvplan.specs.engines.sglang import SGLANG
from kvplan.specs.engines.trtllm import TRTLLM
from kvplan.specs.engines.vllm import VLLM

__all__ = ["BatchLimits", "CommandLine", "DEFAULT_ENGINE", "Deploy", "TEXTBOOK_ENGINE", "ENGINES", "Engine", "Term", "engine"]

ENGINES: dict[str, Engine] = {e.name: e for e in (VLLM, SGLANG, TRTLLM, RAW)}
DEFAULT_ENGINE = VLLM.name  # the realistic default: what most deployments run
TEXTBOOK_ENGINE = RAW.name  # nothing but weights and KV: the course notes, and the probe's measured budget


def engine(name: str) -> Engine:
    """The entry a user's --engine names (any case); an unknown name is one line with the choices."""
    try:
        return ENGINES[name.lower()]
    except KeyError:
        raise InputError(f"unknown engine '{name}'; choose one of {', '.join(ENGINES)}", "engine") from None
