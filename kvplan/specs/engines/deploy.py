"""What an engine command carries (Deploy), and each setting's value as the command line writes it:
base.py CommandLine.write looks every setting up in the engine's flag table, so a setting an engine
has no flag for is left out of its line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deploy:
    """Every setting an engine command carries, by kvplan's names."""

    model: str  # the repo id or path the engine loads, as the user named it
    tp: int
    pp: int
    max_len: int
    util: float
    kv_dtype: str  # the KV dtype planned, only where the engine's auto would choose another
    max_num_seqs: int
    revision: str | None = None  # a branch, tag or commit of the repo, when one was named
    environment: tuple[str, ...] = ()  # VAR=value settings the command needs before it
    dtype: str | None = None  # the weights' dtype, only where the engine's auto would choose another
    quantization: str | None = None  # a format the engine casts the weights to at load, only then
    max_num_batched_tokens: int | None = None  # only where it differs from the engine's default
    chunked_prefill: bool | None = None  # only where it differs from the engine's default
    kv_offload_gib: float | None = None  # a KV offload tier's host GiB, and its backend (vLLM --kv-offloading-*)
    kv_offload_backend: str | None = None  # vLLM's lmcache; SGLang's hicache (a switch there)
    cpu_offload_gib: float | None = None  # weights kept on the host (--cpu-offload-gb), where planned so
    hicache_ratio: float | None = None  # SGLang --hicache-ratio and --hicache-size (GB), where given
    hicache_size_gb: float | None = None
    enable_lora: bool = False  # vLLM --enable-lora with its slots and rank (and host slots, where given)
    max_loras: int | None = None
    max_lora_rank: int | None = None
    max_cpu_loras: int | None = None
    speculative_config: str | None = None  # vLLM --speculative-config, a JSON object
    limit_mm_per_prompt: str | None = None  # vLLM --limit-mm-per-prompt, a JSON object
    mm_encoder_tp_mode: str | None = None  # vLLM --mm-encoder-tp-mode, where given
    disaggregation_mode: str | None = None  # SGLang --disaggregation-mode: a prefill or decode worker


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def term_values(d: Deploy) -> dict:
    """The memory terms' settings (LoRA, a drafter, multimodal limits, KV offload), as written."""
    return {"kv_offload_gib": d.kv_offload_gib and _number(d.kv_offload_gib), "kv_offload_backend": d.kv_offload_backend,
            "cpu_offload_gib": d.cpu_offload_gib and _number(d.cpu_offload_gib),
            "hicache_ratio": _number(d.hicache_ratio), "hicache_size_gb": _number(d.hicache_size_gb),
            "max_loras": d.max_loras if d.enable_lora else None,
            "max_lora_rank": d.max_lora_rank if d.enable_lora else None,
            "max_cpu_loras": d.max_cpu_loras if d.enable_lora else None, "speculative_config": d.speculative_config,
            "limit_mm_per_prompt": d.limit_mm_per_prompt, "mm_encoder_tp_mode": d.mm_encoder_tp_mode,
            "disaggregation_mode": d.disaggregation_mode}


def switched(d: Deploy) -> dict:
    """The settings written as flags without a value: setting -> the value its switch stands for."""
    return {"chunked_prefill": d.chunked_prefill, "enable_lora": d.enable_lora or None,
            "kv_offload_backend": d.kv_offload_backend}
