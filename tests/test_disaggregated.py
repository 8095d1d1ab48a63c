"""`kvplan plan --disaggregated` (calc/disagg.py): prefill and decode workers, each on its own budget."""

from __future__ import annotations

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.disagg import disaggregated
from kvplan.calc.plan import plan
from kvplan.cli import main
from kvplan.errors import InputError

MIB = 2**20


def test_prefill_holds_the_requests_in_prefill_and_decode_holds_them_all(catalog):
    m, g = catalog.model("llama3-70b"), catalog.gpu("h100")
    r = disaggregated(m, g, 256, 8192, 2048, max_len=8192)
    assert r.max_num_batched_tokens == 8192  # vLLM's default on an H100 (the budget's, TP 1)
    assert r.prefill_requests == 4  # ceil(8,192 batched tokens / 2,048-token prompt)
    (p,), (d,) = r.prefill.best, r.decode.best
    # prefill: TP 2, 2 x 80 layers x 4 heads a GPU x 128 x 2 B x 2,048 tokens = 335,544,320 B = 320 MiB a request
    assert (p.tp, p.pp, p.gpus) == (2, 1, 2) and p.bytes_per_request_per_gpu == 320 * MIB
    # decode: TP 4 x PP 3, 2 x ceil(80 / 3) = 27 layers x 2 heads x 128 x 2 B x 8,192 = 226,492,416 B = 216 MiB
    assert (d.tp, d.pp, d.gpus) == (4, 3, 12) and d.bytes_per_request_per_gpu == 216 * MIB
    # the decode role is the aggregated plan of the same load: the same search, its own budget
    assert plan(m, g, 256, 8192, max_len=8192).best == r.decode.best


def test_a_prompt_longer_than_a_step_is_one_request_in_prefill(catalog):
    r = disaggregated(catalog.model("llama3-8b"), catalog.gpu("h100"), 8, 8192, 8192, ("auto",),
                      BudgetInputs(max_num_batched_tokens=2048), max_len=8192)
    assert r.max_num_batched_tokens == 2048 and r.prefill_requests == 1  # max(1, ceil(2,048 / 8,192))


def test_a_prompt_longer_than_the_request_is_refused(catalog):
    with pytest.raises(InputError, match="longer than"):
        disaggregated(catalog.model("llama3-8b"), catalog.gpu("h100"), 8, 1024, 2048)


