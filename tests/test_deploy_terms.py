"""The deploy line `kvplan fit` and `kvplan plan` print carries every memory term the budget was planned
with (LoRA, a drafter, the multimodal limits, a KV offload tier), and `kvplan check` reads it back into
the same budget: written by calc/fit.py deployment_settings, read by the engine's read_command."""

from __future__ import annotations

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.check import scenario_inputs
from kvplan.calc.fit import deployment_settings
from kvplan.specs.checkfile import inline_scenario
from kvplan.specs.engines.registry import engine
from kvplan.units import GIB

PLAIN = {"util": 0.9, "max_num_seqs": 64}  # given, so the line read back gives them as given too


def _line(catalog, name: str, gpu: str, inputs: BudgetInputs, max_len: int):
    model, spec = catalog.model(name), catalog.gpu(gpu)
    budget = memory_budget(model, spec, inputs)
    return budget, engine(inputs.engine).write_command(deployment_settings(model, spec, budget, max_len,
                                                                           budget.max_num_seqs))


def _read_back(catalog, name: str, gpu: str, line: str, engine_name: str):
    """What `kvplan check` plans from the line: its fields as a scenario of the database's model."""
    fields, ignored = engine(engine_name).read_command(line)
    assert ignored == []
    fields["model"] = name  # the line names the repo; check resolves it to the same spec
    s = inline_scenario(name="deployed", gpu=gpu, engine=engine_name, **fields)
    if s.draft_model:
        s = s.model_copy(update={"draft_spec": catalog.model(s.draft_model)})  # as cli/check.py resolves it
    return memory_budget(catalog.model(name), catalog.gpu(gpu), scenario_inputs(s)), fields


def test_lora_and_a_draft_model_round_trip(catalog):
    inputs = BudgetInputs(max_model_len=8192, enable_lora=True, max_loras=4, max_lora_rank=64, max_cpu_loras=8,
                          speculative_method="draft_model", draft_model=catalog.model("llama3.2-1b"),
                          num_speculative_tokens=5, **PLAIN)
    budget, line = _line(catalog, "llama3.1-8b", "h100", inputs, 8192)
    assert line == ("vllm serve meta-llama/Llama-3.1-8B --tensor-parallel-size 1 --max-model-len 8192 "
                    "--gpu-memory-utilization 0.9 --max-num-seqs 64 --max-loras 4 --max-lora-rank 64 "
                    "--max-cpu-loras 8 --speculative-config '{\"method\": \"draft_model\", \"num_speculative_tokens\": "
                    "5, \"model\": \"meta-llama/Llama-3.2-1B\"}' --enable-lora")
    again, fields = _read_back(catalog, "llama3.1-8b", "h100", line, "vllm")
    assert (fields["max_loras"], fields["max_lora_rank"], fields["draft_model"]) == (4, 64, "meta-llama/Llama-3.2-1B")
    assert again == budget
    # the terms are in it: LoRA's buffers, and the 1B draft's 1,235,814,400 params x 2 B (bf16) of weights
    assert budget.lora_bytes > 0 and budget.draft_weights_bytes == 1_235_814_400 * 2 == 2_471_628_800


def test_an_eagle3_head_and_vllms_native_kv_offload_round_trip(catalog):
    inputs = BudgetInputs(engine="vllm==0.19", max_model_len=8192, speculative_method="eagle3",
                          num_speculative_tokens=3, kv_offload_gib=64, **PLAIN)
    budget, line = _line(catalog, "llama3.1-8b", "h100", inputs, 8192)
    assert ("--speculative-config '{\"method\": \"eagle3\", \"num_speculative_tokens\": 3}' "
            "--kv-offloading-size 64") in line
    again, _ = _read_back(catalog, "llama3.1-8b", "h100", line, "vllm==0.19")
    assert again == budget and budget.kv_offload[0].size_bytes == 64 * GIB  # 64 x 2^30 B, every rank's


