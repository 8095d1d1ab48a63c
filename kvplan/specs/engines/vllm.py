"""vLLM V1: the pool is what gpu_memory_utilization of the device leaves after the profiled peak.

    pool = total x gpu_memory_utilization - (weights + activation peak + non-torch memory)

Sources: vllm/v1/worker/gpu_worker.py Worker.determine_available_memory (the budget),
vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory (the start-up refusal),
vllm/engine/arg_utils.py (block_size 16, gpu_memory_utilization 0.9, batch defaults by GPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, CommandLine, Engine, half_from_fp32
from kvplan.units import GIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

# _FLOAT16_NOT_SUPPORTED_MODELS (vllm/config/model.py): model types that refuse fp16
FP16_REFUSED = ("gemma2", "gemma3", "glm4")

# vLLM's non-torch memory (CUDA context allocations outside PyTorch's caching allocator, cuBLAS
# workspaces) as logged on one H100 at TP 1: "non-torch memory takes 0.25GiB".
NON_TORCH_BYTES = GIB // 4

COMMAND = CommandLine(
    program="vllm serve",
    launchers=(("vllm", "serve"), ("python", "-m", "vllm.entrypoints.openai.api_server"),
               ("python3", "-m", "vllm.entrypoints.openai.api_server"), ("python", "-m", "vllm.entrypoints.api_server")),
    model_flag=None,
    flags={"revision": "--revision", "tp": "--tensor-parallel-size", "pp": "--pipeline-parallel-size",
           "max_model_len": "--max-model-len",
           "util": "--gpu-memory-utilization", "kv_dtype": "--kv-cache-dtype", "max_num_seqs": "--max-num-seqs",
           "block_size": "--block-size", "max_num_batched_tokens": "--max-num-batched-tokens",
           "cpu_offload_gib": "--cpu-offload-gb", "weights_dtype": "--dtype", "quantization": "--quantization"},
    also_read={"--model": "model", "-tp": "tp", "-pp": "pp", "-q": "quantization"},
    kv_dtypes={"fp8": "fp8"},
    dtypes={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"},
    quantizations={"fp8": "fp8", "nf4": "bitsandbytes"},  # online fp8; bitsandbytes in-flight 4-bit
    program_words=("vllm", "python", "python3"),
    usage="`vllm serve MODEL ...` or `python -m vllm.entrypoints.openai.api_server --model MODEL ...`",
)


class Vllm(Engine):
    """vLLM 0.19, the default preset: the rules kvplan was measured against (74% of 39 logged 0.19
    deployments within 5% of their KV capacity from defaults)."""

    name, display_name = "vllm", "vLLM"
    release = "0.19"
    first: tuple[int, ...] = (0, 19)
    last: tuple[int, ...] | None = (0, 19)
    encodes: tuple[str, ...] = ("vllm/v1/worker/gpu_worker.py Worker.determine_available_memory",
                                "vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory",
                                "vllm/engine/arg_utils.py (batch defaults by GPU)")
    changes = "the V1 budget as kvplan measured it against 0.19 logs"
    util, util_name = 0.90, "gpu_memory_utilization"
    util_meaning = "of the device's total memory, for everything vLLM allocates"
    block_size = 16
    formula = "total x util - (weights + activation + overhead)"
    source = ("vLLM V1 Worker.determine_available_memory; defaults gpu_memory_utilization=0.9, "
              "block_size=16")
    command = COMMAND
    start_rule = "max_memory_usage"
    # vllm/config: a max_model_len above the derived one is refused unless this is set
    long_context_switch = "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
    base_overhead_bytes = NON_TORCH_BYTES
    base_overhead_source = "vLLM non-torch, as logged"

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        return int(total * util) - (weights + activation + overhead)

    def start_refusal(self, model: ModelSpec, gpu: GpuSpec | None, dtype: str, limits: BatchLimits) -> str:
        """SchedulerConfig: max_num_batched_tokens must be at least max_num_seqs; ModelConfig and the
        CUDA platform: bf16 needs compute capability 8.0, and Gemma-2/3 and GLM-4 refuse fp16
        (numerical instability), which is where auto lands them on a GPU without bf16."""
        if limits.max_num_batched_tokens < limits.max_num_seqs:
            return (f"max_num_batched_tokens ({limits.max_num_batched_tokens:,}) must be at least max_num_seqs "
                    f"({limits.max_num_seqs:,})")
        if dtype == "bf16" and gpu is not None and not gpu.has_bf16:
            return f"bf16 needs compute capability 8.0 and {gpu.name} ({gpu.architecture}) has none"
        if dtype == "fp16" and model.family.startswith(FP16_REFUSED):
            return f"{model.family} models refuse fp16 (numerical instability) and this GPU has no bf16"
        return ""

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        """ModelConfig's auto dtype (vllm/config/model.py _resolve_auto_dtype): the platform's
        preferred dtype, bf16 on GPUs that have it (compute capability 8.0 and up) and fp16 on older
        ones, for a float32 checkpoint, and for a bf16 checkpoint on a GPU without bf16."""
        has_bf16 = gpu is None or gpu.has_bf16
        preferred = "bf16" if has_bf16 else "fp16"
        checkpoint = model.compute_dtype
        if checkpoint == "fp32":
            return preferred, f"the checkpoint's fp32, which vLLM serves in {preferred} (--dtype auto)"
        if checkpoint == "bf16" and not has_bf16:
            return "fp16", f"the checkpoint's bf16, which vLLM serves in fp16 on {gpu.name if gpu else 'it'} (no bf16)"
        return checkpoint, f"the checkpoint's {model.dtype}"


VLLM = Vllm()


class VllmV0(Vllm):
    """vLLM's V0 engine, the default to 0.7: the profile run and the block count of the old worker."""

    release = "0.6"
    first: tuple[int, ...] = (0, 5)
    last: tuple[int, ...] | None = (0, 7)
    encodes: tuple[str, ...] = ("vllm/worker/worker.py Worker.determine_num_available_blocks",
                                "vllm/config.py _get_and_verify_dtype",
                                "vllm/engine/arg_utils.py (max_num_seqs 256)")
    changes = ("V0: one request of max_model_len must fit as its pages (no window + chunk count); max_num_seqs "
               "256 on every GPU; an fp32 checkpoint is served in fp16 (Gemma-2 in bf16)")
    start_rule = "paged_request"
    source = "vLLM V0 Worker.determine_num_available_blocks; defaults gpu_memory_utilization=0.9, block_size=16"

    def batch_limits(self, gpu: GpuSpec | None, total_bytes: int) -> BatchLimits:
        return BatchLimits(2048, 256)

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        return half_from_fp32(model, f"vLLM {self.release}", ("gemma2",))