def test_the_cli_prints_both_roles_and_their_commands(capsys):
    code = main(["plan", "llama3-70b", "--gpu", "h100", "--concurrency", "256", "--ctx", "8192", "--prompt", "2048",
                 "--max-len", "8192", "--disaggregated"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "Prefill workers: 4 request(s) in prefill at once" in out
    assert "Decode workers: 256 concurrent requests at their full context of 8,192 tokens" in out
    assert "--tensor-parallel-size 2 --max-model-len 8192" in out  # prefill
    assert "--tensor-parallel-size 4 --pipeline-parallel-size 3 --max-model-len 8192" in out  # decode


# --- SGLang 0.5.15 on: each role reserves for its own phase (sgl-project/sglang#29615) --------------------------

def test_sglang_prefill_graph_sizes():
    """server_args _generate_prefill_cuda_graph_batch_sizes: 4..32 by 4 (8), 48..256 by 16 (14), 288..512 by 32
    (8), 576..1,024 by 64 (8), 1,280..4,096 by 256 (12), then by 512 to chunked_prefill_size."""
    from kvplan.specs.engines.sglang import prefill_graph_sizes

    assert [len(prefill_graph_sizes(n)) for n in (2048, 4096, 8192, 16384)] == [8 + 14 + 8 + 8 + 4, 50, 58, 74]


def test_sglang_default_fraction_by_role(catalog):
    """An H100 (nvidia-smi 81,559 MiB), TP 1: chunked_prefill_size 8,192, decode graphs up to 256.
    unified: 512 + 1.5 x 8,192 + 1,024 / 8 + 2 x 256 + 58 prefill graph sizes x 8 = 13,904 MiB -> 0.830;
    prefill: no decode graphs, 13,392 -> round(68,167 / 81,559, 3) = 0.836;
    decode:  1.5 x max(256 running, 2,048) + no prefill graphs: 512 + 3,072 + 128 + 512 = 4,224, raised to
             the 10 GiB floor above 60 GiB -> round(71,319 / 81,559, 3) = 0.874."""
    model, gpu = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    utils = [memory_budget(model, gpu, BudgetInputs(engine="sglang", disaggregation_mode=role)).util
             for role in (None, "prefill", "decode")]
    assert utils == [round((81_559 - 13_904) / 81_559, 3), round((81_559 - 13_392) / 81_559, 3),
                     round((81_559 - 10_240) / 81_559, 3)] == [0.830, 0.836, 0.874]
    # a decode node told to run 8,192 requests leaves the floor: 512 + 1.5 x 8,192 + 128 + 512 = 13,440 -> 0.835
    busy = memory_budget(model, gpu, BudgetInputs(engine="sglang", disaggregation_mode="decode", max_num_seqs=8192))
    assert busy.util == 0.835
    # 0.5.5 to 0.5.14 reserve the same for every node, without the prefill graphs: 13,440 -> 0.835
    assert {memory_budget(model, gpu, BudgetInputs(engine="sglang==0.5.14", disaggregation_mode=role)).util
            for role in (None, "prefill", "decode")} == {0.835}


def test_sglang_unified_fraction_matches_a_reported_one(catalog):
    """sgl-project/sglang#29092 (2026-06-23): "I found the value to be 0.828 for H100 with Qwen3 32B". At TP 2:
    512 + 1.5 x 8,192 + 1,024 x 2 / 8 + 2 x 256 + 58 x 8 = 14,032 MiB -> round(67,527 / 81,559, 3) = 0.828; without
    the prefill graphs' 464 MiB it would be 0.834."""
    b = memory_budget(catalog.model("qwen3-32b"), catalog.gpu("h100"), BudgetInputs(engine="sglang", tp=2))
    assert b.util == round((81_559 - 14_032) / 81_559, 3) == 0.828


def test_sglang_disaggregated_plan_sizes_each_role_on_its_own_fraction(catalog):
    """plan --disaggregated: the decode workers plan on 0.874, the prefill workers on 0.836 (the test above),
    and each deploy line names its role; kvplan check reads the role back from the line, and without the
    line's fraction, to the same default fraction."""
    from kvplan.calc.check import scenario_inputs
    from kvplan.specs.checkfile import inline_scenario
    from kvplan.specs.engines.registry import engine

    r = disaggregated(catalog.model("llama3.1-8b"), catalog.gpu("h100"), 200, 8192, 4096,
                      inputs=BudgetInputs(engine="sglang"))
    prefill, decode = r.prefill.best[0], r.decode.best[0]
    assert "--mem-fraction-static 0.836" in prefill.command and "--disaggregation-mode prefill" in prefill.command
    assert "--mem-fraction-static 0.874" in decode.command and "--disaggregation-mode decode" in decode.command
    fields, ignored = engine("sglang").read_command(decode.command.replace(" --mem-fraction-static 0.874", ""))
    assert ignored == [] and fields["disaggregation_mode"] == "decode"
    s = inline_scenario(name="decode", gpu="h100", engine="sglang", **{**fields, "model": "llama3.1-8b"})
    assert memory_budget(catalog.model("llama3.1-8b"), catalog.gpu("h100"), scenario_inputs(s)).util == 0.874


def test_a_role_is_refused_by_name():
    with pytest.raises(InputError, match="unknown disaggregation mode 'both'; choose prefill or decode"):
        BudgetInputs(disaggregation_mode="both")


def test_the_plan_says_whether_the_engine_sizes_the_roles_apart(catalog):
    """SGLang 0.5.15 reserves for each role (the lines differ in fraction and name the role); vLLM sizes both
    alike, and its two lines are ordinary servers the user joins with a KV connector."""
    model, gpu = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    sglang = disaggregated(model, gpu, 200, 8192, 4096, inputs=BudgetInputs(engine="sglang"))
    vllm = disaggregated(model, gpu, 200, 8192, 4096, inputs=BudgetInputs())
    older = disaggregated(model, gpu, 200, 8192, 4096, inputs=BudgetInputs(engine="sglang==0.5.5"))
    assert "reserves for each role's own phase" in sglang.role_note
    assert "alike" in vllm.role_note and "--kv-transfer-config" in vllm.role_note
    assert "alike; each line names its role" in older.role_note
    assert "--disaggregation-mode" not in vllm.decode.best[0].command  # vLLM has no such flag
