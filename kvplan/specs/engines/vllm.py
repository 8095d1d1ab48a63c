"""vLLM V1: the pool is what gpu_memory_utilization of the device leaves after the profiled peak.

    pool = total x gpu_memory_utilization - (weights + activation peak + non-torch memory)

Sources: vllm/v1/worker/gpu_worker.py Worker.determine_available_memory (the budget),
vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory (the start-up refusal),
vllm/engine/arg_utils.py (block_size 16, gpu_memory_utilization 0.9, batch defaults by GPU).
"""

from __future__ import annotations

from kvplan.specs.engines.base import CommandLine, Engine
from kvplan.units import GIB

# vLLM's non-torch memory (CUDA context allocations outside PyTorch's caching allocator, cuBLAS
# workspaces) as logged on one H100 at TP 1: "non-torch memory takes 0.25GiB".
NON_TORCH_BYTES = GIB // 4

COMMAND = CommandLine(
    program="vllm serve",
    launchers=(("vllm", "serve"), ("python", "-m", "vllm.entrypoints.openai.api_server"),
               ("python3", "-m", "vllm.entrypoints.openai.api_server"), ("python", "-m", "vllm.entrypoints.api_server")),
    model_flag=None,
    flags={"tp": "--tensor-parallel-size", "pp": "--pipeline-parallel-size", "max_model_len": "--max-model-len",
           "util": "--gpu-memory-utilization", "kv_dtype": "--kv-cache-dtype", "max_num_seqs": "--max-num-seqs",
           "block_size": "--block-size", "max_num_batched_tokens": "--max-num-batched-tokens",
           "cpu_offload_gib": "--cpu-offload-gb", "weights_dtype": "--dtype", "quantization": "--quantization"},
    also_read={"--model": "model", "-tp": "tp", "-pp": "pp", "-q": "quantization"},
    kv_dtypes={"fp8": "fp8"},
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
    base_overhead_bytes = NON_TORCH_BYTES
    base_overhead_source = "vLLM non-torch, as logged"

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        return int(total * util) - (weights + activation + overhead)


VLLM = Vllm()
