"""The engine command line that deploys what `fit` and `plan` found: the flags each engine names
for tensor and pipeline parallelism, the maximum length, the memory fraction, the KV dtype and
the batch cap. `kvplan check` reads a vLLM line back, so plan, deploy and gate are one loop."""

from __future__ import annotations

from kvplan.specs.model import ModelSpec

KV_FLAGS = {"vllm": {"fp8": "fp8"}, "sglang": {"fp8": "fp8_e4m3"}}


def model_id(model: ModelSpec) -> str:
    return model.hf_repo or model.name


def vllm_command(model: ModelSpec, tp: int, pp: int, max_len: int, util: float, kv_dtype: str,
                 max_num_seqs: int) -> str:
    words = [f"vllm serve {model_id(model)}", f"--tensor-parallel-size {tp}"]
    words += [f"--pipeline-parallel-size {pp}"] if pp > 1 else []
    words += [f"--max-model-len {max_len}", f"--gpu-memory-utilization {util:g}"]
    words += [f"--kv-cache-dtype {KV_FLAGS['vllm'][kv_dtype]}"] if kv_dtype in KV_FLAGS["vllm"] else []
    return " ".join([*words, f"--max-num-seqs {max_num_seqs}"])


def sglang_command(model: ModelSpec, tp: int, pp: int, max_len: int, util: float, kv_dtype: str,
                   max_num_seqs: int) -> str:
    words = [f"python -m sglang.launch_server --model-path {model_id(model)}", f"--tp-size {tp}"]
    words += [f"--pp-size {pp}"] if pp > 1 else []
    words += [f"--context-length {max_len}", f"--mem-fraction-static {util:g}"]
    words += [f"--kv-cache-dtype {KV_FLAGS['sglang'][kv_dtype]}"] if kv_dtype in KV_FLAGS["sglang"] else []
    return " ".join([*words, f"--max-running-requests {max_num_seqs}"])
