"""Quantized checkpoints: the weights format and its bits per weight from quantization_config
(group sizes, scales, zero points derived by hand), and exact bytes from safetensors headers."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.errors import SpecError
from kvplan.specs.checkpoint import ST_WIDTHS
from kvplan.specs.importer import import_model
from kvplan.specs.quantization import read_quantization

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
LLAMA31_8B = json.loads((FIXTURES / "llama3.1-8b" / "config.json").read_text())


@pytest.mark.parametrize("qc, fmt, bits", [
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4", 4 + (16 + 4) / 128),  # 4.15625
    ({"quant_method": "gptq", "bits": 4, "group_size": 32}, "int4", 4 + (16 + 4) / 32),  # 4.625
    ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "int8", 8 + (16 + 8) / 128),  # 8.1875
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 4, "type": "int", "group_size": 128, "symmetric": True}}}}, "int4", 4 + 16 / 128),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}}}, "int8", 8),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "float"}}}}, "fp8", 8),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8", 8),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "nf4",
     4 + 8 / 64 + 32 / (64 * 256)),  # 4.126953125 with double quantization
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "int8", 8),
    ({"quant_method": "mxfp4"}, "mxfp4", 4 + 8 / 32),  # 4.25
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "nvfp4", 4 + 8 / 16),  # 4.5
    ({"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}, "fp8", 8),  # nvidia/*-FP8
])
def test_formats_and_bits_per_weight(qc, fmt, bits):
    q = read_quantization(qc)
    assert (q.format, q.bits_per_weight) == (fmt, bits)


def test_no_quantization_config_is_none():
    assert read_quantization(None) is None and read_quantization({}) is None


def write_config(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_an_unknown_method_is_one_error_naming_the_file(tmp_path):
    folder = write_config(tmp_path, {**LLAMA31_8B, "quantization_config": {"quant_method": "hqq"}})
    with pytest.raises(SpecError, match=r"config.json: quantization method 'hqq' is not one kvplan can size"):
        import_model(folder)


@pytest.mark.parametrize("qc", [
    {"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": "FP8"},  # nvidia/Llama-3.1-8B-Instruct-FP8
    {"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}},
     "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"}},  # llm-compressor's FP8 KV
])
def test_a_checkpoint_calibrated_for_fp8_kv_is_stored_so_by_tensorrt_llm_alone(tmp_path, qc):
    """TensorRT-LLM's kv_cache_dtype auto takes the checkpoint's KV quantization ("Using checkpoint KV
    quantization", the 0.20 H100 PCIe fixture's log); vLLM's and SGLang's auto is the model's dtype."""
    (tmp_path / "fp8").mkdir()
    spec = import_model(write_config(tmp_path / "fp8", {**LLAMA31_8B, "quantization_config": qc})).spec
    assert (spec.quantization, spec.kv_cache_quant) == ("fp8", "fp8")
    on = lambda engine: memory_budget(spec, None, BudgetInputs(engine=engine, gpu_mem_bytes=80 * 2**30))  # noqa: E731
    # 32 layers x 2 (K, V) x 8 KV heads x 128 x 1 B = 65,536 B a token; x 2 B = 131,072 B in bf16
    assert (on("trtllm").kv_dtype, on("trtllm").kv_bytes_per_token) == ("fp8", 32 * 2 * 8 * 128 * 1)
    assert (on("vllm").kv_dtype, on("vllm").kv_bytes_per_token) == ("bf16", 131_072)
    assert (on("sglang").kv_dtype, on("sglang").kv_bytes_per_token) == ("bf16", 131_072)
    (tmp_path / "plain").mkdir()
    plain = import_model(write_config(tmp_path / "plain", LLAMA31_8B)).spec
    assert plain.kv_cache_quant is None


def test_awq_weights_from_the_config_alone(tmp_path):
    folder = write_config(tmp_path, {**LLAMA31_8B, "quantization_config": {"quant_method": "awq", "bits": 4,
                                                                           "group_size": 128}})
    spec = import_model(folder).spec
    assert (spec.quantization, spec.quantization_bits) == ("int4", 4.15625)
    budget = memory_budget(spec, None, BudgetInputs(gpu_mem_bytes=80 * 2**30))
    # params 8,030,261,248; embeddings + LM head 2 x 128,256 x 4,096 = 1,050,673,152 stay 16-bit;
    # linear 8,030,261,248 - 1,050,673,152 = 6,979,588,096 at 4.15625 bits, rounded up to whole bytes
    # (+ vLLM's RoPE cos/sin table, 131,072 positions x 128 x 2 B)
    assert budget.weights_bytes == math.ceil(6_979_588_096 * 4.15625 / 8) + 2 * 1_050_673_152 + 131_072 * 128 * 2


def safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file whose data is a hole: sparse, as large as its header says."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = ST_WIDTHS[dtype] * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    os.truncate(path, 8 + len(raw) + offset)


def test_packed_int4_bytes_are_exact_from_the_headers(tmp_path):
    folder = write_config(tmp_path, {**LLAMA31_8B, "quantization_config": {"quant_method": "gptq", "bits": 4,
                                                                           "group_size": 128}})
    # one GPTQ linear of 4,096 x 14,336: qweight packs 8 values per int32, scales fp16 and qzeros
    # int32 per group of 128 input rows; the embeddings in bf16
    safetensors(folder / "model.safetensors", {
        "model.layers.0.mlp.up_proj.qweight": ("I32", [4096 // 8, 14336]),
        "model.layers.0.mlp.up_proj.scales": ("F16", [4096 // 128, 14336]),
        "model.layers.0.mlp.up_proj.qzeros": ("I32", [4096 // 128, 14336 // 8]),
        "model.embed_tokens.weight": ("BF16", [128256, 4096])})
    spec = import_model(folder).spec
    # 512 x 14,336 x 4 + 32 x 14,336 x 2 + 32 x 1,792 x 4 + 128,256 x 4,096 x 2
    assert spec.checkpoint_bytes == 29_360_128 + 917_504 + 229_376 + 1_050_673_152
    budget = memory_budget(spec, None, BudgetInputs(gpu_mem_bytes=80 * 2**30))
    # the headers win over the format's estimate (beside them, the RoPE table: 131,072 x 128 x 2 B)
    assert budget.weights_bytes == spec.checkpoint_bytes + 131_072 * 128 * 2


# --- the towers that run on images: memory, not work per token ------------------------------------------

@pytest.mark.parametrize("fixture, published, tolerance", [
    # Gemma-3-27B: full checkpoint 27,432,406,640 less the text-only count 27,009,346,304 (spec notes)
    ("gemma3-27b", 27_432_406_640 - 27_009_346_304, 0.01),
    # Qwen2.5-VL-7B: 8,292,166,656 published in all, less Qwen2.5-7B's language model 7,615,616,512
    ("qwen2.5-vl-7b", 8_292_166_656 - 7_615_616_512, 0.01),
    # Llama-4-Scout: vision encoder, adapter and projector 871,932,416 (spec notes); pixel shuffle
    # and the adapter MLP are not in the ViT formula, hence the looser bound
    ("llama4-scout", 871_932_416, 0.10),
])
def test_vision_tower_estimated_from_its_config(fixture, published, tolerance):
    spec = import_model(FIXTURES / fixture).spec
    assert abs(spec.tower_params - published) / published < tolerance
    if spec.params_active:  # MoE: the active count leaves the towers out
        assert spec.params_active < spec.params_total - spec.tower_params
    assert spec.params_per_token == spec.params_active or spec.params_total - spec.tower_params


def test_vision_tower_counted_by_tensor_name(tmp_path):
    folder = write_config(tmp_path, {**LLAMA31_8B})
    safetensors(folder / "model.safetensors", {
        "model.embed_tokens.weight": ("BF16", [128256, 4096]),
        "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight": ("BF16", [4304, 1152]),
        "multi_modal_projector.linear.weight": ("BF16", [4096, 1152])})
    spec = import_model(folder).spec
    assert spec.tower_params == 4304 * 1152 + 4096 * 1152  # 4,958,208 + 4,718,592
    assert spec.params_total == 128256 * 4096 + spec.tower_params


def test_modelopt_mixed_precision_is_averaged_over_its_modules_parameters():
    """nvidia/Qwen3.6-27B-NVFP4 (MIXED_PRECISION): q/k/v/o of the 16 attention layers and in_proj_qkv,
    in_proj_z, out_proj of the 48 Gated DeltaNet layers in FP8 (8 bits); the MLP of all 64 layers and
    the LM head in W4A16_NVFP4, group 16 (4 + 8 / 16 = 4.5 bits). h 5,120, 24 heads (q gated: x 2),
    4 KV heads x 256, 16 K / 48 V linear heads x 128, MLP 17,408, vocab 248,320."""
    attention = 5_120 * 24 * 256 * 2 + 2 * 5_120 * 4 * 256 + 24 * 256 * 5_120  # 104,857,600
    linear = 5_120 * (2 * 16 * 128 + 48 * 128) + 2 * 5_120 * 48 * 128  # 115,343,360
    fp8 = 16 * attention + 48 * linear
    nvfp4 = 64 * 3 * 5_120 * 17_408 + 248_320 * 5_120
    assert (fp8, nvfp4) == (7_214_202_880, 18_384_158_720)
    spec = import_model(FIXTURES / "qwen3.6-27b-nvfp4").spec
    assert spec.quantization == "nvfp4"  # the format holding most of the parameters
    assert spec.quantization_bits == (8 * fp8 + 4.5 * nvfp4) / (fp8 + nvfp4)
    assert round(spec.quantization_bits, 3) == round(140_442_337_280 / 25_598_361_600, 3) == 5.486


def test_a_mixed_recipe_with_a_module_kvplan_cannot_size_is_one_error(tmp_path):
    mixed = {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
             "quantized_layers": {"model.layers.0.mlp.experts.0.up_proj": {"quant_algo": "FP8"}}}
    folder = write_config(tmp_path, {**LLAMA31_8B, "quantization_config": mixed})
    with pytest.raises(SpecError, match=r"cannot size the quantized module 'model.layers.0.mlp.experts.0.up_proj'"):
        import_model(folder)
    with pytest.raises(SpecError, match="needs quantized_layers and the model's shapes"):
        read_quantization(mixed)
