"""Read an inference engine's start-up log (vLLM V0 and V1, SGLang, TensorRT-LLM) back into the
settings and memory figures it states.

    >>> startup = read_log(Path("vllm.log").read_text(), where="vllm.log")
    >>> startup.engine, startup.release, startup.kv_cache_gib, startup.kv_tokens
    ('vllm', '0.10.1.1', 5.01, 93872)

`read_log` takes the text as users paste it (ANSI colours, process prefixes of interleaved workers,
timestamps, terminal-wrapped lines, progress bars) and returns a frozen `LoggedStartup`: figures as
logged, in GiB whatever the engine's label, None where the log does not say. Per-worker figures are
in `workers`, every KV pool line in `pools`; the headline figures (`kv_cache_gib`, `kv_tokens`,
`weights_gib`...) are the binding worker's, the one with the smallest KV memory.

A text no engine wrote, or a log that states no KV cache figure (cut before the KV lines), raises
`kvplan.errors.SpecError` with one line naming what is missing. Nothing here computes: the
calculators compare these figures with their own.
"""

from __future__ import annotations

from pathlib import Path


from .common import clean_lines, detect
from .sglang import read_sglang
from .startup import Engine, KVPool, LoggedStartup, WorkerMemory
from .trtllm import read_trtllm
from .vllm import read_vllm

READERS = {"vllm": read_vllm, "sglang": read_sglang, "trtllm": read_trtllm}

__all__ = ["Engine", "KVPool", "LoggedStartup", "WorkerMemory", "load_log", "read_log"]



def read_log(text: str, where: str = "the log") -> LoggedStartup:
    """The settings and figures the start-up log `text` states; `where` names it in errors (a path).

    Raises SpecError where no engine's start-up line is in `text`, or where it states no KV cache
    size (no vLLM 'Available KV cache memory' / 'GPU KV cache size' line, no SGLang 'KV Cache is
    allocated' line, no TensorRT-LLM paged KV cache line)."""
    engine = detect(text, where)
    return READERS[engine](clean_lines(text), where)


def load_log(path: Path) -> LoggedStartup:
    """`read_log` of a file: a path that is not a readable regular file, or one too large to be a log,
    is one SpecError line; bytes that are not UTF-8 are replaced, as a terminal would show them."""
    from kvplan.specs.yamlio import read_text

    return read_log(read_text(path, "start-up log", lenient=True), str(path))
