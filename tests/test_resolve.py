"""One MODEL argument, resolved from the database, a local path, the Hugging Face cache, the Hub (a
local stand-in started by the test: no test touches the network) or a quantized repo's name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import TOKEN, FakeHub, Repo, safetensors_bytes
from kvplan.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
QWEN_CONFIG = (FIXTURES / "qwen2.5-7b" / "config.json").read_text()
SHA = "0123456789abcdef0123456789abcdef01234567"
# Qwen2.5-7B: 28 layers x 2 (K, V) x 4 KV heads x 128 x 2 B = 57,344 B per token
QWEN_PER_TOKEN = 28 * 2 * 4 * 128 * 2


def run_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache (HF_HUB_CACHE), offline unless a test says otherwise."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def cache_repo(cache: Path, repo: str, files: dict[str, str], sha: str = SHA, ref: str = "main") -> Path:
    """The layout huggingface_hub writes: refs/REF holds the sha, snapshots/SHA/ the files."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / ref).write_text(sha)
    snapshot = folder / "snapshots" / sha
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    return snapshot


# --- 2. a local path ---------------------------------------------------------------------------------

def test_a_model_folder_is_used_directly(capsys):
    r = run_json(capsys, "size", "examples/models/Qwen2.5-7B", "--ctx", "8k")
    assert r["bytes_per_token_per_gpu"] == QWEN_PER_TOKEN == 57_344
    assert r["bytes_per_request_per_gpu"] == 8192 * 57_344 == 469_762_048
    assert r["model_origin"] == "local path examples/models/Qwen2.5-7B"


def test_a_config_file_is_used_directly(capsys):
    r = run_json(capsys, "size", "examples/models/Qwen2.5-7B/config.json", "--ctx", "1k")
    assert r["bytes_per_request_per_gpu"] == 1024 * QWEN_PER_TOKEN


# --- 3. the local Hugging Face cache -------------------------------------------------------------------

def test_a_repo_id_resolves_from_the_cache_offline(capsys, hf_cache):
    cache_repo(hf_cache, "acme/qwen-finetune", {"config.json": QWEN_CONFIG})
    r = run_json(capsys, "size", "acme/qwen-finetune", "--ctx", "4096")
    assert r["bytes_per_request_per_gpu"] == 4096 * QWEN_PER_TOKEN
    assert r["model_origin"].startswith(f"Hugging Face cache acme/qwen-finetune@{SHA}")


def test_a_revision_resolves_by_ref_or_sha(capsys, hf_cache):
    other = "f" * 40
    cache_repo(hf_cache, "acme/qwen-finetune", {"config.json": QWEN_CONFIG}, sha=other, ref="v2")
    assert other in run_json(capsys, "size", "acme/qwen-finetune@v2")["model_origin"]
    assert other in run_json(capsys, "size", f"acme/qwen-finetune@{other}")["model_origin"]


