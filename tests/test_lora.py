"""vLLM's LoRA buffers (kvplan/specs/engines/vllm_lora.py) for Llama-3.1-8B, --max-loras 4
--max-lora-rank 64, derived by hand per module from create_lora_weights (vllm/lora/layers/*.py, 0.19
and 0.34): A is rank x in_features, B is out_features x rank, per slot, sharded as the layer is.

A real log ties these bytes: vLLM 0.8.2 serving Llama-3.1-8B-Instruct with --enable-lora --max-loras 2
--max-lora-rank 16 logs "Model loading took 15.1749 GB" (tests/fixtures/engine_logs/
vllm-0.8.2-llama3.1-8b-lora-a100-1.log, its source in SOURCES.yaml), where the same checkpoint without
LoRA logs 14.9889 GiB (vllm-0.11.0-llama3.1-8b-l4-1.log). vLLM issue #14450
(https://github.com/vllm-project/vllm/issues/14450) is the record that V0's block count ignored the
LoRA buffers, and the maintainer's answer that V1 counts them, as load_model's DeviceMemoryProfiler
does (v1/worker/gpu_model_runner.py)."""

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


def test_the_0_8_2_lora_log_is_reproduced(catalog):
    """2 slots of rank 16 with 0.8's extra vocabulary of 256, Llama-3.1-8B at TP 1, module by module:
    a layer a slot: qkv A 3 x 16 x 4,096 + B 16 x (4,096 + 2 x 1,024) = 294,912; o 2 x 16 x 4,096 =
    131,072; gate_up A 2 x 16 x 4,096 + B 2 x 14,336 x 16 = 589,824; down 16 x (14,336 + 4,096) =
    294,912: 1,310,720 elements x 32 layers x 2 slots x 2 B = 167,772,160 B. The embedding: A 2 x
    128,512 x 16 + B 2 x 4,096 x 16 + its extra rows 2 x 256 x 4,096 = 6,340,608 elements; the LM head
    the same (B over 128,512 rows, already a multiple of 256): 2 x 6,340,608 x 2 B = 25,362,432 B; the
    base embedding grown by 256 x 2 rows and its LM head by 256: (512 + 256) x 4,096 x 2 B = 6,291,456 B."""
    from engine_fixtures import LOGS

    from kvplan.calc.logfit import explain_log, settings_inputs
    from kvplan.specs.engines.logs import load_log
    from kvplan.units import GIB

    startup = load_log(LOGS / "vllm-0.8.2-llama3.1-8b-lora-a100-1.log")
    assert (startup.enable_lora, startup.max_loras, startup.max_lora_rank, startup.max_cpu_loras) == (True, 2, 16, 12)
    inputs = settings_inputs(startup)
    assert (inputs.engine, inputs.enable_lora, inputs.max_loras, inputs.max_lora_rank) == ("vllm==0.8.2", True, 2, 16)
    budget = memory_budget(catalog.model("llama3.1-8b"), catalog.gpu("a100-40gb"), inputs)
    assert budget.lora_bytes == 167_772_160 + 25_362_432 + 6_291_456 == 199_426_048
    # 'Model loading took' holds both: 16,094,076,928 B of weights and RoPE table + the buffers
    loaded = (budget.weights_bytes + budget.lora_bytes) / GIB
    assert budget.weights_bytes + budget.lora_bytes == 16_293_502_976
    assert abs(loaded - 15.1749) < 0.0005  # 15.17461 GiB: 0.3 MiB under the log
    # the buffers alone, against the two logs' difference (15.1749 - 14.9889 = 0.1860 GiB, each to 4 places)
    assert abs(budget.lora_bytes / GIB - (15.1749 - 14.9889)) < 0.0005  # 0.18573 GiB: -0.15%
    report = explain_log(startup, catalog.model("llama3.1-8b"), catalog.gpu("a100-40gb"))
    weights = next(f for f in report.figures if f.name == "weights")
    assert abs(weights.error) < 0.0001 and "LoRA" in weights.rule
    tokens = next(f for f in report.figures if f.name == "token capacity")
    assert tokens.reproduced_low is None  # no 'Available KV cache memory' at INFO in 0.8.2: nothing to reproduce
