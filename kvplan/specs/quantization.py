"""A checkpoint's weights format from its config's quantization_config: the format, and the bits
each quantized weight takes with its share of scales and zero points.

    fp8 (per-tensor, per-channel or 128x128 blocks)   8 bits (scales: under 0.01 bit a weight)
    compressed-tensors                                 its weights' num_bits and group_size:
        w8a8 / int8, fp8-dynamic (float, 8 bits)       8 bits
        w4a16 (pack-quantized, symmetric)              4 + 16 / group  (one fp16 scale a group)
    AWQ, GPTQ 4-bit (asymmetric)                       4 + (16 + 4) / group  (fp16 scale, 4-bit zero)
    GPTQ 8-bit                                         8 + (16 + 8) / group
    bitsandbytes load_in_8bit                          8 bits (LLM.int8, per-row scales)
    bitsandbytes load_in_4bit, nf4 or fp4              4 + 8 / 64 + 32 / (64 x 256) with double quant
    mxfp4 (gpt-oss)                                    4 + 8 / 32  (one e8m0 scale per 32 values)
    nvfp4 (modelopt)                                   4 + 8 / 16  (one e4m3 scale per 16 values)
    modelopt MIXED_PRECISION                           each listed module's bits (FP8 8, NVFP4 4 + 8 /
                                                       group), averaged over the modules' parameters

Exact bytes come from the safetensors headers where they are read; these are for a config alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvplan.errors import SpecError


@dataclass(frozen=True)
class Quantization:
    format: str  # fp8, int8, int4, nf4, mxfp4: what kvplan.calc.weights knows
    bits_per_weight: float
    description: str


def _int(qc: dict, key: str, default: int) -> int:
    value = qc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"quantization_config.{key} must be a positive whole number, not {value!r}")
    return value


def _compressed_tensors(qc: dict) -> Quantization:
    groups = [g for g in (qc.get("config_groups") or {}).values() if isinstance(g, dict)]
    weights = next((g.get("weights") for g in groups if isinstance(g.get("weights"), dict)), None)
    if weights is None:
        raise SpecError("compressed-tensors quantization_config has no config_groups.*.weights to read")
    bits, kind = _int(weights, "num_bits", 8), weights.get("type", "int")
    if kind == "float" and bits == 8:
        return Quantization("fp8", 8, "compressed-tensors fp8 weights")
    if bits == 8:
        return Quantization("int8", 8, "compressed-tensors int8 weights (w8a8), per-channel scales")
    if bits == 4:
        group = _int(weights, "group_size", 128) if weights.get("group_size") else 128
        return Quantization("int4", 4 + 16 / group, f"compressed-tensors w4a16, group {group}, fp16 scale")
    raise SpecError(f"compressed-tensors weights of {bits} bits ({kind}) are not a format kvplan knows")


def _gptq_awq(qc: dict, method: str) -> Quantization:
    bits, group = _int(qc, "bits", 4), qc.get("group_size", 128)
    group = group if isinstance(group, int) and group > 0 else 128  # -1: one group per column
    fmt = {4: "int4", 8: "int8"}.get(bits)
    if fmt is None:
        raise SpecError(f"{method} with {bits}-bit weights is not a format kvplan knows (4 or 8)")
    return Quantization(fmt, bits + (16 + bits) / group, f"{method.upper()} {bits}-bit, group {group}, "
                                                         f"fp16 scale + {bits}-bit zero per group")


def _bitsandbytes(qc: dict) -> Quantization:
    if qc.get("load_in_8bit"):
        return Quantization("int8", 8, "bitsandbytes LLM.int8")
    kind = qc.get("bnb_4bit_quant_type", "nf4")
    double = 32 / (64 * 256) if qc.get("bnb_4bit_use_double_quant", True) else 0
    return Quantization("nf4", 4 + 8 / 64 + double, f"bitsandbytes {kind}, blocks of 64")


def _algo_bits(algo: str, group: int) -> tuple[str, float]:
    if algo.upper() == "FP8":
        return "fp8", 8.0
    if "NVFP4" in algo.upper():
        return "nvfp4", 4 + 8 / group
    raise SpecError(f"modelopt mixed precision with {algo} layers is not a format kvplan knows (FP8, NVFP4)")


def _modelopt_mixed(qc: dict, module_params: Callable[[str], int] | None) -> Quantization:
    """modelopt's MIXED_PRECISION: quantized_layers names each module's quant_algo (and group_size).
    The modules' parameters (module_params, from the config's shapes) weight each format's bits;
    the format named is the one holding the most of them."""
    layers = qc.get("quantized_layers")
    if not isinstance(layers, dict) or not layers or module_params is None:
        raise SpecError("modelopt MIXED_PRECISION needs quantized_layers and the model's shapes to size")
    params: dict[tuple[str, float], int] = {}
    for name, spec in layers.items():
        spec = spec if isinstance(spec, dict) else {}
        key = _algo_bits(str(spec.get("quant_algo")), _int(spec, "group_size", 16))
        params[key] = params.get(key, 0) + module_params(name)
    total = sum(params.values())
    bits = sum(b * n for (_, b), n in params.items()) / total
    main = max(params, key=lambda k: params[k])[0]
    parts = ", ".join(f"{n:,} params {f} ({b:.3f} bits)" for (f, b), n in sorted(params.items()))
    return Quantization(main, bits, f"modelopt mixed precision: {parts}; averaged")


def read_quantization(qc: object, module_params: Callable[[str], int] | None = None) -> Quantization | None:
    """The weights format a quantization_config describes; None for none; one SpecError for a
    method kvplan cannot size. module_params: a module's parameters by its name, where a mixed
    recipe is weighted by them."""
    if not qc:
        return None
    if not isinstance(qc, dict):
        raise SpecError(f"quantization_config must be an object, not {type(qc).__name__}")
    method = str(qc.get("quant_method", "")).lower()
    if method in ("fp8", "fbgemm_fp8"):
        blocks = qc.get("weight_block_size")
        return Quantization("fp8", 8, "fp8 e4m3" + (f", scales per {blocks[0]}x{blocks[1]} block" if blocks else ""))
    if method == "compressed-tensors":
        return _compressed_tensors(qc)
    if method in ("gptq", "awq"):
        return _gptq_awq(qc, method)
    if method == "bitsandbytes":
        return _bitsandbytes(qc)
    if method == "modelopt" and str(qc.get("quant_algo")).upper() == "MIXED_PRECISION":
        return _modelopt_mixed(qc, module_params)
    if method == "modelopt" and "FP8" in str(qc.get("quant_algo")).upper():  # FP8, FP8_BLOCK_SCALES, ...
        return Quantization("fp8", 8, "fp8 e4m3 (modelopt)")
    if method in ("modelopt", "nvfp4") and "FP4" in str(qc.get("quant_algo", "NVFP4")).upper():
        return Quantization("nvfp4", 4 + 8 / 16, "nvfp4: 4-bit values, one e4m3 scale per 16")
    if method == "mxfp4":
        return Quantization("mxfp4", 4 + 8 / 32, "mxfp4: 4-bit values, one e8m0 scale per 32")
    raise SpecError(f"quantization method '{method}' is not one kvplan can size (fp8, compressed-tensors, "
                    "gptq, awq, bitsandbytes, mxfp4); pass --weights-gib, or the folder with its *.safetensors")


def read_kv_quantization(qc: object) -> str | None:
    """The KV cache dtype a checkpoint is calibrated for: modelopt's kv_cache_quant_algo FP8, or a
    compressed-tensors kv_cache_scheme of 8-bit floats; None where it states none."""
    if not isinstance(qc, dict):
        return None
    if "FP8" in str(qc.get("kv_cache_quant_algo") or "").upper():
        return "fp8"
    scheme = qc.get("kv_cache_scheme")
    if isinstance(scheme, dict) and scheme.get("num_bits") == 8 and scheme.get("type") == "float":
        return "fp8"
    return None
