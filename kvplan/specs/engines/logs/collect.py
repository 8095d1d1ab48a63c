"""What the engine modules share: rules (a named regex and what its match states), the collector
that gathers settings, per-worker figures and pools, the readers of the settings dumps engines
print (``key=value`` configs, ``'key': value`` dicts, command lines), and the step that turns what
was collected into a `LoggedStartup`."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from kvplan.errors import SpecError

from .common import Line
from .startup import SETTING_NAMES, WORKER_FIELDS, Engine, KVPool, LoggedStartup, WorkerMemory


@dataclass
class Collector:
    """Settings (the first statement wins), figures per worker, and pools in log order."""

    # values of every type a record's fields take, checked when the frozen records are built
    settings: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    pools: list[dict[str, Any]] = field(default_factory=list)

    def setting(self, name: str, value: object) -> None:
        assert name in SETTING_NAMES or name.startswith("_"), name  # a typo fails the fixture tests
        if value is not None and name not in self.settings:
            self.settings[name] = value

    def final(self, name: str, value: object) -> None:
        """A setting the engine states once it is in force (SGLang's max_total_num_tokens line),
        over what its arguments said."""
        assert name in SETTING_NAMES, name
        if value is not None:
            self.settings[name] = value

    def append(self, name: str, value: object) -> None:
        """One more value of a setting the log states line by line (a tuple, in log order)."""
        assert name in SETTING_NAMES, name
        self.settings[name] = (*self.settings.get(name, ()), value)

    def figure(self, worker: str, name: str, value: object) -> None:
        assert name in WORKER_FIELDS, name
        self.workers.setdefault(worker, {}).setdefault(name, value)

    def pool(self, worker: str, **figures: object) -> None:
        self.pools.append({"worker": worker, **figures})


Apply = Callable[[Collector, str, re.Match[str]], None]


@dataclass(frozen=True)
class Rule:
    """A named regex over one message, and what its match states (worker, match -> collector)."""

    pattern: re.Pattern[str]
    apply: Apply


def run_rules(lines: Iterable[Line], rules: Iterable[Rule], collector: Collector) -> Collector:
    """Every rule against every message; a message may state several things (a config dump). A
    figure no float holds ("Available KV cache memory: 9999...9 GiB") states nothing."""
    ordered = tuple(rules)
    for line in lines:
        for rule in ordered:
            if match := rule.pattern.search(line.text):
                try:
                    rule.apply(collector, line.worker, match)
                except (ValueError, OverflowError):
                    continue
    return collector


def number(text: str) -> float:
    """A logged figure: "1,594,928" -> 1594928.0, "-0.26" -> -0.26; ValueError past a float's range."""
    value = float(text.replace(",", ""))
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]}... is no figure")
    return value


def integer(text: str) -> int:
    return int(text.replace(",", ""))


# The GPU named in a kernel-config path: "configs/E=128,N=768,device_name=NVIDIA_H100_80GB_HBM3.json"
DEVICE_NAME = re.compile(r"device_name=(?P<gpu>[\w-]+?)(?=[,\]]|\.json)")


# A value in a Python repr the engines print: a quoted string, or a bare word or number up to a
# delimiter. The delimiter is required, so a line cut mid-value ("'max_model_len': 6") states nothing.
VALUE = r"""(?P<value>'(?:[^'\\]|\\.)*'|"[^"]*"|[^\s,(){}\[\]'"]+)(?=\s*[,)}])"""
# Config and ServerArgs dumps: "model='Qwen/Qwen3-8B', ... max_seq_len=40960, tensor_parallel_size=1,"
KEY_EQUALS = re.compile(r"(?<![\w.])(?P<key>\w+)=" + VALUE)
# The non-default args dict: "non-default args: {'model_tag': 'Qwen/Qwen3-8B', 'max_model_len': 8192, ...}"
KEY_COLON = re.compile(r"'(?P<key>\w+)':\s*" + VALUE)


