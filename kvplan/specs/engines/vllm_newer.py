"""vLLM 0.20.1 and later: the presets whose 'GPU KV cache size' is max concurrency x max_model_len,
and where a hybrid's state pages per request change (vllm_states.py); V0's 0.7 and its releases before 0.5.3;
the others are in vllm.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import RUNTIME_OVERHEAD_BYTES, BatchLimits, Replica, Term
from kvplan.specs.engines.vllm_command import API_SERVER_COMMAND
from kvplan.specs.engines.vllm import V0_NON_TORCH_BYTES, Vllm, Vllm08, Vllm11, Vllm12, Vllm15, Vllm20, VllmV0
from kvplan.units import GIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

# 0.7.0 measures it as the growth of memory outside torch since the worker started (utils.py MemorySnapshot):
# "non_torch_memory takes 0.05GiB" on a T4, logged by 0.7.2 and by 0.8.2's V0.
V0_SNAPSHOT_NON_TORCH_BYTES = round(0.05 * GIB)


class Vllm201(Vllm20):
    """vLLM 0.20.1 and 0.20.x: the token capacity logged as max concurrency x max_model_len."""

    release = "0.20.1"
    first: tuple[int, ...] = (0, 20, 1)
    last: tuple[int, ...] | None = (0, 20)
    encodes: tuple[str, ...] = ("vllm/v1/core/kv_cache_utils.py _report_kv_cache_config "
                                "(num_tokens = int(max_concurrency x max_model_len))",)
    changes = ("'GPU KV cache size' is max concurrency x max_model_len (0.20.0: num_blocks // groups x "
               "block_size), so a hybrid's state pages per request and a window's cap count in it")
    tokens_rule = "concurrency"


class Vllm21(Vllm201):
    """vLLM 0.21 to 0.25: FlashInfer's sampler on by default (Turing and later)."""

    release = "0.21"
    first: tuple[int, ...] = (0, 21)
    last: tuple[int, ...] | None = (0, 25)
    encodes: tuple[str, ...] = ("vllm/envs.py VLLM_USE_FLASHINFER_SAMPLER=1", "vllm/v1/sample/ops/topk_topp_sampler.py")
    changes = "FlashInfer's sampler by default (compute capability 7.5 to 12.1)"
    flashinfer_sampler = True


class Vllm26(Vllm21):
    """vLLM 0.26 and 0.27: prefix caching on by default for hybrids."""

    release = "0.26"
    first: tuple[int, ...] = (0, 26)
    last: tuple[int, ...] | None = (0, 27)
    encodes: tuple[str, ...] = ("vllm/config/model.py ModelConfig.is_prefix_caching_supported",
                                "vllm/model_executor/models/config.py MambaModelConfig")
    changes = ("prefix caching is on by default for a hybrid: its states take 2 + num_speculative_tokens pages "
               "a request ('align'), or one a block where the model supports Mamba prefix caching ('all')")
    hybrid_prefix_caching = True


class Vllm28(Vllm26):
    """vLLM 0.28 to 0.31: prefix caching puts every hybrid in mamba_cache_mode 'align'."""

    release = "0.28"
    first: tuple[int, ...] = (0, 28)
    last: tuple[int, ...] | None = (0, 31)
    encodes: tuple[str, ...] = ("vllm/model_executor/models/config.py MambaModelConfig",
                                "vllm/v1/kv_cache_interface.py MambaSpec (0.29: num_prefill_checkpoint_blocks)")
    changes = ("prefix caching takes every hybrid to 'align' ('all' only when asked for); from 0.29 'align' "
               "counts prefill checkpoint blocks, which only Kimi-K3's KDA keeps here (not in kvplan)")
    prefix_caching_mode = "align"


class Vllm32(Vllm28):
    """vLLM 0.32: a Mamba-2 mixer keeps a prefill checkpoint block in 'align' mode."""

    release = "0.32"
    first: tuple[int, ...] = (0, 32)
    last: tuple[int, ...] | None = (0, 32)
    encodes: tuple[str, ...] = ("vllm/model_executor/layers/mamba/mamba_mixer2.py get_kv_cache_spec",)
    changes = "a Mamba-2 state takes 3 + num_speculative_tokens pages a request in 'align' mode"
    checkpoint_kinds: tuple[str, ...] = ("mamba2",)


class Vllm33(Vllm32):
    """vLLM 0.33: a Qwen GDN layer on FlashInfer's prefill keeps a checkpoint block too."""

    release = "0.33"
    first: tuple[int, ...] = (0, 33)
    last: tuple[int, ...] | None = (0, 33)
    encodes: tuple[str, ...] = ("vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py get_kv_cache_spec",
                                "vllm/platforms/interface.py _align_hybrid_block_size")
    changes = ("a GDN state on FlashInfer's prefill (Hopper; Blackwell with 128-wide keys) takes 3 + "
               "num_speculative_tokens pages a request in 'align' mode, its attention block a multiple of 64")
    checkpoint_kinds = ("mamba2", "gdn")


