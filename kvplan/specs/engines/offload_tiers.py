"""Which KV offload tiers each engine's server has (calc/kvtiers.py sizes them).

vLLM: --kv-offloading-size with --kv-offloading-backend native or lmcache (vllm/config/cache.py
CacheConfig, 0.19 and 0.34; 0.10.2's has neither). SGLang: --enable-hierarchical-cache with
--hicache-ratio or --hicache-size (sglang/srt/arg_groups/fields/memory.py)."""

from __future__ import annotations

from kvplan.specs.engines.base import Engine

BACKENDS: dict[str, tuple[str, ...]] = {"vllm": ("native", "lmcache"), "sglang": ("hicache",)}  # the first: default
FIRST: dict[str, tuple[int, ...]] = {"vllm": (0, 11)}  # presets that end before it have no such flag
NEWER_RULE: dict[str, tuple[int, ...]] = {"vllm": (0, 34)}  # page-aligned chunks, one MLA copy, LMCache's own size


def owner(backend: str) -> str:
    """The registry name of the engine whose tier `backend` is."""
    return next(name for name, backends in BACKENDS.items() if backend in backends)


def default_backend(engine: Engine) -> str | None:
    return BACKENDS.get(engine.name, (None,))[0]


def has_tiers(engine: Engine) -> bool:
    """The preset's releases have the flag (False for a preset that ends before it came)."""
    first = FIRST.get(engine.name)
    return engine.name in BACKENDS and not (first and engine.last is not None and engine.last < first)


def newer_rule(engine: Engine) -> bool:
    return engine.first >= NEWER_RULE.get(engine.name, (10**6,))
