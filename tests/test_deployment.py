"""The plan meets what is deployed: the repo the user named and its own config, the dtype the engine
serves, the engine's refusals, and the command that starts it. Each of the new user's seven wrong
answers has a test here, its right figure derived by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.fit import fit
from kvplan.cli import main
from kvplan.units import GIB

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# 1. a quantized repo is served as itself, with no flag: vLLM reads its quantization_config -----------

def test_a_quantized_repo_is_deployed_as_named(catalog):
    model = catalog.model("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8")  # offline: its base by name, fp8 weights
    r = fit(model, catalog.gpu("h100"), 8192)
    # weights: 6,979,588,096 linear params x 1 B + 1,050,673,152 embedding params (128,256 x 4,096, untied
    # embedding and LM head) x 2 B = 9,080,934,400 B = 8.46 GiB, not the bf16 checkpoint's 14.96 GiB
    # (and vLLM's RoPE cos/sin table, 131,072 positions x 128 x 2 B = 33,554,432 B, loaded with them)
    assert r.budget.weights_bytes - 131_072 * 128 * 2 == 6_979_588_096 + 2 * 1_050_673_152 == 9_080_934_400
    assert r.fits and r.command.startswith("vllm serve RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8 --tensor-parallel-size 1 ")
    assert "--quantization" not in r.command and "meta-llama/" not in r.command
    assert "inferred" in (model.origin or "") and "may differ" in (model.origin or "")


def test_an_awq_70b_is_deployed_as_named_on_one_h100(catalog):
    model = catalog.model("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4")
    r = fit(model, catalog.gpu("h100"), 4096, max_len=8192)
    # 70,553,706,496 params, of which 2 x 128,256 x 8,192 = 2,101,346,304 embedding params stay 16-bit:
    # 68,452,360,192 linear params x (4 + 20/128 = 4.15625) bits / 8 = 35,563,140,256 B, + 2 B x 2,101,346,304
    # and the RoPE table, 131,072 x 128 x 2 B = 33,554,432 B, on every GPU
    assert r.budget.weights_bytes - 33_554_432 == 35_563_140_256 + 4_202_692_608 == 39_765_832_864  # 37.03 GiB
    assert r.command.startswith("vllm serve hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4 --tensor-parallel-size 1 ")
    assert "--quantization" not in r.command


def test_a_cast_at_load_is_the_only_quantization_flag(catalog):
    """fp8 weights planned on a bf16 checkpoint: vLLM casts them as it loads (--quantization fp8); int4
    it cannot: the result says to serve an int4 checkpoint instead."""
    fp8 = fit(catalog.model("llama3.1-8b"), catalog.gpu("h100"), 8192, BudgetInputs(weights_dtype="fp8"))
    assert fp8.command.endswith("--quantization fp8") and fp8.command_note == ""
    int4 = fit(catalog.model("llama3.1-8b"), catalog.gpu("h100"), 8192, BudgetInputs(weights_dtype="int4"))
    assert "--quantization" not in int4.command and "quantized to int4" in int4.command_note


def test_a_revision_travels_to_the_command(catalog):
    model = catalog.model("meta-llama/Llama-3.1-8B-Instruct@0e9e39f")  # a database alias, at a revision
    r = fit(model, catalog.gpu("h100"), 4096)
    assert r.command.startswith("vllm serve meta-llama/Llama-3.1-8B-Instruct --revision 0e9e39f ")


# 2. an Instruct repo has its own context -------------------------------------------------------------

def test_qwen25_instruct_plans_its_own_context(catalog):
    """Qwen2.5-7B-Instruct's config.json says max_position_embeddings 32,768 (the base: 131,072)."""
    model = catalog.model("Qwen/Qwen2.5-7B-Instruct")
    assert model.name == "qwen2.5-7b-instruct" and model.max_context == 32_768
    r = fit(model, catalog.gpu("l4"), 4096)
    # one request of 32,768 tokens: 28 layers x 2 (K, V) x 4 KV heads x 128 x 2 B = 57,344 B per token
    assert r.start.needed_bytes == 32_768 * 28 * 2 * 4 * 128 * 2 == 1_879_048_192  # 1.75 GiB
    assert r.start.starts and r.fits and "--max-model-len 32768" in r.command
    base = fit(catalog.model("Qwen/Qwen2.5-7B"), catalog.gpu("l4"), 4096)
    assert not base.start.starts  # 131,072 x 57,344 B = 7 GiB > the L4's 4.84 GiB pool