class Vllm08(Vllm):
    """vLLM 0.8 to 0.10: the V1 engine by default."""

    release = "0.8"
    first: tuple[int, ...] = (0, 8)
    last: tuple[int, ...] | None = (0, 10)
    encodes: tuple[str, ...] = ("vllm/v1/worker/gpu_worker.py Worker.determine_available_memory",
                                "vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory", "vllm/config.py")
    changes = "V1 becomes the default engine: the V1 budget and start-up check (as 0.19's)"


class Vllm11(Vllm):
    """vLLM 0.11 to 0.18."""

    release = "0.11"
    first: tuple[int, ...] = (0, 11)
    last: tuple[int, ...] | None = (0, 18)
    encodes: tuple[str, ...] = ("vllm/v1/worker/gpu_worker.py Worker.determine_available_memory", "vllm/config/model.py",
                                "vllm/v1/core/kv_cache_utils.py")
    changes = "the config package (vllm/config/); the budget as 0.19's"


class Vllm20(Vllm):
    """vLLM 0.20 to 0.33: gpu_memory_utilization defaults to 0.92."""

    release = "0.20"
    first: tuple[int, ...] = (0, 20)
    last: tuple[int, ...] | None = (0, 33)
    util = 0.92
    encodes: tuple[str, ...] = ("vllm/config/cache.py (gpu_memory_utilization 0.92)", "vllm/v1/worker/gpu_worker.py")
    changes = "gpu_memory_utilization defaults to 0.92 (0.9 before)"
    source = ("vLLM V1 Worker.determine_available_memory; defaults gpu_memory_utilization=0.92, "
              "block_size=16")


class Vllm34(Vllm20):
    """vLLM 0.34, the newest release read: batch defaults grow on GPUs of 160 GiB and more."""

    release = "0.34"
    first: tuple[int, ...] = (0, 34)
    last: tuple[int, ...] | None = None
    encodes: tuple[str, ...] = ("vllm/engine/arg_utils.py EngineArgs.get_batch_defaults", "vllm/config/cache.py")
    changes = ("the API server batches 16,384 tokens on GPUs of 160 GiB and more; gpu_memory_utilization 0.92 "
               "(1.0 only with the extensible KV cache, which kvplan does not plan)")

    def batch_limits(self, gpu: GpuSpec | None, total_bytes: int) -> BatchLimits:
        if total_bytes >= 160 * GIB:
            return BatchLimits(16384, 1024)
        return super().batch_limits(gpu, total_bytes)


VLLM_PRESETS: tuple[Vllm, ...] = (VllmV0(), Vllm08(), Vllm11(), VLLM, Vllm20(), Vllm34())
