"""vLLM's command line: which flag carries which setting, for `vllm serve` lines read back (check files,
`kvplan log`'s non-default args) and written (fit's and plan's deploy line)."""

from __future__ import annotations

from dataclasses import replace

from kvplan.specs.engines.base import CommandLine
from kvplan.specs.engines.speculative import SPECULATIVE_FLAGS

COMMAND = CommandLine(
    program="vllm serve",
    launchers=(("vllm", "serve"), ("python", "-m", "vllm.entrypoints.openai.api_server"),
               ("python3", "-m", "vllm.entrypoints.openai.api_server"), ("python", "-m", "vllm.entrypoints.api_server")),
    model_flag=None,
    flags={"revision": "--revision", "tp": "--tensor-parallel-size", "pp": "--pipeline-parallel-size",
           "max_model_len": "--max-model-len", "util": "--gpu-memory-utilization", "kv_dtype": "--kv-cache-dtype", "max_num_seqs": "--max-num-seqs",
           "block_size": "--block-size", "max_num_batched_tokens": "--max-num-batched-tokens",
           "cpu_offload_gib": "--cpu-offload-gb", "weights_dtype": "--dtype", "quantization": "--quantization",
           "max_loras": "--max-loras", "max_lora_rank": "--max-lora-rank", "max_cpu_loras": "--max-cpu-loras",
           "speculative_config": "--speculative-config",
           "limit_mm_per_prompt": "--limit-mm-per-prompt", "mm_encoder_tp_mode": "--mm-encoder-tp-mode",
           "kv_offload_gib": "--kv-offloading-size", "kv_offload_backend": "--kv-offloading-backend"},
    also_read={"--model": "model", "-tp": "tp", "-pp": "pp", "-q": "quantization", **SPECULATIVE_FLAGS},
    kv_dtypes={"fp8": "fp8"},
    dtypes={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"},
    quantizations={"fp8": "fp8", "nf4": "bitsandbytes"},  # online fp8; bitsandbytes in-flight 4-bit
    switches={"chunked_prefill": {True: "--enable-chunked-prefill", False: "--no-enable-chunked-prefill"}, "enable_lora": {True: "--enable-lora"}},
    program_words=("vllm", "python", "python3"),
    usage="`vllm serve MODEL ...` or `python -m vllm.entrypoints.openai.api_server --model MODEL ...`",
)

# Before `vllm serve` (vllm/scripts.py, 0.5.2): the OpenAI server module, the model by --model.
API_SERVER_COMMAND = replace(COMMAND, program="python -m vllm.entrypoints.openai.api_server", model_flag="--model")
