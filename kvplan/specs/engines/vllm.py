"""vLLM V1: the pool is what gpu_memory_utilization of the device leaves after the profiled peak.

    pool = total x gpu_memory_utilization - (weights + activation peak + non-torch memory)

Sources: vllm/v1/worker/gpu_worker.py Worker.determine_available_memory (the budget),
vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory (the start-up refusal),
vllm/engine/arg_utils.py (block_size 16, gpu_memory_utilization 0.9, batch defaults by GPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, CommandLine, Engine
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
    flags={"revision": "--revision", "tp": "--tensor-parallel-size", "pp": "--pipeline-parallel-size", "max_model_len": "--max-model-len",
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
    name, display_name = "vllm", "vLLM"
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
