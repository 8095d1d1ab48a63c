"""How a setting's field name is spelled on kvplan's command line: the calculators, their errors and
their fixes speak in fields (``max_model_len``, ``util``); this table turns them into flags."""

from __future__ import annotations

FLAGS = {
    # the budget (every capacity command)
    "engine": "--engine", "tp": "--tp", "pp": "--pp", "kv_dtype": "--kv-dtype", "weights_dtype": "--weights-dtype",
    "util": "--util", "gpu_mem_bytes": "--gpu-mem", "weights_bytes": "--weights-gib",
    "activation_bytes": "--activation-gib", "overhead_bytes": "--overhead-gib", "block_size": "--block-size",
    "max_num_seqs": "--max-num-seqs", "max_num_batched_tokens": "--max-num-batched-tokens", "sampler": "--sampler",
    "allow_long_max_len": "--allow-long-max-len", "num_speculative_tokens": "--num-speculative-tokens",
    "from_log": "--from-log", "enable_lora": "--enable-lora", "max_loras": "--max-loras",
    "max_lora_rank": "--max-lora-rank", "max_cpu_loras": "--max-cpu-loras", "lora_bytes": "--lora-gib",
    "speculative_method": "--speculative-method", "draft_model": "--speculative-model",
    "draft_weights_bytes": "--draft-weights-gib",
    "limit_mm_per_prompt": "--limit-mm-per-prompt", "mm_encoder_tp_mode": "--mm-encoder-tp-mode",
    "disaggregation_mode": "--disaggregation-mode",
    "kv_offload_gib": "--kv-offload-gib", "kv_offload_backend": "--kv-offload-backend",
    "kv_offload_disk_gib": "--kv-offload-disk-gib", "hicache_ratio": "--hicache-ratio",
    "hicache_size_gb": "--hicache-size", "cpu_offload_gib": "--cpu-offload-gib", "disaggregated": "--disaggregated",
    "prompt": "--prompt",
    # requests and lengths
    "ctx": "--ctx", "max_len": "--max-len", "max_model_len": "--max-len", "target": "--concurrency",
    "concurrency": "--concurrency", "in_tokens": "--in", "out_tokens": "--out", "batch": "--batch",
    "gpus_per_node": "--gpus-per-node", "prefix": "--prefix", "shared_prefix": "--shared-prefix",
    "kv_gib": "--kv-gib", "gpu": "--gpu",
    # offload
    "mfu": "--mfu", "tflops": "--tflops", "link_gbps": "--link-gbps", "params": "--params",
    "latency_us": "--latency-us", "host_gib": "--host-gib", "nvme_gib": "--nvme-gib", "measured": "--measured",
}


def flag(field: str) -> str:
    """The flag of a field, or the field itself where kvplan has no flag for it (replicas)."""
    return FLAGS.get(field, field)


def flags_of(settings: dict[str, int | str]) -> str:
    """{"tp": 2} -> '--tp 2'; fields without a flag (replicas) are left out."""
    return " ".join(f"{FLAGS[field]} {value}" for field, value in settings.items() if field in FLAGS)


def source(text: str) -> str:
    """A budget term's source: a field the user gave (weights_bytes) shows as its flag."""
    return FLAGS.get(text, text)
