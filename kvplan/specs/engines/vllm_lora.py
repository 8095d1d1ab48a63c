"""vLLM's LoRA buffers (--enable-lora --max-loras N --max-lora-rank R): the stacked A and B tensors
every LoRA-wrapped module allocates for N adapter slots at rank R, in the model's dtype, on each GPU.

Sources (0.19 and 0.34 alike): vllm/lora/model_manager.py _create_lora_modules wraps every module
get_supported_lora_modules (vllm/lora/utils.py) names: every linear layer (qkv_proj, o_proj,
gate_up_proj, down_proj) and the model's embedding_modules (embed_tokens, lm_head: LlamaForCausalLM),
unless --lora-target-modules narrows them (LoRAConfig.target_modules, default None: all).
create_lora_weights allocates, for `max_loras` slots (lora_slots) of `max_lora_rank`, in lora_dtype
(auto: the model's dtype, LoRAConfig.verify_with_model_config):

    column-parallel (base_linear.py, column_parallel_linear.py: MergedQKVParallelLinearWithLoRA,
      MergedColumnParallelLinearWithLoRA): per packed slice, A [N, 1, R, hidden] (the whole input)
      and B [N, 1, out_features / tp, R];
    row-parallel (row_parallel_linear.py): A [N, 1, R, in_features / tp], B [N, 1, hidden, R];
    embedding (vocab_parallel_embedding.py): A [N, vocab, R] and B [N, 1, hidden, R], not sharded;
    lm_head (logits_processor.py LogitsProcessorWithLoRA): A [N, 1, R, hidden], B [N, 1, vocab, R],
      not sharded.

vLLM counts them in the weights: GPUModelRunner.load_model calls load_lora_model inside the
DeviceMemoryProfiler that logs "Model loading took" (v1/worker/gpu_model_runner.py 0.19 and 0.34);
the profile run's dummy LoRAs (lora_model_runner_mixin.py maybe_setup_dummy_loras) are built on the
CPU (model_manager.py create_dummy_lora) and copied into these same buffers.

Through 0.11 LoRAConfig.lora_extra_vocab_size (256) adds rows: the embedding's A over vocab + 256, an
embeddings_tensors [N, 256, hidden] in the embedding and in the logits processor, the logits' B over
vocab + 256 padded to 256 (lora_vocab_padding_size), and the base model's own embedding grown by
256 x N rows and its LM head by 256, sharded by TP (model_executor/models/llama.py 0.10.2). Removed in
0.12 (vLLM PRs #28382 and #28545: "Remove LoRA extra vocab").

Not counted: the Punica wrapper's index tensors (int32 of max_num_batched_tokens: under 1 MiB) and
the forward's fp32 shrink buffer (slices x tokens x R x 4 B, one layer at a time, in the activation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.errors import InputError
from kvplan.specs.engines.base import Term
from kvplan.units import DTYPE_BYTES, ceil_div

if TYPE_CHECKING:
    from kvplan.specs.engines.base import Engine
    from kvplan.specs.model import ModelSpec

# vLLM's accepted max_lora_rank values (vllm/config/lora.py MaxLoRARanks, 0.19 and 0.34)
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
EXTRA_VOCAB = 256  # LoRAConfig.lora_extra_vocab_size's default, through 0.11
LORA_VOCAB_PADDING = 256  # CUDA's get_lora_vocab_padding_size, through 0.11
LAST_EXTRA_VOCAB = (0, 11)  # the last release with the extra vocabulary


def extra_vocab(engine_name: str, last: tuple[int, ...] | None) -> int:
    """The extra vocabulary rows a release's LoRA adds: 256 through 0.11, none from 0.12."""
    if engine_name != "vllm":
        return 0
    return EXTRA_VOCAB if last is not None and last[:2] <= LAST_EXTRA_VOCAB else 0


def _dense_attention(model: ModelSpec) -> tuple[int, int, int]:
    """(query heads x head_dim, KV heads, head_dim) of a model whose layers all attend with KV
    heads and whose MLP is dense; anything else is refused (its LoRA layers are not modelled)."""
    kinds = {group.kind for group in model.layers}
    if model.is_moe or not kinds <= {"full", "sliding"}:
        raise InputError(f"kvplan models vLLM's LoRA buffers for dense attention models; {model.name} has "
                         f"{'MoE experts' if model.is_moe else ', '.join(sorted(kinds)) + ' layers'}: give the "
                         "measured {lora_bytes}", "lora_bytes")
    shapes = {(group.num_kv_heads, group.head_dim) for group in model.layers}  # type: ignore[union-attr]
    if len(shapes) > 1:
        raise InputError(f"{model.name}'s layers differ in KV heads or head_dim; give the measured {{lora_bytes}}",
                         "lora_bytes")
    kv_heads, head_dim = shapes.pop()
    return model.num_attention_heads * head_dim, kv_heads, head_dim