def test_an_uncached_fine_tune_is_its_base_by_name_and_says_what_may_differ(catalog):
    model = catalog.model("NousResearch/Hermes-3-Llama-3.1-70B-FP8")
    assert model.num_layers == 80 and model.quantization == "fp8"  # Llama-3.1-70B's shapes, fp8 weights
    assert model.served == "NousResearch/Hermes-3-Llama-3.1-70B-FP8" and "may differ" in (model.origin or "")
    tune = catalog.model("someone/Llama-3.1-8B-Instruct-abliterated")
    assert tune.name == "llama3.1-8b" and tune.served == "someone/Llama-3.1-8B-Instruct-abliterated"


def test_a_repo_in_the_cache_is_read_from_its_own_config(tmp_path, monkeypatch, catalog):
    """An Instruct repo the database would match by name is read from its own config when cached."""
    from kvplan.specs.catalog import load_catalog

    snapshot = tmp_path / "models--acme--Qwen2.5-7B-Instruct-long" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    config = json.loads((FIXTURES / "qwen2.5-1.5b" / "config.json").read_text())
    config["max_position_embeddings"] = 65_536
    (snapshot / "config.json").write_text(json.dumps(config))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    model = load_catalog().model("acme/Qwen2.5-7B-Instruct-long")
    assert model.max_context == 65_536 and "Hugging Face cache" in (model.origin or "")
    assert model.served == "acme/Qwen2.5-7B-Instruct-long"


# 3. an fp32 checkpoint is served in 16 bits -----------------------------------------------------------

@pytest.fixture
def gemma2_fp32(tmp_path) -> Path:
    """google/gemma-2-9b as published: the -it config's shapes, torch_dtype float32."""
    folder = tmp_path / "gemma-2-9b"
    folder.mkdir()
    config = json.loads((FIXTURES / "gemma2-9b" / "config.json").read_text())
    config["torch_dtype"] = "float32"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_an_fp32_checkpoint_is_served_in_bf16_where_the_gpu_has_it(gemma2_fp32, catalog):
    model = catalog.model(str(gemma2_fp32))
    assert model.dtype == "fp32"
    b = memory_budget(model, catalog.gpu("a100-80gb-sxm"), BudgetInputs())
    assert b.dtype == "bf16" and b.kv_dtype == "bf16" and b.dtype_cast  # vLLM: bf16 on compute capability 8.0+
    # cast at load: 2 B a parameter, not the checkpoint's 4; and the RoPE table, 8,192 x 256 x 2 B
    assert b.weights_bytes == model.params_total * 2 + 8_192 * 256 * 2
    bf16 = memory_budget(catalog.model("gemma2-9b"), catalog.gpu("a100-80gb-sxm"), BudgetInputs())
    # same shapes in the same 16 bits: the same KV per token (42 layers x 2 x 8 KV heads x 256 x 2 B)
    assert b.kv_bytes_per_token == bf16.kv_bytes_per_token == 42 * 2 * 8 * 256 * 2 == 344_064


def test_an_fp32_checkpoint_on_a_gpu_without_bf16_is_fp16(gemma2_fp32, catalog):
    b = memory_budget(catalog.model(str(gemma2_fp32)), catalog.gpu("v100"), BudgetInputs())
    assert b.dtype == "fp16" and "fp16" in b.dtype_source


def test_sglang_serves_fp32_in_fp16_but_gemma_in_bf16(catalog):
    from conftest import make_model

    plain, gemma = make_model(dtype="fp32"), make_model(dtype="fp32", family="gemma2")
    h100 = catalog.gpu("h100")
    assert memory_budget(plain, h100, BudgetInputs(engine="sglang")).dtype == "fp16"
    assert memory_budget(gemma, h100, BudgetInputs(engine="sglang")).dtype == "bf16"
    # 8,030,261,248 params x 2 B, where planning the checkpoint's fp32 would count 4 B each (+ the RoPE table,
    # 8,192 x 128 x 2 B)
    assert memory_budget(plain, h100, BudgetInputs()).weights_bytes == 16_060_522_496 + 2_097_152


def test_the_dtype_is_said(capsys, gemma2_fp32):
    code, out, _ = run(capsys, "fit", str(gemma2_fp32), "--gpu", "a100-80gb-sxm")
    assert code == 0 and "in bf16: the checkpoint's fp32, which vLLM serves in bf16" in " ".join(out.split())


# 5. a max_model_len past the model's context does not start ----------------------------------------