def scalar(raw: str) -> object:
    """A repr'd value as Python: quotes dropped, None/True/False, ints and floats; else the word."""
    if raw[:1] in "'\"":
        return raw[1:-1]
    words: dict[str, object] = {"None": None, "True": True, "False": False, "null": None,
                                "true": True, "false": False}
    if raw in words:
        return words[raw]
    for kind in (int, number):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def pairs(pattern: re.Pattern[str], text: str) -> dict[str, object]:
    """Each key's first value in a dump (nested configs come later than the top-level keys)."""
    found: dict[str, object] = {}
    for match in pattern.finditer(text):
        found.setdefault(match["key"], scalar(match["value"]))
    return found


def flags(command: str) -> dict[str, object]:
    """A command line's options: "--max-model-len 8192 --enable-prefix-caching" -> {"max_model_len":
    "8192", "enable_prefix_caching": True}; "--tp=2" too; the first bare word after "serve" or
    "--model" names the model (as "model")."""
    try:
        words = shlex.split(command)
    except ValueError:  # an unbalanced quote in a pasted line
        words = command.split()
    found: dict[str, object] = {}
    for index, word in enumerate(words):
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            following = words[index + 1] if index + 1 < len(words) else "--"
            found.setdefault(name.replace("-", "_"), value or (True if following.startswith("-") else following))
        elif index and words[index - 1] == "serve" and "model" not in found:
            found["model"] = word
    return found


def first(values: dict[str, object], *names: str) -> object:
    """The first of `names` that `values` states (not None)."""
    for name in names:
        if values.get(name) is not None:
            return values[name]
    return None


def as_int(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None and not isinstance(value, bool) else None
    except ValueError:
        return None


def as_float(value: object) -> float | None:
    try:
        return number(str(value)) if value is not None and not isinstance(value, bool) else None
    except ValueError:
        return None


def as_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def as_text(value: object) -> str | None:
    return None if value is None or isinstance(value, bool) else str(value).removeprefix("torch.")


def build(engine: Engine, where: str, collected: Collector, missing: str) -> LoggedStartup:
    """The startup record; SpecError naming `missing` (the lines the engine prints for its KV cache)
    where the log states no KV figure at all."""
    workers = tuple(WorkerMemory(worker=name, **values) for name, values in collected.workers.items() if values)
    pools = tuple(KVPool(**values) for values in collected.pools)
    memory = binding(workers)
    settings = {name: value for name, value in collected.settings.items()
                if not name.startswith("_") and name not in ("kv_tokens", "max_concurrency")}
    kv_tokens, max_concurrency = binding_pool(pools, collected.settings)
    if memory.kv_cache_gib is None and memory.kv_cache_bytes is None and kv_tokens is None and not pools:
        raise SpecError(f"{where}: this {engine} log states no KV cache size ({missing}); "
                        "paste the log from the engine's start up to the KV cache lines")
    settings.update(kv_tokens=kv_tokens, max_concurrency=max_concurrency)
    return LoggedStartup(engine=engine, where=where, workers=workers, pools=pools, memory=memory, **settings)


def binding(workers: tuple[WorkerMemory, ...]) -> WorkerMemory:
    """The worker with the smallest KV memory, each figure it lacks taken from the first that states it."""
    if not workers:
        return WorkerMemory()
    sized = [w for w in workers if w.kv_cache_gib is not None]
    chosen = min(sized, key=lambda w: w.kv_cache_gib or 0.0) if sized else workers[0]
    filled: dict[str, Any] = {name: next((getattr(w, name) for w in (chosen, *workers) if getattr(w, name) is not None), None)
              for name in WORKER_FIELDS}
    return replace(chosen, **filled)


def binding_pool(pools: tuple[KVPool, ...], settings: dict[str, Any]) -> tuple[int | None, float | None]:
    """The tokens of the smallest pool, or the engine's own total where it states one (setting
    "kv_tokens"), or the capacity an error line states ("_capacity_tokens"); and the concurrency
    logged beside the smallest pool."""
    counted = [pool for pool in pools if pool.tokens is not None]
    smallest = min(counted, key=lambda pool: pool.tokens or 0) if counted else None
    concurrency = next((p.max_concurrency for p in (smallest, *pools) if p and p.max_concurrency is not None), None)
    tokens = first({"total": settings.get("kv_tokens"), "pool": smallest.tokens if smallest else None,
                    "capacity": settings.get("_capacity_tokens")}, "total", "pool", "capacity")
    return as_int(tokens), concurrency
