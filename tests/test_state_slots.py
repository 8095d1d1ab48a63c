"""A hybrid's recurrent-state pages per request, as each vLLM release counts them
(kvplan/specs/engines/vllm_states.py), and the max concurrency and 'GPU KV cache size' they set.

Qwen3.6-35B-A3B: 10 full-attention layers (2 KV heads x 256: 2 x 2 x 256 x 2 B = 2,048 B a token in bf16)
and 30 GDN layers (16 key / 32 value heads x 128, conv kernel 4, recurrent state fp32). One GDN state:
conv (4 - 1 + num_spec) x (2 x 16 x 128 + 32 x 128 = 8,192) bf16 + 32 x 128 x 128 fp32 = 524,288 x 4 B
(MambaStateShapeCalculator.gated_delta_net_state_shape, num_spec: conv_kernel_size - 1 + num_spec rows):
    no drafter:  3 x 8,192 x 2 + 2,097,152 = 2,146,304 B -> block 16 x ceil(2,146,304 / 32,768) = 16 x 66 = 1,056
    MTP x 3:     6 x 8,192 x 2 + 2,097,152 = 2,195,456 B -> block 16 x 67 = 1,072 (vLLM 0.25.1 logs 1,072)
Groups (get_kv_cache_groups): 10 full, 30 GDN -> groups of 10: 1 full + 3 GDN groups, no padding. A pool of
10 layers x page x 10,000 holds 10,000 blocks. vLLM's max concurrency (kv_cache_utils.py
get_max_concurrency_for_kv_cache_config) is num_blocks / blocks one request takes, summed over groups: the
full group's cdiv(max_model_len, block) and each GDN group's MambaSpec.max_memory_usage_bytes / page
(kv_cache_interface.py): 1 + num_speculative_blocks in mamba_cache_mode 'none', 2 + them (+ checkpoint
blocks, 0.29 on) in 'align'. From 0.20.1 the token count is int(concurrency x max_model_len).
"""

from __future__ import annotations

import json

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.cli import main
from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.kvgroups import kv_groups, tokens_for_kv_bytes
from kvplan.calc.startup import start_bytes
from kvplan.specs.engines.pages import hybrid_page
from kvplan.specs.engines.registry import engine

MAX_LEN = 131_072
NO_SPEC_PAGE = 1_056 * 2_048  # 2,162,688 B
MTP3_PAGE = 1_072 * 2_048  # 2,195,456 B: the state exactly, no padding


@pytest.fixture()
def qwen(catalog):
    return catalog.model("qwen3.6-35b-a3b")


def test_speculative_tokens_grow_the_conv_state_and_the_block(qwen):
    fmt = resolve_kv_format(qwen, "auto")
    assert hybrid_page(qwen, fmt) == (1_056, NO_SPEC_PAGE)
    assert hybrid_page(qwen, fmt, num_spec=3) == (1_072, MTP3_PAGE) == (1_072, 6 * 8_192 * 2 + 524_288 * 4)
    layout = kv_groups(qwen, fmt, block_size=1_072, num_spec=3)
    assert layout is not None and (layout.group_size, layout.groups, layout.padding_layers) == (10, 4, 0)


@pytest.mark.parametrize("release, caching, spec, gpu, pages", [
    ("vllm==0.25", None, 0, None, 1),   # no prefix caching for a hybrid by default: 'none', 1 + 0
    ("vllm==0.25", None, 3, None, 4),   # 'none': 1 + 3 speculative blocks
    ("vllm==0.25", True, 0, None, 2),   # --enable-prefix-caching: a GDN model has no 'all', so 'align': 2 + 0
    ("vllm==0.25", True, 3, None, 5),   # 'align': 2 + 3
    ("vllm==0.26", None, 0, None, 2),   # 0.26: prefix caching on for hybrids by default -> 'align'
    ("vllm==0.34", None, 3, "h100", 6),  # 0.33 on: GDN on FlashInfer's prefill (Hopper) keeps a checkpoint: 2 + 3 + 1
    ("vllm==0.34", None, 3, "a100-80gb-sxm", 5),  # Ampere runs the Triton prefill: no checkpoint, 2 + 3
    ("vllm==0.34", False, 3, "h100", 4),  # --no-enable-prefix-caching: 'none', 1 + 3
    ("vllm==0.11", True, 3, None, 1),   # 0.10.2-0.11: max_memory_usage_bytes is one page, whatever is asked
])
def test_state_pages_per_request_by_release(catalog, qwen, release, caching, spec, gpu, pages):
    preset = engine(release)
    found = preset.state_pages_per_request(qwen, catalog.gpu(gpu) if gpu else None, block_size=1_072,
                                           max_model_len=MAX_LEN, num_spec=spec, prefix_caching=caching)
    assert found == pages


def test_a_mamba_model_took_a_page_a_block_with_prefix_caching_to_0_27(catalog):
    """Falcon-H1 (Mamba-2 mixers: SupportsMambaPrefixCaching): 0.26 and 0.27 put it in 'all', a state page a
    block of max_model_len: cdiv(131,072, 800) = 164 (800 x 163 = 130,400 < 131,072), + 3 speculative blocks
    (0.25 on); 0.28 'align': 2 + 3; 0.32 adds the Mamba-2 mixer's checkpoint block: 2 + 3 + 1."""
    model = catalog.model("falcon-h1-0.5b")
    counts = [engine(r).state_pages_per_request(model, None, block_size=800, max_model_len=MAX_LEN, num_spec=3)
              for r in ("vllm==0.26", "vllm==0.28", "vllm==0.32")]
    assert counts == [164 + 3, 5, 6]


