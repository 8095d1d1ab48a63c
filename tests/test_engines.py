"""The engine registry (kvplan.specs.engines): one entry per engine, its command line written and read
by one table, and nothing outside the registry naming an engine or a calculator spelling a flag."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.fit import fit
from kvplan.cli import main
from kvplan.errors import InputError
from kvplan.render.flags import FLAGS
from kvplan.specs.engines import DEFAULT_ENGINE
from kvplan.specs.engines.registry import ENGINES, Deploy, engine

PACKAGE = Path(__file__).resolve().parents[1] / "kvplan"


def test_every_entry_answers_the_same_questions():
    for entry in ENGINES.values():
        assert entry.name == entry.name.lower() and entry.display_name and entry.util_name and entry.util_meaning
        assert 0 < entry.util <= 1 and entry.block_size >= 1 and entry.formula and entry.source
        assert entry.start_rule in ("max_memory_usage", "paged_request", "pool_tokens")
    assert engine("vLLM") is ENGINES[DEFAULT_ENGINE] and DEFAULT_ENGINE == "vllm"


def test_an_unknown_engine_is_one_line_with_the_choices():
    with pytest.raises(InputError, match="unknown engine 'tgi'; choose one of vllm, sglang, trtllm, raw"):
        engine("tgi")


DEPLOY = Deploy(model="meta-llama/Llama-3.1-8B-Instruct", tp=2, pp=2, max_len=32768, util=0.85, kv_dtype="fp8",
                max_num_seqs=64)


@pytest.mark.parametrize("name, command", [
    ("vllm", "vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2 --pipeline-parallel-size 2 "
             "--max-model-len 32768 --gpu-memory-utilization 0.85 --kv-cache-dtype fp8 --max-num-seqs 64"),
    ("sglang", "python -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B-Instruct --tp-size 2 --pp-size 2 "
               "--context-length 32768 --mem-fraction-static 0.85 --kv-cache-dtype fp8_e4m3 "
               "--max-running-requests 64"),
    # TensorRT-LLM sets the KV dtype in its --extra_llm_api_options YAML, not by a flag
    ("trtllm", "trtllm-serve meta-llama/Llama-3.1-8B-Instruct --tp_size 2 --pp_size 2 --max_seq_len 32768 "
               "--kv_cache_free_gpu_memory_fraction 0.85 --max_batch_size 64"),
    ("raw", ""),  # the textbook budget starts nothing
])
def test_each_engine_writes_its_own_command(name, command):
    assert engine(name).write_command(DEPLOY) == command


@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.integers(1, 8), max_len=st.integers(1, 2**20),
       util=st.sampled_from([0.5, 0.8, 0.85, 0.9, 0.95, 1.0]), kv_dtype=st.sampled_from(["auto", "bf16", "fp8"]),
       seqs=st.integers(1, 4096), name=st.sampled_from(["vllm", "sglang", "trtllm"]))
def test_what_an_engine_writes_it_reads_back(tp, pp, max_len, util, kv_dtype, seqs, name):
    """The check gate reads the deploy line fit and plan print: the same settings come back."""
    entry = engine(name)
    deploy = Deploy(model="org/model", tp=tp, pp=pp, max_len=max_len, util=util, kv_dtype=kv_dtype,
                    max_num_seqs=seqs)
    fields, ignored = entry.read_command(entry.write_command(deploy))
    expected = {"model": "org/model", "tp": tp, "max_model_len": max_len, "util": util, "max_num_seqs": seqs}
    expected |= {"pp": pp} if pp > 1 else {}
    expected |= {"kv_dtype": kv_dtype} if kv_dtype in entry.command.kv_dtypes else {}
    assert (fields, ignored) == (expected, [])


def test_raw_has_no_command_to_read():
    with pytest.raises(InputError, match="the engine has no command line to read"):
        engine("raw").read_command("raw serve x")


@pytest.mark.parametrize("name, start", [("vllm", "vllm serve meta-llama/Meta-Llama-3-8B --tensor-parallel-size 1"),
                                         ("sglang", "python -m sglang.launch_server --model-path meta-llama/"),
                                         ("trtllm", "trtllm-serve meta-llama/Meta-Llama-3-8B --tp_size 1")])
def test_fit_deploys_with_the_engine_asked_for(capsys, name, start):
    assert main(["fit", "llama3-8b", "--gpu", "h100", "--engine", name]) == 0
    assert start in capsys.readouterr().out.replace("\n  ", " ")


def test_the_textbook_budget_prints_no_command(capsys):
    assert main(["fit", "llama3-8b", "--gpu", "h100", "--engine", "raw"]) == 0
    out = capsys.readouterr().out
    assert "fits:" in out and "Deploy with" not in out and "serve" not in out


def test_the_command_names_the_engines_flag_for_a_shorter_max_len(catalog):
    """Qwen2.5-32B at TP 2 on L40S does not start at 128k; the fix is in the engine's own spelling."""
    for name, flag in (("vllm", "--max-model-len"), ("trtllm", "--max_seq_len")):
        r = fit(catalog.model("qwen2.5-32b"), catalog.gpu("l40s"), 16_384, BudgetInputs(engine=name, tp=2))
        assert not r.start.starts and r.start.engine == engine(name).display_name
        assert r.start.engine_max_len_flag == flag and r.start.largest_max_model_len > 16_384
    # SGLang starts on the same pool and cuts each request to it (tp_worker.py: max_req_len = min(context_len - 1,
    # max_total_num_tokens - 1)); its 1-token pages hold pool // (64 layers x 2 x 8/2 KV heads x 128 x 2 B) tokens
    r = fit(catalog.model("qwen2.5-32b"), catalog.gpu("l40s"), 16_384, BudgetInputs(engine="sglang", tp=2))
    assert r.start.starts and r.start.engine_max_len_flag == "--context-length"
    assert r.start.pool_tokens == r.budget.kv_pool_bytes // (64 * 2 * 4 * 128 * 2) == r.budget.token_capacity
    assert r.start.cut_at == r.start.pool_tokens - 1 < 131_072