def layer_elements(model: ModelSpec, tp: int, max_loras: int, rank: int) -> tuple[int, str]:
    """(A and B elements of one decoder layer's four LoRA modules on one GPU, the formula)."""
    q, kv_heads, head_dim = _dense_attention(model)
    h, inter = model.hidden_size, model.intermediate_size
    kv_rank = max(kv_heads // tp, 1) * head_dim  # QKVParallelLinear: KV heads replicated past num_kv_heads ranks
    a_inputs = 3 * h + q // tp + 2 * h + inter // tp  # qkv, o, gate_up, down
    b_outputs = (q // tp + 2 * kv_rank) + h + 2 * (inter // tp) + h
    formula = (f"{max_loras} x {rank} x (A: 3 x {h:,} + {q // tp:,} + 2 x {h:,} + {inter // tp:,}; "
               f"B: {q // tp:,} + 2 x {kv_rank:,} + {h:,} + 2 x {inter // tp:,} + {h:,})")
    return max_loras * rank * (a_inputs + b_outputs), formula


def vocab_elements(model: ModelSpec, tp: int, max_loras: int, rank: int, extra: int) -> tuple[int, str]:
    """(elements of the embedding's and the LM head's LoRA buffers, and what the extra vocabulary
    adds, on one GPU; the formula)."""
    h, vocab = model.hidden_size, model.vocab_size
    logits_rows = ceil_div(vocab + extra, LORA_VOCAB_PADDING) * LORA_VOCAB_PADDING if extra else vocab
    elements = max_loras * rank * (vocab + extra + h + h + logits_rows)
    formula = f"{max_loras} x {rank} x ({vocab + extra:,} + {h:,} + {h:,} + {logits_rows:,})"
    if extra:  # two embeddings_tensors, and the base embedding and LM head grown (sharded by TP)
        grown = 2 * max_loras * extra * h + (extra * max_loras + extra) * h // tp
        elements += grown
        formula += f" + 2 x {max_loras} x {extra} x {h:,} + ({extra} x {max_loras} + {extra}) x {h:,} / {tp}"
    return elements, formula


def lora_buffers(model: ModelSpec, *, tp: int, layers: int, dtype: str, max_loras: int, rank: int,
                 extra: int = 0) -> Term:
    """The LoRA buffers one GPU holds: `layers` decoder layers' modules (the fullest pipeline stage's)
    plus the embedding's and the LM head's, in the served dtype."""
    check_lora(max_loras, rank)
    width = DTYPE_BYTES.get(dtype, 2)
    per_layer, layer_formula = layer_elements(model, tp, max_loras, rank)
    vocab, vocab_formula = vocab_elements(model, tp, max_loras, rank, extra)
    value = (layers * per_layer + vocab) * width
    source = f"vLLM LoRA buffers: {max_loras} slots of rank {rank} (counted in 'Model loading took')"
    formula = f"({layers} layers x {layer_formula} + {vocab_formula}) x {width} B"
    return Term(value, source + (f", extra vocabulary {extra}" if extra else ""), formula)


def engine_lora(engine: Engine, model: ModelSpec, *, tp: int, layers: int, dtype: str, max_loras: int,
                rank: int) -> Term:
    """The LoRA buffers of this engine's release; engines other than vLLM are refused (give lora_bytes)."""
    if engine.name != "vllm":
        raise InputError(f"kvplan models LoRA's memory for vLLM only; for {engine.display_name} give the "
                         "measured {lora_bytes}", "lora_bytes")
    return lora_buffers(model, tp=tp, layers=layers, dtype=dtype, max_loras=max_loras, rank=rank,
                        extra=extra_vocab(engine.name, engine.last))


def check_lora(max_loras: int, rank: int, max_cpu_loras: int | None = None) -> None:
    """vLLM's LoRAConfig checks: max_loras at least 1, a rank it accepts, max_cpu_loras >= max_loras."""
    if max_loras < 1:
        raise InputError(f"{{max_loras}} must be at least 1, not {max_loras}", "max_loras")
    if rank not in LORA_RANKS:
        raise InputError(f"{{max_lora_rank}} {rank} is not one vLLM accepts; choose one of "
                         f"{', '.join(map(str, LORA_RANKS))}", "max_lora_rank")
    if max_cpu_loras is not None and max_cpu_loras < max_loras:
        raise InputError(f"{{max_cpu_loras}} ({max_cpu_loras}) must be at least {{max_loras}} ({max_loras}), "
                         "as vLLM requires", "max_cpu_loras")