def test_multimodal_limits_and_the_encoders_tp_mode_round_trip(catalog):
    inputs = BudgetInputs(tp=2, max_model_len=32768, limit_mm_per_prompt=(("image", 2), ("video", 0)),
                          mm_encoder_tp_mode="data", **PLAIN)
    budget, line = _line(catalog, "qwen3-vl-30b-a3b-instruct", "h100", inputs, 32768)
    assert "--limit-mm-per-prompt '{\"image\": 2, \"video\": 0}' --mm-encoder-tp-mode data" in line
    again, fields = _read_back(catalog, "qwen3-vl-30b-a3b-instruct", "h100", line, "vllm")
    assert fields["mm_encoder_tp_mode"] == "data" and again == budget


@pytest.mark.parametrize("given, flags", [({"hicache_ratio": 3.0}, "--hicache-ratio 3 --enable-hierarchical-cache"),
                                          ({"hicache_size_gb": 10.0}, "--hicache-size 10 --enable-hierarchical-cache"),
                                          ({"kv_offload_backend": "hicache"}, "--enable-hierarchical-cache")])
def test_sglang_hicache_round_trips(catalog, given, flags):
    inputs = BudgetInputs(engine="sglang", max_model_len=8192, **given, **PLAIN)
    budget, line = _line(catalog, "llama3.1-8b", "h100", inputs, 8192)
    assert line.endswith("--max-running-requests 64 " + flags)
    again, fields = _read_back(catalog, "llama3.1-8b", "h100", line, "sglang")
    assert fields["kv_offload_backend"] == "hicache" and again == budget
    assert budget.kv_offload[0].backend == "hicache"


def test_sglangs_hicache_flags_read_into_check_fields():
    fields, ignored = engine("sglang").read_command(
        "python -m sglang.launch_server --model-path org/m --enable-hierarchical-cache --hicache-ratio 2.5 "
        "--hicache-size 40")
    assert ignored == [] and fields == {"model": "org/m", "kv_offload_backend": "hicache", "hicache_ratio": 2.5,
                                        "hicache_size_gb": 40.0}


def test_lmcaches_disk_tier_and_weights_on_the_host_round_trip(catalog):
    """The deploy line dropped --cpu-offload-gb and LMCache's disk: the disk is LMCache's own setting
    (LMCACHE_LOCAL_DISK and LMCACHE_MAX_LOCAL_DISK_SIZE, GiB a rank), the weights kept on the host vLLM's flag."""
    inputs = BudgetInputs(max_model_len=8192, kv_offload_gib=64, kv_offload_backend="lmcache",
                          kv_offload_disk_gib=200, cpu_offload_gib=4, **PLAIN)
    budget, line = _line(catalog, "llama3.1-8b", "h100", inputs, 8192)
    assert line.startswith("LMCACHE_LOCAL_DISK=file:///tmp/lmcache/ LMCACHE_MAX_LOCAL_DISK_SIZE=200 vllm serve ")
    assert line.endswith("--max-num-seqs 64 --cpu-offload-gb 4 --kv-offloading-size 64 --kv-offloading-backend lmcache")
    again, fields = _read_back(catalog, "llama3.1-8b", "h100", line, "vllm")
    assert (fields["kv_offload_disk_gib"], fields["cpu_offload_gib"]) == (200.0, 4.0) and again == budget
    assert budget.cpu_offload_bytes == 4 * GIB  # 4 x 2^30 B of weights on the host
    assert [t.medium for t in budget.kv_offload] == ["host memory", "local disk"]


def test_sglang_writes_and_reads_weights_on_the_host(catalog):
    inputs = BudgetInputs(engine="sglang", max_model_len=8192, cpu_offload_gib=4, **PLAIN)
    budget, line = _line(catalog, "llama3.1-8b", "h100", inputs, 8192)
    assert line.endswith("--max-running-requests 64 --cpu-offload-gb 4")
    again, _ = _read_back(catalog, "llama3.1-8b", "h100", line, "sglang")
    assert again == budget and budget.cpu_offload_bytes == 4 * GIB