class Vllm34(Vllm33):
    """vLLM 0.34, the newest release read and the default preset: batch defaults grow on GPUs of
    160 GiB and more."""

    release = "0.34"
    first: tuple[int, ...] = (0, 34)
    last: tuple[int, ...] | None = None
    encodes: tuple[str, ...] = ("vllm/engine/arg_utils.py EngineArgs.get_batch_defaults", "vllm/config/cache.py")
    changes = ("the API server batches 16,384 tokens on GPUs of 160 GiB and more; gpu_memory_utilization 0.92 "
               "(1.0 only with the extensible KV cache, which kvplan does not plan)")
    mla_hybrid_alignment = 128
    # packing from 0.29 (0.27-0.28 group DeepSeek-V4 alike; 0.21 does not: docs/engines.md); async by default
    packed_kv_groups, async_scheduling = True, True

    def batch_limits(self, gpu: GpuSpec | None, total_bytes: int, max_model_len: int = 0,
                     chunked_prefill: bool | None = None) -> BatchLimits:
        limits = super().batch_limits(gpu, total_bytes, max_model_len, chunked_prefill)
        if total_bytes >= 160 * GIB and limits.chunked_prefill:
            return BatchLimits(16384, limits.max_num_seqs)
        return limits


class VllmV07(VllmV0):
    """vLLM 0.7, V0's last default release; and V0 where 0.8 to 0.10 fall back to it (VLLM_USE_V1=0, or
    a model V1 does not serve): non-torch memory counted from a snapshot at the worker's start."""

    release = "0.7"
    first: tuple[int, ...] = (0, 7)
    last: tuple[int, ...] | None = (0, 7)
    encodes: tuple[str, ...] = (*VllmV0.encodes, "vllm/utils.py MemorySnapshot, memory_profiling (0.7.0)")
    changes = ("V0's non-torch memory is its growth outside torch since the worker started (a snapshot), not "
               "what the GPU holds past the weights and the profile's torch growth: 0.05 GiB on one GPU, not 0.35; "
               "a V0 log of 0.8 to 0.10 (VLLM_USE_V1=0, or a GPU below compute 8.0) is planned with it")
    base_overhead_bytes = V0_SNAPSHOT_NON_TORCH_BYTES


class VllmV04(VllmV0):
    """vLLM 0.3.1 to 0.5.2: no chunked prefill unless asked, whatever the context."""

    release = "0.4"
    first: tuple[int, ...] = (0, 3, 1)
    last: tuple[int, ...] | None = (0, 5, 2)
    encodes: tuple[str, ...] = ("vllm/worker/worker.py Worker.determine_num_available_blocks "
                                "(peak_memory = init_gpu_memory - free after the profile run)",
                                "vllm/config.py SchedulerConfig (max(max_model_len, 2048) batched tokens)")
    changes = ("no chunked prefill by default at any context (0.5.3 turns it on past 32K), so the profile run is "
               "max(max_model_len, 2,048) tokens; the memory counted is what the worker took since it started "
               "(init_gpu_memory - free): the weights, the profile's torch growth and its non-torch growth")
    plans_unnamed_v0_logs = False
    command = API_SERVER_COMMAND

    def batch_limits(self, gpu: GpuSpec | None, total_bytes: int, max_model_len: int = 0,
                     chunked_prefill: bool | None = None) -> BatchLimits:
        """SchedulerConfig: 512 batched tokens with chunked prefill (off unless asked), else a whole
        prompt, max(max_model_len, 2,048) tokens (arg_utils has no use_long_context before 0.5.3)."""
        chunked = bool(chunked_prefill)
        return BatchLimits(512 if chunked else max(max_model_len, 2048), 256, chunked)


class VllmV025(VllmV04):
    """vLLM 0.2.5 to 0.3.0: the memory counted is all the GPU holds (total - free), the CUDA context too."""

    release = "0.2.5"
    first: tuple[int, ...] = (0, 2, 5)
    last: tuple[int, ...] | None = (0, 3, 0)
    encodes: tuple[str, ...] = ("vllm/worker/worker.py Worker.profile_num_available_blocks "
                                "(peak_memory = total_gpu_memory - free after the profile run)",
                                "vllm/config.py SchedulerConfig")
    changes = ("the memory counted is all the GPU holds after the profile run (total - free): the CUDA context "
               "and any other process too, beside the weights, the profile's torch growth and what grew outside it")
    base_overhead_bytes = RUNTIME_OVERHEAD_BYTES + V0_NON_TORCH_BYTES
    base_overhead_source = "CUDA context, measured + vLLM V0 non-torch, as logged"


class VllmV02(VllmV025):
    """vLLM 0.2.0 to 0.2.4: the memory counted is torch's peak allocation alone."""

    release = "0.2"
    first: tuple[int, ...] = (0, 2)
    last: tuple[int, ...] | None = (0, 2, 4)
    encodes: tuple[str, ...] = ("vllm/worker/worker.py Worker.profile_num_available_blocks "
                                "(peak_memory = torch.cuda.max_memory_allocated())",
                                "vllm/config.py SchedulerConfig")
    changes = ("the memory counted is torch's peak allocation (max_memory_allocated): the weights and the "
               "profile's activations, nothing outside torch (the CUDA context, NCCL: in the 1 - utilization left)")
    base_overhead_bytes = 0
    base_overhead_source = "none: torch's peak allocation only"

    def overhead(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """Nothing outside torch is counted, NCCL's buffers at TP > 1 included."""
        return Term(0, "none: torch's peak allocation only (the CUDA context and NCCL are outside it)", "0 B")


VLLM_PRESETS: tuple[Vllm, ...] = (VllmV02(), VllmV025(), VllmV04(), VllmV0(), VllmV07(), Vllm08(), Vllm11(), Vllm12(),
                                  Vllm15(), Vllm(), Vllm20(), Vllm201(), Vllm21(), Vllm26(), Vllm28(), Vllm32(), Vllm33(),
                                  Vllm34())
VLLM = VLLM_PRESETS[-1]  # the newest release read: what --engine vllm takes
