"""Architectures read by a module of their own: each module holds how one family's config becomes
layer groups (and, where the shared estimate cannot, its parameter count), with the engine's
implementation it follows cited. :func:`architecture` finds the module for a model_type; the shared
families stay in :mod:`kvplan.specs.hfconfig`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvplan.specs.hfconfig import Config


@dataclass(frozen=True)
class Architecture:
    """One family: the model_types that name it, its layer groups from a config (the config and its
    layer count), its parameters from the config where the shared estimate cannot count them (None:
    the shared estimate), its MLP width where the config's intermediate_size does not give it (None:
    that key), the engine source its cache layout follows (file and function), and its vision
    tower's parameters from the vision_config and the text width where the shared tower estimate
    cannot count them (None: kvplan.specs.params.tower_params), and its MoE layers from the config
    and its layer count where the shared count cannot tell them (None: params._moe_layer_count)."""

    model_types: tuple[str, ...]
    layer_groups: Callable[[Config, int], list[dict]]
    engine_layout: str
    params: Callable[[Config, list[dict]], int] | None = None
    tower_params: Callable[[object, int], int] | None = None
    intermediate_size: Callable[[Config], int] | None = None
    moe_layers: Callable[[Config, int], int] | None = None


def _registry() -> dict[str, Architecture]:
    from kvplan.specs.archs import (deepseek_v4, falcon_h1, gemma4, glm_dsa, kimi_linear, mimo_v2, minimax_m1,
                                    minimax_m3, mllama, nemotron_nas, step3p7)  # each defines ARCHITECTURE

    modules: tuple[Architecture, ...] = (gemma4.ARCHITECTURE, mllama.ARCHITECTURE, kimi_linear.ARCHITECTURE,
                                         mimo_v2.ARCHITECTURE, minimax_m1.ARCHITECTURE, deepseek_v4.ARCHITECTURE,
                                         falcon_h1.ARCHITECTURE, nemotron_nas.ARCHITECTURE, glm_dsa.ARCHITECTURE,
                                         minimax_m3.ARCHITECTURE, step3p7.ARCHITECTURE)
    return {model_type: arch for arch in modules for model_type in arch.model_types}


ARCHITECTURES: dict[str, Architecture] = _registry()


def architecture(model_type: object) -> Architecture | None:
    """The module-backed architecture a model_type names, or None (a shared family, or unknown)."""
    return ARCHITECTURES.get(model_type) if isinstance(model_type, str) else None
