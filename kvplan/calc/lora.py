"""vLLM's LoRA buffers as a budget term (kvplan/specs/engines/vllm_lora.py holds the engine's rule)."""

from __future__ import annotations

from kvplan.calc.weights import pp_layers
from kvplan.specs.engines.base import Engine, Term
from kvplan.specs.model import ModelSpec


def lora_term(model: ModelSpec, engine: Engine, dtype: str, *, tp: int, pp: int, enable: bool, max_loras: int,
              rank: int, max_cpu_loras: int | None, measured: int | None) -> Term | None:
    """vLLM's LoRA buffers on one GPU, or the measured bytes; None without LoRA. vLLM allocates them
    inside the load it logs as 'Model loading took', so they add to the weights in the pool rule."""
    from kvplan.specs.engines.vllm_lora import check_lora, engine_lora

    if not enable and measured is None:
        return None
    check_lora(max_loras, rank, max_cpu_loras)
    if measured is not None:
        return Term(measured, "lora_bytes", "given")
    return engine_lora(engine, model, tp=tp, layers=max(pp_layers(model.num_layers, pp)), dtype=dtype,
                       max_loras=max_loras, rank=rank)
