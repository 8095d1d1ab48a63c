"""The spec database as rows for `kvplan models` and `kvplan gpus`, sorted by name, or by family and
release date (the releases view of the models listing); the engine registry's presets for
`kvplan engines`, oldest first."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from kvplan.results.catalog import EngineRow, FamilyReleases, GpuRow, ModelRow, ReleaseRow
from kvplan.specs.engines.registry import DEFAULTS, PRESETS, Engine, release_text
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec


def model_rows(models: Iterable[ModelSpec]) -> tuple[ModelRow, ...]:
    return tuple(ModelRow(name=m.name, params_total=m.params_total, params_active=m.params_active,
                          layer_counts=tuple((g.kind, g.count) for g in m.layers), max_context=m.max_context,
                          dtype=m.dtype)
                 for m in sorted(models, key=lambda m: m.name))


def _newest_first(released: date | None, name: str) -> tuple[bool, int, str]:
    """Dated before undated, newer before older, then by name."""
    return released is None, -(released.toordinal() if released else 0), name


def release_rows(models: Iterable[ModelSpec]) -> tuple[FamilyReleases, ...]:
    """The database by family, newest family first (by its newest release), each family's releases
    newest first; undated releases and families after the dated ones. A family is the spec's family
    with - read as _: hand-written specs spell 'deepseek-v3' what imported ones call 'deepseek_v3'."""
    families: dict[str, list[ModelSpec]] = {}
    for m in models:
        families.setdefault(m.family.replace("-", "_"), []).append(m)
    rows = []
    for family, specs in families.items():
        specs.sort(key=lambda m: _newest_first(m.released, m.name))
        releases = tuple(ReleaseRow(name=m.name, display_name=m.display_name, released=m.released,
                                    released_source=m.released_source) for m in specs)
        rows.append(FamilyReleases(family=family, newest=releases[0].released, releases=releases))
    return tuple(sorted(rows, key=lambda f: _newest_first(f.newest, f.family)))


def gpu_rows(gpus: Iterable[GpuSpec]) -> tuple[GpuRow, ...]:
    return tuple(GpuRow(name=g.name, memory_bytes=g.memory_bytes, usable_memory_bytes=g.usable_memory_bytes,
                        cuda_memory_bytes=g.cuda_memory()[0], cuda_memory_basis=g.cuda_memory()[1],
                        hbm_bandwidth_gbps=g.hbm_bandwidth_gbps, bf16_tflops_dense=g.bf16_tflops_dense,
                        fp8_tflops_dense=g.fp8_tflops_dense, host_link=g.host_link.kind,
                        host_link_generation=g.host_link.generation, host_link_gbps=g.host_link.gbps_per_direction)
                 for g in sorted(gpus, key=lambda g: g.name))


def _versions(e: Engine) -> str:
    first = release_text(e.first)
    if e.last is None:
        return f"{first} and later"
    width = max(len(e.first), len(e.last))
    if e.first + (0,) * (width - len(e.first)) == e.last + (0,) * (width - len(e.last)):
        return release_text(e.last + (0,) * (width - len(e.last)))  # one release: 0.20.0
    # a last release shorter than the first names its series: 0.20.1 to 0.20.x
    last = release_text(e.last) + (".x" if len(e.last) < len(e.first) else "")
    return f"{first} to {last}"


def engine_rows() -> tuple[EngineRow, ...]:
    return tuple(EngineRow(key=e.key, name=e.name, display_name=e.display_name, default=e is DEFAULTS[name],
                           versions=_versions(e) if e.release else "-", util_name=e.util_name, util=e.util,
                           util_meaning=e.util_meaning, block_size=e.block_size, start_rule=e.start_rule,
                           long_context_switch=e.long_context_switch, changes=e.changes, encodes=e.encodes)
                 for name, presets in PRESETS.items() for e in presets)