@pytest.mark.parametrize("spec, pages, block, page, needed, tokens", [
    # no drafter, 'none': cdiv(131,072, 1,056) = 125 full pages (1,056 x 124 = 130,944) + 3 groups x 1 = 128;
    # 10,000 / 128 = 78.125 requests -> 78.125 x 131,072 = 10,240,000 tokens
    (0, 1, 1_056, NO_SPEC_PAGE, 128, 10_240_000),
    # no drafter, 'align': 125 + 3 x 2 = 131 -> int(10,000 / 131 x 131,072) = 10,005,496
    (0, 2, 1_056, NO_SPEC_PAGE, 131, 10_005_496),
    # MTP x 3, 'none': cdiv(131,072, 1,072) = 123 (1,072 x 122 = 130,784) + 3 x (1 + 3) = 135 -> 9,709,037
    (3, 4, 1_072, MTP3_PAGE, 135, 9_709_037),
    # MTP x 3, 'align': 123 + 3 x (2 + 3) = 138 -> int(10,000 / 138 x 131,072) = 9,497,971
    (3, 5, 1_072, MTP3_PAGE, 138, 9_497_971),
])
def test_state_pages_set_the_concurrency_and_the_logged_tokens(qwen, spec, pages, block, page, needed, tokens):
    fmt = resolve_kv_format(qwen, "auto")
    kv = 10 * page * 10_000  # 10,000 blocks of every layer of a group
    count = tokens_for_kv_bytes(qwen, kv, fmt, block_size=block, max_model_len=MAX_LEN, per_concurrency=True,
                                num_spec=spec, state_pages=pages)
    assert count == int(10_000 / needed * MAX_LEN) == tokens
    # the 0.20.0-and-earlier count does not see a request's pages: 10,000 // 4 groups x block
    assert tokens_for_kv_bytes(qwen, kv, fmt, block_size=block, num_spec=spec) == 2_500 * block


@pytest.mark.parametrize("release, caching, spec, tokens", [
    ("vllm==0.25", None, 0, 10_240_000), ("vllm==0.25", True, 0, 10_005_496),
    ("vllm==0.25", None, 3, 9_709_037), ("vllm==0.25", True, 3, 9_497_971),
])
def test_the_budget_counts_the_same_from_its_inputs(catalog, qwen, release, caching, spec, tokens):
    """The same pools through memory_budget: util 1, nothing but KV, so the pool is the given memory;
    the block comes from the preset (1,056 or 1,072) and the pages from num_speculative_tokens and
    prefix_caching. The start-up check counts one request as the same pages: (10 x full pages + 30 x
    state pages) x page (check_enough_kv_cache_memory over max_memory_usage_bytes)."""
    page = MTP3_PAGE if spec else NO_SPEC_PAGE
    inputs = BudgetInputs(engine=release, util=1.0, gpu_mem_bytes=10 * page * 10_000, weights_bytes=0,
                          activation_bytes=0, overhead_bytes=0, max_model_len=MAX_LEN, num_speculative_tokens=spec,
                          prefix_caching=caching)
    budget = memory_budget(qwen, catalog.gpu("h100"), inputs)
    assert budget.block_size == (1_072 if spec else 1_056) and budget.token_capacity == tokens
    full_pages = 123 if spec else 125
    assert start_bytes(qwen, budget, MAX_LEN) == (10 * full_pages + 30 * budget.state_pages) * page


def test_the_checkpoint_block_and_its_64_token_alignment_on_hopper(catalog, qwen):
    """vLLM 0.34 on an H100, MTP x 3, prefix caching on by default: the GDN layers checkpoint on FlashInfer's
    prefill, so the block is a multiple of 64 (platforms/interface.py _align_hybrid_block_size):
    64 x ceil(2,195,456 / (64 x 2,048)) = 64 x 17 = 1,088, a page of 2,228,224 B; one request takes
    cdiv(131,072, 1,088) = 121 full pages (1,088 x 120 = 130,560) + 3 groups x (2 + 3 + 1) = 139:
    int(10,000 / 139 x 131,072) = 9,429,640."""
    inputs = BudgetInputs(util=1.0, gpu_mem_bytes=10 * 1_088 * 2_048 * 10_000, weights_bytes=0, activation_bytes=0,
                          overhead_bytes=0, max_model_len=MAX_LEN, num_speculative_tokens=3)
    budget = memory_budget(qwen, catalog.gpu("h100"), inputs)
    assert (budget.block_size, budget.state_pages) == (1_088, 6)
    assert budget.token_capacity == int(10_000 / 139 * MAX_LEN) == 9_429_640


def test_the_capacity_commands_take_the_speculative_tokens(capsys):
    """--num-speculative-tokens reaches the budget: the H100 case above at the default release, 6 state pages
    of a 1,088-token block; a negative count is refused by the reader."""
    assert main(["batch", "qwen3.6-35b-a3b", "--gpu", "h100", "--num-speculative-tokens", "3", "--json"]) == 0
    budget = json.loads(capsys.readouterr().out)["budget"]
    assert (budget["block_size"], budget["state_pages"], budget["num_speculative_tokens"]) == (1_088, 6, 3)
    assert main(["batch", "qwen3.6-35b-a3b", "--gpu", "h100", "--num-speculative-tokens", "-1"]) == 2
