"""Weight memory: parameters x storage format, split across tensor- and pipeline-parallel GPUs.

Quantized formats (fp8, int8, int4, nf4) apply to the linear layers; the token embedding and the
LM head stay 16-bit, as AWQ, GPTQ, bitsandbytes and vLLM's fp8 all keep them. MoE models hold all
their experts in memory (params_total), whatever the active count.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.errors import InputError
from kvplan.specs.model import ModelSpec
from kvplan.units import DTYPE_BYTES, ceil_div


@dataclass(frozen=True)
class WeightFormat:
    name: str
    bits_per_weight: float  # scales and zero points included, per quantized weight
    note: str

    @property
    def quantized(self) -> bool:
        return self.bits_per_weight < 16


WEIGHT_FORMATS = {
    **{name: WeightFormat(name, 8 * DTYPE_BYTES[name], f"{8 * DTYPE_BYTES[name]}-bit weights")
       for name in ("bf16", "fp16", "fp32")},
    "fp8": WeightFormat("fp8", 8 * DTYPE_BYTES["fp8"], "fp8 e4m3 linear layers, per-tensor or per-channel scales "
                                  "(negligible); embeddings and LM head in 16 bits"),
    "int8": WeightFormat("int8", 8, "int8 linear layers with per-channel scales (negligible); "
                                    "embeddings and LM head in 16 bits"),
    # AWQ/GPTQ: 4-bit weights, one fp16 scale and one 4-bit zero point per group of 128 weights.
    "int4": WeightFormat("int4", 4 + (16 + 4) / 128, "int4 (AWQ/GPTQ): group 128, fp16 scale + "
                                                      "4-bit zero per group = 4.156 bits/weight"),
    # nvfp4 (NVIDIA, Blackwell): 4-bit e2m1 values, one fp8 e4m3 scale per 16 (and one fp32 per tensor).
    "nvfp4": WeightFormat("nvfp4", 4 + 8 / 16, "nvfp4: one e4m3 scale per 16 values = 4.5 bits/weight"),
    # mxfp4 (OCP microscaling, gpt-oss): 4-bit e2m1 values, one 8-bit e8m0 scale per 32.
    "mxfp4": WeightFormat("mxfp4", 4 + 8 / 32, "mxfp4: one e8m0 scale per 32 values = 4.25 bits/weight"),
    # bitsandbytes NF4 with double quantization: 8-bit absmax per 64 weights, fp32 per 256 absmax.
    "nf4": WeightFormat("nf4", 4 + 8 / 64 + 32 / (64 * 256), "nf4 (bitsandbytes, double quant): "
                                                              "4.127 bits/weight"),
}


def weight_format(name: str) -> WeightFormat:
    try:
        return WEIGHT_FORMATS[name.lower()]
    except KeyError:
        choices = ", ".join(["auto", *WEIGHT_FORMATS])
        raise InputError(f"unknown weights dtype '{name}'; choose one of {choices}") from None


def embedding_params(model: ModelSpec) -> int:
    return model.vocab_size * model.hidden_size * (1 if model.tie_word_embeddings else 2)


def weights_bytes(model: ModelSpec, weights_dtype: str = "auto") -> tuple[int, str]:
    """(bytes for the whole model, how they were counted)."""
    if weights_dtype == "auto" and model.quantization and not model.checkpoint_bytes:
        fmt = weight_format(model.quantization)
        if model.quantization_bits:
            fmt = WeightFormat(fmt.name, model.quantization_bits, f"{model.quantization_bits:.3f} bits/weight "
                               "from the checkpoint's quantization_config")
        total, how = quantized_bytes(model, fmt)
        return total, f"{how}; {model.quantization}: the checkpoint's format"
    if weights_dtype == "auto":
        if model.checkpoint_bytes:
            return model.checkpoint_bytes, "the checkpoint's size (safetensors total_size)"
        per = DTYPE_BYTES[model.dtype]
        return model.params_total * per, f"{model.params_total:,} params x {per} B ({model.dtype})"
    fmt = weight_format(weights_dtype)
    if not fmt.quantized:
        per = int(fmt.bits_per_weight) // 8
        return model.params_total * per, f"{model.params_total:,} params x {per} B ({fmt.name})"
    return quantized_bytes(model, fmt)


def quantized_bytes(model: ModelSpec, fmt: WeightFormat) -> tuple[int, str]:
    """Linear layers in the format, embeddings and LM head in 16 bits."""
    embed = min(embedding_params(model), model.params_total)
    linear = model.params_total - embed
    total = ceil_div(int(linear * fmt.bits_per_weight * 1024), 8 * 1024) + 2 * embed
    return total, (f"{linear:,} linear params x {fmt.bits_per_weight:.3f} bits + {embed:,} "
                   f"embedding params x 2 B ({fmt.note})")


def pp_layers(num_layers: int, pp: int) -> list[int]:
    """vLLM's split of the layers over pipeline stages (distributed/utils.py get_pp_indices): floor(L / PP)
    each, the remainder one more each on the stages before the last, from the second-last back."""
    layers = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        layers[-i] += 1
    return layers


def stage_weights(model: ModelSpec, total_bytes: int, tp: int, pp: int, width: int = 2) -> list[tuple[int, str]]:
    """Bytes of the weights on one GPU of each pipeline stage: its layers' share of the layer weights,
    the embedding on the first stage (and any vision tower), the LM head on the last (a copy of the
    embedding where they are tied); everything split over the TP ranks. Embeddings are counted at
    `width` bytes a parameter (16-bit in every format kvplan plans), the rest evenly by layer."""
    if pp == 1:
        return [(weights_per_gpu(total_bytes, tp, 1), f"{total_bytes:,} B / {tp}")]
    table = model.vocab_size * model.hidden_size * width
    towers = (model.tower_params or 0) * width
    heads = table if model.tie_word_embeddings else 2 * table
    per_layer = max(total_bytes - heads - towers, 0) // model.num_layers
    stages = []
    for i, layers in enumerate(pp_layers(model.num_layers, pp)):
        parts = [(layers * per_layer, f"{layers} layers x {per_layer:,} B")]
        if i == 0:
            parts.append((table + towers, f"embedding {table + towers:,} B"))
        if i == pp - 1:
            parts.append((table, f"LM head {table:,} B"))
        own = sum(b for b, _ in parts)
        formula = " + ".join(w for _, w in parts) + (f", / {tp}" if tp > 1 else "")
        stages.append((ceil_div(own, tp), formula))
    return stages


def weights_per_gpu(total_bytes: int, tp: int, pp: int) -> int:
    """Even split across the tp x pp GPUs of one replica (vocab-parallel embeddings included)."""
    return ceil_div(total_bytes, tp * pp)
