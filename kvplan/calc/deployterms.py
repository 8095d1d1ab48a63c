"""The settings a budget's memory terms were planned with, and how they return in the deploy line
(`kvplan fit` and `kvplan plan`): LoRA's slots and rank, a drafter's speculative config, the
multimodal limits, a KV offload tier. `kvplan check` reads that line back into the same budget
(kvplan/specs/engines/deploy.py writes each setting; the engine's flag table spells it)."""

from __future__ import annotations

import json

from kvplan.calc.draft import Drafter
from kvplan.results.capacity import MemoryBudget
from kvplan.units import GIB


def planned_settings(inputs, draft: Drafter | None) -> dict:
    """MemoryBudget's fields for the settings it carries nowhere else (BudgetInputs `inputs`)."""
    repo = draft.draft.served or draft.draft.hf_repo or draft.draft.name if draft and draft.draft else None
    return {"enable_lora": inputs.enable_lora or inputs.lora_bytes is not None, "max_loras": inputs.max_loras,
            "max_lora_rank": inputs.max_lora_rank, "max_cpu_loras": inputs.max_cpu_loras, "draft_model_repo": repo,
            "limit_mm_per_prompt": inputs.limit_mm_per_prompt, "mm_encoder_tp_mode": inputs.mm_encoder_tp_mode,
            "hicache_ratio": inputs.hicache_ratio, "hicache_size_gb": inputs.hicache_size_gb,
            "disaggregation_mode": inputs.disaggregation_mode}


def term_deploy(budget: MemoryBudget) -> dict:
    """Deploy's fields for the terms of `budget`: only those it was planned with."""
    lora = {"enable_lora": True, "max_loras": budget.max_loras, "max_lora_rank": budget.max_lora_rank,
            "max_cpu_loras": budget.max_cpu_loras} if budget.enable_lora else {}
    mm = {"limit_mm_per_prompt": json.dumps(dict(budget.limit_mm_per_prompt))} if budget.limit_mm_per_prompt else {}
    mode = {"mm_encoder_tp_mode": budget.mm_encoder_tp_mode} if budget.mm_encoder_tp_mode else {}
    role = {"disaggregation_mode": budget.disaggregation_mode} if budget.disaggregation_mode else {}
    weights = {"cpu_offload_gib": round(budget.cpu_offload_bytes / GIB, 6)} if budget.cpu_offload_bytes else {}
    return lora | _speculative(budget) | mm | mode | _offload(budget) | weights | role


def _speculative(budget: MemoryBudget) -> dict:
    """vLLM's speculative_config (vllm/config/speculative.py SpeculativeConfig): the method, the draft
    tokens, the draft model where one is loaded. An EAGLE head's repo kvplan does not know: the
    line names the method, and the user adds the head's "model"."""
    if budget.speculative_method is None:
        return {}
    config: dict = {"method": budget.speculative_method, "num_speculative_tokens": budget.num_speculative_tokens}
    if budget.draft_model_repo:
        config["model"] = budget.draft_model_repo
    return {"speculative_config": json.dumps(config)}


def _offload(budget: MemoryBudget) -> dict:
    """vLLM's kv_offloading_size and kv_offloading_backend for a host tier of its own (native or
    LMCache: the size every rank's together), the backend only where it is not the default native;
    SGLang's HiCache switch with its ratio or size where given."""
    if any(t.backend == "hicache" for t in budget.kv_offload):
        return {"kv_offload_backend": "hicache", "hicache_ratio": budget.hicache_ratio,
                "hicache_size_gb": budget.hicache_size_gb}
    tier = next((t for t in budget.kv_offload if t.medium == "host memory"), None)
    if tier is None:
        return {}
    gib = tier.size_bytes * (budget.tp * budget.pp if tier.per_rank else 1) / GIB
    return {"kv_offload_gib": round(gib, 6), "kv_offload_backend": None if tier.backend == "native" else tier.backend}