def test_a_max_len_past_the_context_will_not_start(capsys, catalog):
    model, h100 = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    r = fit(model, h100, 4096, max_len=300_000)
    assert not r.fits and r.start.beyond_context and r.command == ""  # 300,000 > 131,072
    assert r.verdict.startswith("will not start: vLLM refuses it, max_model_len 300,000 is past llama3.1-8b's "
                                "context of 131,072 tokens")
    allowed = fit(model, h100, 4096, BudgetInputs(allow_long_max_len=True), max_len=300_000)
    assert allowed.fits and allowed.command.startswith("VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 vllm serve ")
    code, out, _ = run(capsys, "fit", "llama3.1-8b", "--gpu", "h100", "--max-len", "300000")
    assert code == 0 and "--allow-long-max-len" in out and "Deploy with" not in out


def test_check_reads_the_switch_from_a_vllm_line(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    line = "vllm serve meta-llama/Llama-3.1-8B --max-model-len 300000"
    path.write_text(f"scenarios:\n  - {{name: refused, gpu: h100, vllm: '{line}'}}\n"
                    f"  - {{name: allowed, gpu: h100, vllm: 'VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 {line}'}}\n")
    code, out, _ = run(capsys, "check", str(path), "--json")
    results = {r["name"]: r for r in json.loads(out)["scenarios"]}
    assert code == 1 and not results["refused"]["passed"] and results["allowed"]["passed"]


# 6. a local folder is served as that folder ----------------------------------------------------------

def test_a_local_config_is_served_from_its_folder(capsys, tmp_path):
    folder = tmp_path / "my-llama"
    folder.mkdir()
    shutil.copy(FIXTURES / "llama3.1-8b" / "config.json", folder / "config.json")
    code, out, _ = run(capsys, "fit", str(folder / "config.json"), "--gpu", "h100", "--max-len", "8k")
    assert code == 0 and f"vllm serve {folder} --tensor-parallel-size 1" in out.replace("\n  ", " ")


def test_the_engine_total_is_what_cuda_reports(catalog):
    b = memory_budget(catalog.model("llama3.1-8b"), catalog.gpu("h100"), BudgetInputs())
    assert b.total_bytes < 80 * GIB  # the CUDA total, not the nominal 80 GiB


@pytest.mark.parametrize("extra, model_type, expected", [
    ({}, "llama", 131_072),  # max_position_embeddings
    ({"max_seq_len": 8_192}, "llama", 8_192),  # the smallest length key wins, as vLLM takes it
    ({"rope_scaling": {"rope_type": "linear", "factor": 4.0}}, "llama", 524_288),  # 131,072 x 4
    ({"rope_scaling": {"type": "dynamic", "factor": 2}}, "llama", 262_144),  # the older 'type' key
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "llama", 131_072),  # already scaled
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32_768}},
     "qwen2", 131_072),  # vLLM 0.30 and later: max_position_embeddings taken as scaled
    ({"rope_scaling": {"rope_type": "linear", "factor": 8.0}}, "gemma3_text", 131_072),  # Gemma-3: never again
])
def test_the_context_is_derived_as_the_engine_derives_it(extra, model_type, expected):
    from kvplan.specs.hfconfig import Config
    from kvplan.specs.importer import derived_context

    assert derived_context(Config({"max_position_embeddings": 131_072, **extra}, "config.json"), model_type) == expected


def test_the_engine_refuses_settings_before_memory(catalog):
    """vLLM's own refusals: max_num_batched_tokens below max_num_seqs (SchedulerConfig), bf16 on a GPU
    without it, and Gemma-2 in fp16, where auto lands it on a T4 (compute capability 7.5)."""
    h100, t4 = catalog.gpu("h100"), catalog.gpu("t4")
    seqs = fit(catalog.model("llama3-8b"), h100, 4096, BudgetInputs(max_num_seqs=9000))
    assert not seqs.start.starts and seqs.start.refused and "must be at least max_num_seqs (9,000)" in seqs.verdict
    bf16 = memory_budget(catalog.model("llama3.2-1b"), t4, BudgetInputs(weights_dtype="bf16"))
    assert "bf16 needs compute capability 8.0" in bf16.start_refusal
    gemma = memory_budget(catalog.model("gemma2-9b"), t4, BudgetInputs(tp=2))
    assert gemma.dtype == "fp16" and "refuse fp16" in gemma.start_refusal
    assert memory_budget(catalog.model("gemma2-9b"), h100, BudgetInputs()).start_refusal == ""
    assert memory_budget(catalog.model("llama3.2-1b"), t4, BudgetInputs()).start_refusal == ""  # fp16: fine