# --- what lives where ------------------------------------------------------------------------------

def _strings(path: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_nothing_outside_the_registry_names_an_engine():
    """Only the check file's `vllm:` key, which is what a user types, may name one."""
    allowed = {("specs/checkfile.py", "vllm")}
    found = {(str(path.relative_to(PACKAGE)), text) for path in PACKAGE.rglob("*.py")
             if "engines" not in path.parts for text in _strings(path) if text.lower() in ENGINES}
    assert found <= allowed, found - allowed


def test_calculators_speak_in_fields_not_flags():
    flags = {(path.name, text) for path in (PACKAGE / "calc").rglob("*.py") for text in _strings(path)
             if re.search(r"(^|\s)--[a-z]", text)}
    assert flags == set()


def test_every_field_a_calculator_refuses_has_a_flag():
    """InputError("...{field}...", "field") and bounds.reader(value, "field") in calc: the CLI must be
    able to spell each field as its flag."""
    fields = set()
    for path in (PACKAGE / "calc").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            args = node.args[1:] if name == "InputError" else node.args[1:2] if (
                isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") == "bounds") else []
            fields |= {a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    assert fields and fields <= set(FLAGS), fields - set(FLAGS)


def test_a_field_is_spelled_by_its_reader():
    err = InputError("{util} 1.5 is outside (0, 1]; give {util} 0.9", "util")
    assert str(err) == "util 1.5 is outside (0, 1]; give util 0.9"  # a library caller's keyword
    assert err.spelled(FLAGS) == "--util 1.5 is outside (0, 1]; give --util 0.9"  # the command line's flag


def test_the_cli_shows_the_flag_of_a_refused_field(capsys):
    assert main(["plan", "llama3-8b", "--gpu", "h100", "--ctx", "8k", "--max-len", "4k"]) == 2
    assert capsys.readouterr().err == ("error: --max-len 4,096 is shorter than the 8,192-token requests; use "
                                       "--max-len >= --ctx\n")
    # fit too: it planned 4,096-token requests under a deploy line of --max-model-len 2048, which vLLM refuses
    assert main(["fit", "llama3.1-8b", "--gpu", "h100", "--max-len", "2048"]) == 2
    assert capsys.readouterr().err == ("error: --max-len 2,048 is shorter than the 4,096-token requests; use "
                                       "--max-len >= --ctx\n")
    assert main(["batch", "llama3.1-8b", "--gpu", "h100", "--max-len", "1024"]) == 2  # 1,024 in + 1,024 out
    assert capsys.readouterr().err == ("error: --max-len 1,024 is shorter than the 2,048-token requests (in + out); "
                                       "use --max-len >= --in + --out\n")


def test_batch_refuses_ctx_beside_in_or_out(capsys):
    """--ctx is the shorthand for --in CTX --out 0: given beside either, one of them would be dropped."""
    assert main(["batch", "llama3.1-8b", "--gpu", "h100", "--ctx", "4096", "--out", "512"]) == 2
    assert capsys.readouterr().err == ("error: --ctx 4,096 and --in/--out both set the request length; give --ctx "
                                       "alone (requests of CTX tokens) or --in and --out\n")


# --- release presets -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, key", [
    ("vllm", "vllm==0.34"), ("VLLM==0.19.1", "vllm==0.19"), ("vllm==0.18", "vllm==0.19"), ("vllm==0.6.3", "vllm==0.6"),
    ("vllm==0.7.3", "vllm==0.7"), ("vllm==0.9", "vllm==0.8"), ("vllm==0.11.2", "vllm==0.11"), ("vllm==0.13", "vllm==0.12"), ("vllm==0.20.0", "vllm==0.20"),
    ("vllm==0.20.2", "vllm==0.20.1"), ("vllm==0.22", "vllm==0.21"), ("vllm==0.29", "vllm==0.28"), ("vllm==0.34.0", "vllm==0.34"),
    ("vllm==0.40", "vllm==0.34"), ("sglang==0.4.6", "sglang==0.4.6"), ("sglang==0.4.3", "sglang==0.4"), ("sglang==0.4.4", "sglang==0.4.4"), ("sglang==0.4.5", "sglang==0.4.5"),
        ("sglang==0.3.4", "sglang==0.3"), ("sglang==0.3.5", "sglang==0.3.5"), ("sglang==0.3.6", "sglang==0.3.6"), ("sglang==0.4.7", "sglang==0.4.7"), ("sglang==0.4.8", "sglang==0.4.8"),
        ("sglang==0.4.10", "sglang==0.4.9.post3"), ("sglang==0.5.4", "sglang==0.5"),
    ("sglang==0.5.14", "sglang==0.5.5"), ("sglang", "sglang==0.5.15"), ("sglang==0.5.23", "sglang==0.5.15"),
    ("trtllm", "trtllm==1.0"),
    # as engines print releases and pip names them: the numbers pick the preset, the tail does not
    ("vllm==0.6.3.post1", "vllm==0.6"), ("vllm==0.11.0rc2", "vllm==0.11"), ("vllm==0.10.2.dev123+g4a1b2c3", "vllm==0.8"),
    ("vllm==0.10.1+cu128", "vllm==0.8"), ("vllm==v0.19.1", "vllm==0.19"), ("vllm==0.20.1rc1", "vllm==0.20.1"),
    ("vllm==0.19.x", "vllm==0.19"), ("sglang==0.4.6.post5", "sglang==0.4.6"), ("sglang==0.5.2rc2", "sglang==0.5"),
        # a post release sorts after its release and before the next: SGLang moved a rule at 0.4.9.post3
        ("sglang==0.4.9", "sglang==0.4.9"), ("sglang==0.4.9.post2", "sglang==0.4.9"), ("sglang==0.4.9.post3", "sglang==0.4.9.post3"),
        ("sglang==0.4.9.post6", "sglang==0.4.9.post3"), ("sglang==0.4.10.post2", "sglang==0.4.9.post3"), ("sglang==0.5.0rc0", "sglang==0.5"),
    ("trtllm==1.1.0rc5", "trtllm==1.0"), ("trtllm==0.18.2", "trtllm==0.19"),
])
def test_a_release_picks_the_preset_that_holds_it(spec, key):
    assert engine(spec).key == key


@pytest.mark.parametrize("spec, message", [
    ("vllm==0.1", "no preset of vllm holds release 0.1; choose one of vllm==0.2, vllm==0.2.5, vllm==0.4, vllm==0.6"),
    ("raw==1", "no preset of raw holds release 1"),
    ("tgi==2", "unknown engine 'tgi==2'; choose one of vllm, sglang, trtllm, raw"),
    ("vllm==latest", "'latest' in --engine vllm==latest is not a release; give one as the engine prints it"),
    ("sglang==", "'' in --engine sglang== is not a release"),
])
def test_a_release_no_preset_holds_is_one_line(spec, message):
    with pytest.raises(InputError, match=re.escape(message)):
        engine(spec)


def test_every_preset_answers_the_same_questions():
    from kvplan.specs.engines.registry import PRESETS

    for name, presets in PRESETS.items():
        releases = [p for p in presets if p.release]
        assert all(p.name == name and p.changes and (p.encodes or not p.release) for p in presets)
        # oldest first, and no release held by two presets of an engine
        assert [p.first for p in releases] == sorted(p.first for p in releases)
        for older, newer in zip(releases, releases[1:]):
            assert older.last is not None and older.last < newer.first


def test_releases_change_the_budget_as_their_defaults_do(catalog):
    """Llama-3-8B on an H100 (CUDA total 85,017,493,504 B; weights 16,060,522,496 B and the RoPE
    table, 8,192 positions x 128 x 2 B = 2,097,152 B: 16,062,619,648 B; 8,192 batched
    tokens and 1,024 sequences; vocabulary 128,256; hidden 4,096), release by release:
    0.19: int(total x 0.9) = 76,515,744,153; the sampler (Triton top-k/top-p, 14 B a logit) peaks at
          1,024 x 128,256 x 14 = 1,838,678,016 B + the batch's hidden states 8,192 x 4,096 x 2 =
          67,108,864 B = 1,905,786,880 B; non-torch 268,435,456 B -> pool 58,278,902,169 B.
    0.20: int(total x 0.92) = 78,216,094,023; the CUDA graphs of 51 piecewise and 51 full sizes, 102 x
          5 MiB = 534,773,760 B, join the overhead: 803,209,216 B -> pool 59,444,478,279 B.
    0.21 on: FlashInfer's sampler, 10 B a logit: 1,313,341,440 + 67,108,864 = 1,380,450,304 B ->
          pool 59,969,814,855 B."""
    model, h100 = catalog.model("llama3-8b"), catalog.gpu("h100")
    old = memory_budget(model, h100, BudgetInputs(engine="vllm==0.19"))
    graphs = memory_budget(model, h100, BudgetInputs(engine="vllm==0.20"))
    new = memory_budget(model, h100, BudgetInputs(engine="vllm==0.22"))
    assert old.activation_bytes == 1_024 * 128_256 * 14 + 8_192 * 4_096 * 2 == 1_905_786_880
    assert old.kv_pool_bytes == 76_515_744_153 - (16_062_619_648 + 1_905_786_880 + 268_435_456) == 58_278_902_169
    assert graphs.overhead_bytes == 268_435_456 + 102 * 5 * 2**20 == 803_209_216
    assert graphs.kv_pool_bytes == 78_216_094_023 - (16_062_619_648 + 1_905_786_880 + 803_209_216) == 59_444_478_279
    assert new.activation_bytes == 1_024 * 128_256 * 10 + 67_108_864 == 1_380_450_304
    assert new.kv_pool_bytes == 78_216_094_023 - (16_062_619_648 + 1_380_450_304 + 803_209_216) == 59_969_814_855
    assert (old.engine, new.engine, new.engine_release) == ("vllm==0.19", "vllm==0.21", "0.21")
    default = memory_budget(model, h100, BudgetInputs())
    assert default.engine == "vllm" and default.kv_pool_bytes == new.kv_pool_bytes  # the name alone: the newest
    v0 = memory_budget(model, h100, BudgetInputs(engine="vllm==0.6"))
    assert v0.max_num_seqs == 256  # V0's default on every GPU (V1: 1,024 on an H100)


def test_kvplan_engines_lists_every_preset(capsys):
    assert main(["engines", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    keys = [r["key"] for r in rows]
    assert keys[:18] == ["vllm==0.2", "vllm==0.2.5", "vllm==0.4", "vllm==0.6", "vllm==0.7", "vllm==0.8", "vllm==0.11", "vllm==0.12", "vllm==0.15", "vllm==0.19", "vllm==0.20",
                         "vllm==0.20.1", "vllm==0.21", "vllm==0.26", "vllm==0.28", "vllm==0.32", "vllm==0.33", "vllm==0.34"]
    assert [r["key"] for r in rows if r["default"]] == ["vllm==0.34", "sglang==0.5.15", "trtllm==1.0", "raw"]


def test_a_check_file_takes_a_release(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - {name: new, model: llama3-8b, gpu: h100, engine: 'vllm==0.26', ctx: 4096}\n")
    assert main(["check", str(path)]) == 0


def test_batch_compares_releases_side_by_side(capsys):
    """Llama-3-8B on an H100 (test_releases_change_the_budget_as_their_defaults_do): the 0.19 pool
    58,278,902,169 B against 0.22's 59,969,814,855 B, +2.9%; one row each, in 80 columns."""
    assert main(["batch", "llama3-8b", "--gpu", "h100", "--engine", "vllm==0.19,vllm==0.22", "--json"]) == 0
    pools = [r["budget"]["kv_pool_bytes"] for r in json.loads(capsys.readouterr().out)]
    assert pools == [58_278_902_169, 59_969_814_855]
    assert main(["batch", "llama3-8b", "--gpu", "h100", "--engine", "vllm==0.19,vllm==0.22"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.lstrip().startswith("vllm==")]
    assert [row[:2] for row in rows] == [["vllm==0.19", "14.96"], ["vllm==0.22", "(0.21)"]]  # as asked, and the preset
    assert "+2.9%" in rows[1]
    assert max(len(line) for line in out.splitlines()) <= 80
    assert main(["batch", "--gpu", "h100", "--engine", "vllm,sglang"]) == 2  # comparing needs a model


def test_the_scheduler_settings_travel_in_the_command_line(capsys, tmp_path):
    """fit writes what it planned with (only where it differs from the engine's default), and check
    reads it back to the same budget: no chunked prefill, 16,384 batched tokens, the PyTorch sampler."""
    argv = ["fit", "llama3-8b", "--gpu", "h100", "--ctx", "8192", "--no-enable-chunked-prefill", "--max-num-batched-tokens", "16384",
            "--sampler", "pytorch", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    command = r["command"]
    assert command.startswith("VLLM_USE_FLASHINFER_SAMPLER=0 vllm serve ")
    assert "--max-num-batched-tokens 16384" in command and command.endswith("--no-enable-chunked-prefill")
    from kvplan.specs.engines.registry import engine as entry

    fields, ignored = entry("vllm").read_command(command)
    assert (fields["chunked_prefill"], fields["max_num_batched_tokens"], fields["sampler"]) == (False, 16_384, "pytorch")
    assert ignored == []
    path = tmp_path / "c.yaml"
    path.write_text(f"scenarios:\n  - name: back\n    gpu: h100\n    vllm: '{command}'\n"
                    "    expect: {no_preemption: true}\n")
    assert main(["check", str(path), "--json"]) == 0
    capsys.readouterr()
    plain = main(["fit", "llama3-8b", "--gpu", "h100", "--json"]) == 0 and json.loads(capsys.readouterr().out)
    assert "--max-num-batched-tokens" not in plain["command"] and "chunked" not in plain["command"]
