"""vLLM's LoRA buffers (kvplan/specs/engines/vllm_lora.py) for Llama-3.1-8B, --max-loras 4
--max-lora-rank 64, derived by hand per module from create_lora_weights (vllm/lora/layers/*.py, 0.19
and 0.34): A is rank x in_features, B is out_features x rank, per slot, sharded as the layer is.

No public log with "Model loading took" under --enable-lora was found to tie these bytes to; vLLM
issue #14450 (https://github.com/vllm-project/vllm/issues/14450) is the record that V0's block count
ignored the LoRA buffers, and the maintainer's answer that V1 counts them, as load_model's
DeviceMemoryProfiler does (v1/worker/gpu_model_runner.py)."""

from __future__ import annotations

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.check import scenario_inputs
from kvplan.errors import InputError
from kvplan.specs.checkfile import inline_scenario
from kvplan.specs.engines.vllm import COMMAND
from kvplan.specs.engines.vllm_lora import extra_vocab, layer_elements, lora_buffers

LORA = dict(enable_lora=True, max_loras=4, max_lora_rank=64)

# Llama-3.1-8B: hidden 4,096, 32 query heads and 8 KV heads of 128, intermediate 14,336, vocab 128,256
# Per slot and rank, (in + out) of each module (PEFT's shapes), TP 1:
#   q 4,096 + 4,096; k 4,096 + 1,024; v 4,096 + 1,024; o 4,096 + 4,096;
#   gate 4,096 + 14,336; up 4,096 + 14,336; down 14,336 + 4,096       = 81,920 a layer
LAYER_TP1 = 4 * 64 * 81_920  # 20,971,520 elements
# TP 2: column-parallel B halves (q 2,048, k and v 512, gate and up 7,168), row-parallel A halves
# (o 2,048, down 7,168); A of q/k/v/gate/up and B of o/down stay whole:
#   A: 3 x 4,096 + 2,048 + 2 x 4,096 + 7,168 = 29,696; B: 2,048 + 2 x 512 + 4,096 + 2 x 7,168 + 4,096 = 25,600
LAYER_TP2 = 4 * 64 * (29_696 + 25_600)  # 14,155,776 elements
# embed_tokens: A [4, 128,256, 64] and B [4, 1, 4,096, 64]; lm_head (LogitsProcessorWithLoRA):
# A [4, 1, 64, 4,096] and B [4, 1, 128,256, 64]; neither sharded
VOCAB = 4 * 64 * (128_256 + 4_096 + 4_096 + 128_256)  # 67,764,224 elements


def test_a_layer_of_llama_3_1_8b_module_by_module(catalog):
    model = catalog.model("llama3.1-8b")
    assert layer_elements(model, 1, 4, 64)[0] == LAYER_TP1 == 20_971_520
    assert layer_elements(model, 2, 4, 64)[0] == LAYER_TP2 == 14_155_776


@pytest.mark.parametrize("tp, expected", [
    (1, (32 * LAYER_TP1 + VOCAB) * 2),  # (671,088,640 + 67,764,224) x 2 B = 1,477,705,728 B (1.38 GiB)
    (2, (32 * LAYER_TP2 + VOCAB) * 2),  # (452,984,832 + 67,764,224) x 2 B = 1,041,498,112 B (0.97 GiB)
])
def test_llama_3_1_8b_four_adapters_of_rank_64(catalog, tp, expected):
    model, gpu = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    budget = memory_budget(model, gpu, BudgetInputs(tp=tp, **LORA))
    assert budget.lora_bytes == expected == {1: 1_477_705_728, 2: 1_041_498_112}[tp]
    plain = memory_budget(model, gpu, BudgetInputs(tp=tp))
    assert plain.kv_pool_bytes - budget.kv_pool_bytes == expected  # counted with the weights, out of the pool
    assert [step.label for step in budget.explain].count("lora") == 1


def test_the_buffers_grow_with_slots_and_rank(catalog):
    model = catalog.model("llama3.1-8b")
    one = lora_buffers(model, tp=1, layers=32, dtype="bf16", max_loras=1, rank=16).value
    # vLLM's defaults, 1 slot of rank 16: 1/16 of 4 x 64: 1,477,705,728 / 16 = 92,356,608 B
    assert one * 16 == 1_477_705_728


def test_through_0_11_the_extra_vocabulary_adds_rows(catalog):
    """vllm-0.10.2 lora_extra_vocab_size 256: embedding A over 128,512 rows; the logits' B over
    128,512 padded to 256 = 128,512; two embeddings_tensors [4, 256, 4,096]; the base embedding grown
    by 256 x 4 rows and the LM head by 256, of 4,096 each."""
    model = catalog.model("llama3.1-8b")
    assert extra_vocab("vllm", (0, 10)) == 256 and extra_vocab("vllm", (0, 19)) == 0
    budget = memory_budget(model, catalog.gpu("h100"), BudgetInputs(engine="vllm==0.10", **LORA))
    extra = 4 * 64 * (256 + 256) + 2 * 4 * 256 * 4_096 + (256 * 4 + 256) * 4_096  # 13,762,560 elements
    assert budget.lora_bytes == 1_477_705_728 + extra * 2 == 1_505_230_848


def test_a_measured_value_overrides_and_other_engines_need_one(catalog):
    model, gpu = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    assert memory_budget(model, gpu, BudgetInputs(lora_bytes=2**30)).lora_bytes == 2**30
    with pytest.raises(InputError, match="vLLM only"):
        memory_budget(model, gpu, BudgetInputs(engine="sglang", **LORA))
    with pytest.raises(InputError, match="one of 1, 8, 16"):
        memory_budget(model, gpu, BudgetInputs(enable_lora=True, max_lora_rank=48))
    with pytest.raises(InputError, match="max_cpu_loras"):
        memory_budget(model, gpu, BudgetInputs(max_cpu_loras=2, **LORA))


def test_a_vllm_serve_line_and_a_check_file_carry_lora():
    fields, ignored = COMMAND.read("vllm serve meta-llama/Llama-3.1-8B --enable-lora --max-loras 4 "
                                   "--max-lora-rank 64 --max-cpu-loras 8", "vllm", "vLLM")
    assert (fields["enable_lora"], fields["max_loras"], fields["max_lora_rank"], fields["max_cpu_loras"]) == \
        (True, 4, 64, 8) and ignored == []
    inputs = scenario_inputs(inline_scenario(name="l", model="llama3.1-8b", gpu="h100", enable_lora=True, max_loras=4,
                                             max_lora_rank=64))
    assert (inputs.enable_lora, inputs.max_loras, inputs.max_lora_rank) == (True, 4, 64)
