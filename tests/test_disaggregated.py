"""`kvplan plan --disaggregated` (calc/disagg.py): prefill and decode workers, each on its own budget."""

from __future__ import annotations

import pytest

from kvplan.calc.budget import BudgetInputs
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
