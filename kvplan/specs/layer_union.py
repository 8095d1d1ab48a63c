"""Every layer kind a YAML file may name, as the one discriminated union a ModelSpec's `layers`
validate against: the shared kinds of :mod:`kvplan.specs.layers` and those of one family in
:mod:`kvplan.specs.kinds`. Imported where a spec is validated, not where a packaged spec is only
read (the index builds those without a schema), so that `kvplan size` imports no family's kinds
but the ones its model has."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from kvplan.specs.kinds.deepseek_v4 import DeepseekV4Compressed, DeepseekV4Window
from kvplan.specs.kinds.gemma4 import SharedKvAttention
from kvplan.specs.kinds.minimax import LightningState
from kvplan.specs.kinds.minimax_m3 import BlockSparseAttention
from kvplan.specs.kinds.mllama import CrossAttention
from kvplan.specs.layer_base import _Kind
from kvplan.specs.layers import (FAMILY_KINDS, KIND_TAGS, ChunkedLocalAttention, DecompressedAttention, FullAttention,
                                 GatedDeltaNetState, MambaState, MLALatent, MlpOnly, SlidingWindowAttention)

__all__ = ["KINDS", "AnyLayers", "BlockSparseAttention", "CrossAttention", "DeepseekV4Compressed", "DeepseekV4Window",
           "LayerGroup", "LightningState", "SharedKvAttention"]

# The union names the same classes as the registry (tests check it): pydantic and mypy need them spelled out.
_YAML_KINDS = (FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState,
               GatedDeltaNetState, MlpOnly, SharedKvAttention, CrossAttention, LightningState, DeepseekV4Window,
               DeepseekV4Compressed, BlockSparseAttention)
KINDS: dict[str, type[_Kind]] = {cls.model_fields["kind"].default: cls for cls in _YAML_KINDS}
assert tuple(KINDS) == KIND_TAGS and all(KINDS[tag].__name__ == name for tag, (_, name) in FAMILY_KINDS.items())
LayerGroup = Annotated[
    Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState, GatedDeltaNetState,
          MlpOnly, SharedKvAttention, CrossAttention, LightningState, DeepseekV4Window, DeepseekV4Compressed,
          BlockSparseAttention],
    Field(discriminator="kind"),
]
AnyLayers = Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent,
                  MambaState, GatedDeltaNetState, MlpOnly, SharedKvAttention, CrossAttention, LightningState,
                  DeepseekV4Window, DeepseekV4Compressed, BlockSparseAttention, DecompressedAttention]
