"""How each setting of an engine's command line is read into a check-file field: kvplan.bounds'
readers, as on kvplan's own command line, and the engines' spellings of dtypes and quantizations."""

from __future__ import annotations

from collections.abc import Callable

from kvplan import bounds
from kvplan.specs.engines.speculative import SPECULATIVE_READERS


def _kv_dtype(value: str) -> str:
    return "fp8" if value.startswith("fp8") else value


_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "auto": "auto", "float32": "fp32", "float": "fp32"}
_QUANTIZATION = {"fp8": "fp8", "awq": "int4", "awq_marlin": "int4", "gptq": "int4", "gptq_marlin": "int4",
                 "bitsandbytes": "nf4", "mxfp4": "mxfp4", "modelopt": "fp8", "modelopt_fp4": "nvfp4"}

Reader = Callable[[str, str], object]
# A setting's field (as in check files) -> how its value is read: kvplan.bounds' readers, as on the command line.
FIELD_READERS: dict[str, Reader] = {
    "model": lambda v, _: v, "revision": lambda v, _: v, "kv_offload_backend": lambda v, _: v,
    "tp": bounds.gpus, "pp": bounds.gpus, "max_model_len": bounds.tokens, "util": bounds.fraction,
    "kv_dtype": lambda v, _: _kv_dtype(v), "max_num_seqs": bounds.requests, "block_size": bounds.block_size,
    "hicache_ratio": bounds.gib, "hicache_size_gb": bounds.gib, "max_num_batched_tokens": bounds.tokens, "cpu_offload_gib": bounds.gib_or_zero, "kv_offload_gib": bounds.gib,
    "kv_offload_disk_gib": bounds.gib,
    "weights_dtype": lambda v, _: _DTYPES.get(v, v), "quantization": lambda v, _: _QUANTIZATION.get(v, v),
    "max_loras": bounds.requests, "max_lora_rank": bounds.requests, "max_cpu_loras": bounds.requests, **SPECULATIVE_READERS,
    "limit_mm_per_prompt": lambda v, n: bounds.mm_limits(v, n) and v, "mm_encoder_tp_mode": bounds.mm_encoder_tp_mode,
    "disaggregation_mode": bounds.disaggregation_mode}
FIELD_ALIASES = {"quantization": "weights_dtype"}  # a setting read into another check-file field
