"""vLLM's V0 releases before 0.5.3, read from their wheels' worker.py, config.py and arg_utils.py:
what the block count subtracts from total x gpu_memory_utilization changed twice (torch's peak
allocation to 0.2.4; all the GPU holds, total - free, 0.2.5 to 0.3.0; what the worker took since it
started, init - free, from 0.3.1), and chunked prefill turned on by itself past 32K tokens only from
0.5.3 (arg_utils use_long_context)."""

from __future__ import annotations

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.specs.catalog import load_catalog
from kvplan.specs.engines.base import RUNTIME_OVERHEAD_BYTES
from kvplan.specs.engines.registry import engine
from kvplan.specs.engines.vllm import V0_NON_TORCH_BYTES

CATALOG = load_catalog()


@pytest.mark.parametrize("release, key", [
    ("0.2.1", "vllm==0.2"), ("0.2.4", "vllm==0.2"), ("0.2.5", "vllm==0.2.5"), ("0.2.7", "vllm==0.2.5"),
    ("0.3.0", "vllm==0.2.5"), ("0.3.1", "vllm==0.4"), ("0.4.0.post1", "vllm==0.4"), ("0.5.2", "vllm==0.4"),
    ("0.5.3", "vllm==0.6"), ("0.5.3.post1", "vllm==0.6"), ("0.6.3", "vllm==0.6"),
])
def test_each_v0_release_has_its_preset(release, key):
    assert engine(f"vllm=={release}").key == key


def budget(spec: str, **inputs):
    return memory_budget(CATALOG.model("llama3-8b"), CATALOG.gpu("h100-sxm"), BudgetInputs(engine=spec, **inputs))


def test_what_the_block_count_subtracts_by_release():
    """Llama-3-8B on an H100 at 8,192 tokens: the weights and the profile run are the same in all four
    (no chunking under 32K), so the pools differ by the overhead alone."""
    v02, v025, v04, v06 = (budget(s, max_model_len=8192) for s in ("vllm==0.2", "vllm==0.2.5", "vllm==0.4", "vllm==0.6"))
    assert v04.usable_pool_bytes == v06.usable_pool_bytes
    assert v02.overhead_bytes == 0  # max_memory_allocated: nothing outside torch
    assert v04.overhead_bytes == V0_NON_TORCH_BYTES == 375_809_638  # round(0.35 x 2^30), the growth since the worker started
    assert v025.overhead_bytes == 554_696_704 + 375_809_638  # 529 MiB of CUDA context + that growth
    assert v025.overhead_bytes == RUNTIME_OVERHEAD_BYTES + V0_NON_TORCH_BYTES
    assert v04.usable_pool_bytes - v025.usable_pool_bytes == 554_696_704
    assert v02.usable_pool_bytes - v04.usable_pool_bytes == 375_809_638
    tp2 = [budget(s, max_model_len=8192, tp=2).overhead_bytes for s in ("vllm==0.2", "vllm==0.4")]
    assert tp2[0] == 0 and tp2[1] > V0_NON_TORCH_BYTES  # NCCL's buffers are outside torch's peak: 0.2 counts none


def test_chunked_prefill_is_off_at_any_context_before_0_5_3():
    """Llama-3.1-8B at its 131,072 tokens: 0.4's profile run is one 131,072-token prompt (max(max_model_len,
    2,048)); 0.6 (from 0.5.3) chunks past 32,768 into 512-token steps."""
    model, h100 = CATALOG.model("llama3.1-8b"), CATALOG.gpu("h100-sxm")
    old = memory_budget(model, h100, BudgetInputs(engine="vllm==0.4"))
    new = memory_budget(model, h100, BudgetInputs(engine="vllm==0.6"))
    assert (old.max_num_batched_tokens, new.max_num_batched_tokens) == (131_072, 512)
    assert old.activation_bytes > new.activation_bytes
    asked = memory_budget(model, h100, BudgetInputs(engine="vllm==0.4", chunked_prefill=True))
    assert asked.max_num_batched_tokens == 512  # SchedulerConfig: 512 when chunked prefill is asked for
    short = memory_budget(model, h100, BudgetInputs(engine="vllm==0.4", max_model_len=1024))
    assert short.max_num_batched_tokens == 2048  # max(1,024, 2,048)


def test_the_deploy_line_before_vllm_serve_starts_the_openai_server_module():
    """`vllm serve` came with vllm/scripts.py in 0.5.2; the presets before it write the server module
    that every release has, the model by --model; 0.6 on write `vllm serve MODEL`."""
    from kvplan.specs.engines.deploy import Deploy
    d = Deploy(model="meta-llama/Llama-2-7b-hf", tp=1, pp=1, max_len=4096, util=0.9, kv_dtype="fp16", max_num_seqs=28)
    assert engine("vllm==0.4.2").command.write(d) == (
        "python -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-2-7b-hf --tensor-parallel-size 1 "
        "--max-model-len 4096 --gpu-memory-utilization 0.9 --max-num-seqs 28")
    assert engine("vllm==0.6.3").command.write(d).startswith("vllm serve meta-llama/Llama-2-7b-hf --tensor-parallel-size 1")


def test_the_rtx_a6000_and_a40_totals_are_their_measured_ones():
    """PyTorch prints total_memory=48676MB for an RTX A6000 (ECC off) and 45416MB for an A40 (ECC on); nvidia-smi
    49140 and 46068 MiB. A V0 0.4 Llama-3-8B on an A6000 logs 13,248 blocks (a fixture): kvplan's preset lands
    within 2% of it."""
    a6000, a40 = CATALOG.gpu("a6000"), CATALOG.gpu("a40")
    assert a6000.name == "rtx-a6000" and a6000.cuda_memory() == (48_676 * 2**20, "measured CUDA total")
    assert a40.cuda_memory() == (45_416 * 2**20, "measured CUDA total")
    assert (a6000.usable_memory_bytes, a40.usable_memory_bytes) == (49_140 * 2**20, 46_068 * 2**20)
    b = memory_budget(CATALOG.model("llama3-8b"), a6000, BudgetInputs(engine="vllm==0.4.1"))
    assert abs(b.token_capacity / (13_248 * 16) - 1) < 0.02
