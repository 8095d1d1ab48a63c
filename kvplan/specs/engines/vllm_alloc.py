"""What vLLM's "Model loading took" counts beyond the parameters divided by TP: the CUDA caching
allocator's blocks, and the tensors tensor parallelism does not split (research note:
docs/engine-rules/weights-as-loaded.md).

vLLM measures the load as the allocated bytes after minus before (DeviceMemoryProfiler; platforms/
cuda.py get_current_memory_usage: empty_cache, reset_peak_memory_stats, max_memory_allocated; the
same from 0.6 to 0.34), and PyTorch adds the size of the block it hands out, not the size asked
(c10/cuda/CUDACachingAllocator.cpp malloc). Every parameter is a torch.empty of its own on the GPU
(model_loader initialize_model). A request of 10 MiB or more gets a segment rounded up to 2 MiB
(get_allocation_size); the rest is split off as a free block only when it is over 1 MiB
(should_split: remaining > kSmallSize), so a tail of up to 1 MiB stays in the tensor's block and is
counted. Smaller tensors share 2 and 20 MiB segments: not counted here.

Whole on every rank: RMSNorm weights, the MoE router (qwen2_moe.py, qwen3_moe.py, mixtral.py:
gate = ReplicatedLinear), and the K and V rows where a model has fewer KV heads than TP ranks
(QKVParallelLinear: num_kv_head_replicas).

Laid out for the layouts whose tensors kvplan knows: standard attention (full and sliding layers of
one KV-head count and head size) with a dense or routed MLP, unquantized or fp8; and MLA (DeepSeek,
Kimi, GLM-5), whose replicated tensors loading.py mla_replicated counts (SGLang loads them alike),
but not its allocator tails. Others (recurrent states, quantized integer formats, NVFP4, MXFP4) get
nothing here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.loading import loaded_format, mla_replicated, mxfp4_experts
from kvplan.units import DTYPE_BYTES, MIB

if TYPE_CHECKING:
    from kvplan.specs.engines.base import Replica
    from kvplan.specs.model import ModelSpec

SEGMENT = 2 * MIB  # kRoundLarge: a large segment's unit
LARGE = 10 * MIB  # kLargeBuffer: from here a tensor gets a segment of its own
KEPT_TAIL = 1 * MIB  # kSmallSize: a tail up to this stays in the block
VOCAB_PADDING = 64  # vocab_parallel_embedding.py DEFAULT_VOCAB_PADDING_SIZE
STANDARD = ("full", "sliding")


def tail(size: int) -> int:
    """The bytes a tensor of `size` bytes holds beyond its size in its allocator block."""
    rest = -size % SEGMENT
    return rest if size >= LARGE and 0 < rest <= KEPT_TAIL else 0


def _attention(model: ModelSpec) -> tuple[int, int] | None:
    """(KV heads, head size) shared by every layer, or None where the layout is not a standard one."""
    shapes = {(getattr(g, "num_kv_heads", None), getattr(g, "head_dim", None), getattr(g, "v_head_dim", None))
              for g in model.layers}
    if any(g.kind not in STANDARD for g in model.layers) or len(shapes) != 1:
        return None
    kv, head, v_head = shapes.pop()
    return (kv, head) if kv and head and v_head is None else None


def loaded_extras(model: ModelSpec, replica: Replica) -> list[tuple[int, str]]:
    """(bytes, what) on one GPU of the fullest pipeline stage: the allocator's kept tails over every
    large tensor, and the replicated tensors' share beyond 1/TP."""
    shape = _attention(model)
    fmt = loaded_format(model, replica)
    if fmt not in (None, "fp8", "bf16", "fp16", "fp32") or mxfp4_experts(model):
        return []
    width = DTYPE_BYTES[fmt] if fmt else DTYPE_BYTES.get(replica.dtype, 2)
    mla = mla_replicated(model, replica)
    if mla is not None:
        return [(mla, f"tensors TP {replica.tp} does not split")] if mla else []
    if shape is None:
        return []
    kv, head = shape
    tp = replica.tp
    h, heads, moe = model.hidden_size, model.num_attention_heads, model.moe
    layers = -(-model.num_layers // replica.pp)
    kv_rank = max(kv // tp, 1)  # KV heads a rank holds: replicated below one a rank
    per_layer = [h * (heads // tp + 2 * kv_rank) * head * width, heads // tp * head * h * width]  # qkv, o
    if moe is not None:
        inter = -(-(moe.expert_intermediate_size or model.intermediate_size) // tp)
        per_layer += [moe.num_experts * 2 * inter * h * width, moe.num_experts * h * inter * width]  # w13, w2
    else:
        inter = -(-model.intermediate_size // tp)
        per_layer += [2 * inter * h * width, h * inter * width]  # gate_up, down
    vocab = -(-model.vocab_size // VOCAB_PADDING) * VOCAB_PADDING
    embedding = -(-vocab // tp) * h * DTYPE_BYTES.get(replica.dtype, 2)  # embeddings stay unquantized
    ends = [embedding] * ((1 if model.tie_word_embeddings else 2) if replica.pp == 1 else 0)
    tails = layers * sum(tail(b) for b in per_layer) + sum(tail(b) for b in ends)
    served = DTYPE_BYTES.get(replica.dtype, 2)
    replicated = layers * 2 * (kv_rank * tp - kv) * head * h * width // tp  # K and V rows held twice
    replicated += (2 * layers + 1) * h * served * (tp - 1) // tp  # the norms
    if moe is not None:
        replicated += layers * moe.num_experts * h * served * (tp - 1) // tp  # the router, unquantized
    extras = [(tails, "allocator block tails"), (replicated, f"tensors TP {tp} does not split")]
    return [(b, what) for b, what in extras if b]
