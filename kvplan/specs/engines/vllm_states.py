"""How many pages of a recurrent state (Mamba, Gated DeltaNet, lightning attention) one request of a
hybrid model takes in vLLM V1, release by release: what sets the max concurrency vLLM logs and, from
0.20.1, its 'GPU KV cache size: N tokens' (int(concurrency x max_model_len)).

A state group's pages per request are MambaSpec.max_memory_usage_bytes / page_size_bytes
(vllm/v1/kv_cache_interface.py), summed with the attention groups' by
get_max_concurrency_for_kv_cache_config (vllm/v1/core/kv_cache_utils.py). By release:

    0.10.2 to 0.11   1 page ("We allocate 1 block for each request now"), speculative blocks or not
    0.12 to 0.14     cdiv(max_model_len, mamba_block_size): 1 page (mamba_block_size = max_model_len)
                     unless prefix caching is asked for (then one a block of the attention's size)
    0.15 on          mamba_cache_mode "none": 1 + num_speculative_blocks; "align": 2 + them (0.29 on:
                     + num_prefill_checkpoint_blocks); "all": cdiv(max_model_len, block_size) (0.25 on:
                     + num_speculative_blocks; kvplan adds them from 0.15)

num_speculative_blocks is num_speculative_tokens (MambaBase.get_kv_cache_spec). The mode
(model_executor/models/config.py MambaModelConfig): "none" without prefix caching; with it, to 0.27,
"all" for a model vLLM marks SupportsMambaPrefixCaching (the Mamba-1/2 hybrids: Jamba, Bamba,
Nemotron-H, Granite-4, Falcon-H1, Zamba2) and "align" for the others (GDN, lightning); "align" for
every model from 0.28. Prefix caching is on by default for a hybrid from 0.26
(ModelConfig.is_prefix_caching_supported: "Generative hybrid models support prefix caching"), off
before ("... since the feature is still experimental").

Prefill checkpoint blocks (align mode): a Mamba-2 mixer keeps one from 0.32
(mamba_mixer2.py get_kv_cache_spec), a Qwen GDN layer from 0.33 where its prefill runs FlashInfer's
kernel (gdn/qwen_gdn_linear_attn.py _resolve_gdn_prefill_backend: Hopper, or Blackwell with
head_k_dim 128 on a CUDA 13 runtime, which kvplan assumes), and then the attention block is a multiple
of that kernel's 64 tokens (platforms/interface.py: lcm(kernel alignment, FLASHINFER_GDN_CHECKPOINT_
ALIGNMENT)). The scheduler takes checkpoints only where every state layer can export one.

Not encoded: "all" mode's attention block, a multiple of the Mamba-2 kernel's chunk_size (0.15 to
0.27, with prefix caching on a Mamba model); kvplan keeps the smallest block that holds the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kvplan.units import ceil_div

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.layer_kind import LayerKind
    from kvplan.specs.model import ModelSpec


class Vllm(Protocol):
    """What a vLLM preset states about a hybrid's states (kvplan/specs/engines/vllm.py sets them)."""

    speculative_state_blocks: bool
    prefix_caching_mode: str
    hybrid_prefix_caching: bool
    checkpoint_kinds: tuple[str, ...]

FLASHINFER_GDN_CHECKPOINT_ALIGNMENT = 64  # v1/attention/backends/gdn_attn.py (0.33, 0.34)


def state_kinds(model: ModelSpec) -> list[LayerKind]:
    return [g for g in model.layers if not g.is_attention and g.state_elements(1)]


def supports_mamba_prefix_caching(model: ModelSpec) -> bool:
    """Whether vLLM's model class is SupportsMambaPrefixCaching: every state is a Mamba mixer."""
    kinds = state_kinds(model)
    return bool(kinds) and all(g.kind == "mamba" for g in kinds)


def mamba_cache_mode(engine: Vllm, model: ModelSpec, prefix_caching: bool | None) -> str:
    """"none", "align" or "all": what MambaModelConfig.verify_and_update_config makes of prefix caching
    (None: the release's default for a hybrid)."""
    on = engine.hybrid_prefix_caching if prefix_caching is None else prefix_caching
    rule = engine.prefix_caching_mode
    if not on or rule == "none":
        return "none"
    if rule == "all" or (rule == "all_or_align" and supports_mamba_prefix_caching(model)):
        return "all"
    return "align"


def _exports_checkpoint(engine: Vllm, group: LayerKind, gpu: GpuSpec | None) -> bool:
    """A layer's get_prefill_checkpoint_alignment is not None in this release on this GPU."""
    if group.kind == "mamba":  # Mamba-2 (grouped B/C); Mamba-1's mamba_mixer.py keeps none
        return "mamba2" in engine.checkpoint_kinds and bool(getattr(group, "n_groups", 0))
    if group.kind == "gdn" and "gdn" in engine.checkpoint_kinds and gpu is not None:
        arch = gpu.architecture
        return arch == "Hopper" or (arch.startswith("Blackwell") and getattr(group, "head_k_dim", 0) == 128)
    return False


def prefill_checkpoint_blocks(engine: Vllm, model: ModelSpec, gpu: GpuSpec | None) -> int:
    """1 where every state layer exports a prefill checkpoint (abstract.py
    get_mamba_prefill_checkpoint_alignment is None unless every Mamba layer declares one), else 0."""
    kinds = state_kinds(model)
    return int(bool(kinds) and all(_exports_checkpoint(engine, g, gpu) for g in kinds))


def checkpoint_alignment(engine: Vllm, model: ModelSpec, gpu: GpuSpec | None, prefix_caching: bool | None) -> int:
    """The attention kernel's 16-token alignment of a hybrid's block, or 64 where GDN layers checkpoint
    on FlashInfer in align mode (platforms/interface.py _align_hybrid_block_size, 0.33 on)."""
    gdn = any(g.kind == "gdn" for g in state_kinds(model))
    if gdn and mamba_cache_mode(engine, model, prefix_caching) == "align" and \
            prefill_checkpoint_blocks(engine, model, gpu):
        return FLASHINFER_GDN_CHECKPOINT_ALIGNMENT
    return 16


def state_pages(engine: Vllm, model: ModelSpec, gpu: GpuSpec | None, *, block_size: int, max_model_len: int,
                num_spec: int = 0, prefix_caching: bool | None = None) -> int:
    """Pages one request holds in each state group (MambaSpec.max_memory_usage_bytes / page_size_bytes)."""
    spec = num_spec if engine.speculative_state_blocks else 0
    mode = mamba_cache_mode(engine, model, prefix_caching)
    if mode == "none":
        return 1 + spec
    if mode == "align":
        return 2 + spec + prefill_checkpoint_blocks(engine, model, gpu)
    return ceil_div(max_model_len, block_size) + spec