def test_hf_home_layout_is_honoured(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache_repo(tmp_path / "hf" / "hub", "acme/qwen-finetune", {"config.json": QWEN_CONFIG})
    assert run_json(capsys, "size", "acme/qwen-finetune")["model_origin"].startswith("Hugging Face cache")


def test_cached_safetensors_index_gives_the_checkpoint_size(capsys, hf_cache):
    index = json.dumps({"metadata": {"total_size": 15_231_233_024}, "weight_map": {}})
    cache_repo(hf_cache, "acme/qwen-finetune", {"config.json": QWEN_CONFIG, "model.safetensors.index.json": index})
    r = run_json(capsys, "batch", "acme/qwen-finetune", "--gpu", "h100")
    # and the RoPE table, and the allocator's block tails of Qwen2.5-7B's shapes: 2 MiB a layer x 28 + 1 MiB
    # for the embeddings (tests/test_engine_rules.py derives them)
    assert r["budget"]["weights_bytes"] == 15_231_233_024 + 131_072 * 128 * 2 + 57 * 2**20


def test_offline_and_not_cached_is_one_line(capsys, hf_cache):
    err = run_error(capsys, "size", "acme/not-there")
    assert "offline and not in the local Hugging Face cache" in err and "hf download acme/not-there" in err


def test_the_database_comes_first(capsys, hf_cache):
    cache_repo(hf_cache, "meta-llama/Meta-Llama-3-70B", {"config.json": QWEN_CONFIG})
    r = run_json(capsys, "size", "meta-llama/Meta-Llama-3-70B")
    assert r["model"] == "llama3-70b" and r["model_origin"] == "kvplan's database (models/llama3-70b.yaml)"


# --- 5. a quantized repo's name, offline and uncached ----------------------------------------------------

@pytest.mark.parametrize("name, base, fmt", [
    ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "llama3.3-70b", "fp8"),
    ("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "llama3.1-8b", "int4"),
    ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "qwen2.5-7b-instruct", "int4"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", "llama3.1-8b", "int8"),
    ("neuralmagic/Meta-Llama-3.1-70B-Instruct-quantized.w4a16", "llama3.1-70b", "int4"),
    ("unsloth/Meta-Llama-3.1-8B-bnb-4bit", "llama3.1-8b", "nf4"),
    ("nvidia/Llama-3.3-70B-Instruct-NVFP4", "llama3.3-70b", "nvfp4"),
])
def test_a_quantized_name_resolves_to_its_base_with_the_format_inferred(capsys, hf_cache, name, base, fmt):
    r = run_json(capsys, "fit", name, "--gpu", "h100", "--tp", "2")
    assert r["model"] == base
    assert r["model_origin"].startswith(f"its name '{name}', inferred") and f"weights {fmt}" in r["model_origin"]
    same = run_json(capsys, "fit", base, "--gpu", "h100", "--tp", "2", "--weights-dtype", fmt)
    assert r["budget"]["weights_bytes"] == same["budget"]["weights_bytes"]


def test_fp8_weights_inferred_from_the_name_are_one_byte_per_linear_weight(capsys, hf_cache):
    r = run_json(capsys, "fit", "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "--gpu", "h100")
    # 70,553,706,496 params; embeddings + LM head 2 x 128,256 x 8,192 = 2,101,346,304 stay 2 B each:
    # (70,553,706,496 - 2,101,346,304) x 1 B + 2,101,346,304 x 2 B = 72,655,052,800 B
    assert r["budget"]["weights_bytes"] == 72_655_052_800 + 131_072 * 128 * 2  # and the RoPE table


# --- 4. the Hub (a local stand-in) ----------------------------------------------------------------------

TENSORS = {"model.embed_tokens.weight": ("BF16", [152064, 3584]), "lm_head.weight": ("BF16", [152064, 3584]),
           "model.layers.0.mlp.down_proj.weight": ("F8_E4M3", [3584, 18944]),
           "model.layers.0.mlp.down_proj.weight_scale": ("F32", [3584, 1])}
# bytes: embeddings and LM head 2 x 152,064 x 3,584 x 2 B = 2,179,989,504; the fp8 weight
# 3,584 x 18,944 x 1 B = 67,895,296; its fp32 scales 3,584 x 4 B = 14,336: 2,247,899,136 in all
TENSOR_BYTES = 2 * 152064 * 3584 * 2 + 3584 * 18944 * 1 + 3584 * 1 * 4


@pytest.fixture
def hub(tmp_path):
    server = FakeHub({
        "acme/qwen-fp8": Repo(SHA, {"config.json": QWEN_CONFIG.encode(), "model.safetensors": safetensors_bytes(TENSORS)}),
        "acme/gated": Repo(SHA, {"config.json": QWEN_CONFIG.encode()}, gated=True),
        "acme/corrupt": Repo(SHA, {"config.json": QWEN_CONFIG.encode(), "model.safetensors": b"\xff" * 64}),
    })
    url = server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=url, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_DISABLE_TELEMETRY="1")
    yield server, env
    server.stop()


def cli(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvplan", *argv], env=env, capture_output=True, text=True, timeout=60)


def test_a_repo_id_resolves_from_the_hub_with_exact_weights(hub):
    server, env = hub
    done = cli(env, "batch", "acme/qwen-fp8", "--gpu", "h100", "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert r["model_origin"] == f"Hugging Face Hub acme/qwen-fp8@{SHA}"
    # headers, not downloads; and the RoPE table, 131,072 x 128 x 2 B, and the block tails of the config's
    # bf16 shapes (57 MiB: the tensors here are a stand-in, the config a Qwen2.5-7B's)
    assert r["budget"]["weights_bytes"] - 131_072 * 128 * 2 - 57 * 2**20 == TENSOR_BYTES == 2_247_899_136
    assert any(req.startswith("GET /acme/qwen-fp8/resolve") and "safetensors" in req for req in server.requests)
    again = cli({**env, "HF_HUB_OFFLINE": "1"}, "size", "acme/qwen-fp8", "--json")  # now in the cache
    assert json.loads(again.stdout)["model_origin"].startswith(f"Hugging Face cache acme/qwen-fp8@{SHA}")


def test_a_gated_repo_needs_a_token(hub):
    _, env = hub
    denied = cli(env, "size", "acme/gated")
    assert denied.returncode == 2 and "gated on the Hub" in denied.stderr and "HF_TOKEN" in denied.stderr
    assert "Traceback" not in denied.stderr and denied.stderr.count("\n") == 1
    allowed = cli({**env, "HF_TOKEN": TOKEN}, "size", "acme/gated", "--json")
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.parametrize("repo, message", [
    ("acme/no-such-model", "is not a model repo on the Hub"),
    ("acme/corrupt", "safetensors header on the Hub is corrupt"),
])
def test_hub_problems_are_one_line(hub, repo, message):
    _, env = hub
    done = cli(env, "size", repo)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_offline_never_asks_the_hub(hub):
    server, env = hub
    done = cli(env, "size", "acme/qwen-fp8", "--offline")
    assert done.returncode == 2 and "offline" in done.stderr
    assert server.requests == []


def test_show_says_where_a_resolved_model_came_from(capsys, hf_cache):
    assert main(["show", "examples/models/Qwen2.5-7B"]) == 0
    assert capsys.readouterr().out.startswith("# local path examples/models/Qwen2.5-7B\n")
    assert main(["show", "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"]) == 0
    first, _, body = capsys.readouterr().out.partition("\n")
    assert first.startswith("# its name 'RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic', inferred")
    assert "quantization: fp8" in body
