"""How an engine sizes its KV pages where a model's layers disagree: vLLM's one page size for a model
that mixes attention with a recurrent state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.layers import MLALatent
from kvplan.units import DTYPE_BYTES, ceil_div

if TYPE_CHECKING:
    from kvplan.specs.model import ModelSpec
    from kvplan.units import KvFormat


def hybrid_page(model: ModelSpec, fmt: KvFormat, tp: int = 1, alignment: int = 16,
                mla_alignment: int = 64, num_spec: int = 0) -> tuple[int, int] | None:
    """(attention block size, page bytes) vLLM gives a model that mixes attention with a recurrent state
    (Mamba, GDN), so every layer's page is one size (model_executor/models/config.py
    HybridAttentionMambaModelConfig): the attention block grows, in multiples of the kernel's 16 tokens,
    until its page holds the largest state; the state's page is then padded to that size. None for a
    model with no recurrent state or no attention.

    Where the attention is MLA (model_config.use_mla: Kimi-Linear's latent beside KDA states) the
    block grows in multiples of mla_alignment: 64 in 0.19 (FlashMLA's kernel block; 128 with CUTLASS
    MLA), and the attention page is MLAAttentionSpec's, the latent per token (kv_lora_rank + rope).

    num_spec speculative tokens add as many rows to each convolution state (the page grows with
    them): Qwen3.6-35B-A3B with MTP x 3 keeps 6 x 8,192 bf16 conv + 32 x 128 x 128 fp32 = 2,195,456 B,
    67 blocks of 16 x 2,048 B: 'Setting attention block size to 1072 tokens' (vLLM 0.25.1 on a GB10)."""
    width = DTYPE_BYTES.get(model.compute_dtype, 2)
    attention = [g for g in model.layers if g.is_attention]
    states = [g.state_bytes(tp, width, num_spec) for g in model.layers if not g.is_attention]
    if not attention or not any(states):
        return None
    per_token = max(g.kv_bytes_per_token(fmt, tp) for g in attention)
    if any(isinstance(g, MLALatent) for g in attention):
        alignment = mla_alignment
    block = alignment * ceil_div(max(states), alignment * per_token)
    return block, block * per_token
