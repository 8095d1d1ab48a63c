"""The probe on CPU torch (and on CUDA where present): exact pool bytes, the page table contract,
the torch kernel and the Triton kernel (Triton's interpreter on the CPU) against float64."""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
CUDA = torch.cuda.is_available()
if not CUDA:  # before Triton is imported: its interpreter runs the kernel on the CPU
    os.environ.setdefault("TRITON_INTERPRET", "1")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kvplan.cli import main  # noqa: E402
from kvplan.errors import InputError  # noqa: E402
from kvplan.probe.attention import ERROR_BOUNDS, dense_reference, gather_kv, paged_decode_torch, relative_error  # noqa: E402
from kvplan.probe.page_table import build_page_table, check_page_table  # noqa: E402
from kvplan.probe.runner import ProbeOptions, run_probe  # noqa: E402
from kvplan.units import MIB  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"


def triton_or_skip():
    return pytest.importorskip("triton")


# --- the page table ----------------------------------------------------------------------------

def test_page_table_by_hand():
    t = build_page_table([1, 17, 32], page_size=16, num_pages=10, seed=3)
    assert t.kv_indptr.tolist() == [0, 1, 3, 5]  # 1 + 2 + 2 pages
    assert t.kv_last_page_len.tolist() == [1, 1, 16]  # 17 = 16 x 1 + 1; 32 = 16 x 1 + 16
    assert t.kv_indices.dtype == torch.int32 and t.kv_indptr.dtype == torch.int32
    assert check_page_table(t, 10, [1, 17, 32]) == []


def test_pages_are_shuffled_not_contiguous():
    t = build_page_table([4096] * 8, page_size=16, num_pages=4096, seed=0)
    indices = t.kv_indices.tolist()
    assert indices != sorted(indices)
    assert sum(b == a + 1 for a, b in zip(indices, indices[1:])) < len(indices) // 10


def test_page_table_too_small_a_pool():
    with pytest.raises(InputError, match="need 3 pages of 16 tokens but the pool holds 2"):
        build_page_table([40], page_size=16, num_pages=2)


def test_check_page_table_catches_a_shared_page():
    t = build_page_table([16, 16], page_size=16, num_pages=4)
    t.kv_indices[1] = t.kv_indices[0]
    assert "a page is shared by two requests (or twice by one)" in check_page_table(t, 4, [16, 16])


@settings(max_examples=50, deadline=None)
@given(lens=st.lists(st.integers(1, 300), min_size=1, max_size=12), page=st.sampled_from([1, 8, 16, 64]),
       spare=st.integers(0, 50), seed=st.integers(0, 1000))
def test_page_table_invariants(lens, page, spare, seed):
    needed = sum(-(-n // page) for n in lens)
    t = build_page_table(lens, page, needed + spare, seed=seed)
    assert check_page_table(t, needed + spare, lens) == []
    assert t.seq_lens().tolist() == lens  # page_size * (pages - 1) + last_page_len


# --- attention against float64 ----------------------------------------------------------------

CASES = [  # batch, query heads, KV heads, head_dim, page, sequence lengths
    (1, 8, 8, 64, 16, [16]),           # MHA, an exact page multiple
    (3, 8, 2, 64, 16, [1, 17, 100]),   # GQA 4, one token, one over, not a multiple
    (4, 32, 8, 128, 16, [15, 16, 33, 64]),  # Llama-3 shape, one under / exact / over
    (2, 8, 1, 80, 8, [5, 64]),         # MQA, head_dim 80 (not a power of two)
]


def _case(dtype, batch, hq, hkv, dim, page, lens, seed=0):
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    pages = sum(-(-n // page) for n in lens) + 7
    cache = torch.randn((pages, 2, page, hkv, dim), generator=generator, device=DEVICE).to(dtype)
    table = build_page_table(lens, page, pages, seed=seed).to(DEVICE)
    q = torch.randn((batch, hq, dim), generator=generator, device=DEVICE).to(dtype)
    keys, values = zip(*(gather_kv(cache, table, i) for i in range(batch)))
    return q, cache, table, dense_reference(q, list(keys), list(values))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("batch, hq, hkv, dim, page, lens", CASES)
def test_torch_kernel_matches_float64(dtype, batch, hq, hkv, dim, page, lens):
    q, cache, table, ref = _case(dtype, batch, hq, hkv, dim, page, lens)
    assert relative_error(paged_decode_torch(q, cache, table), ref) <= ERROR_BOUNDS[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch, hq, hkv, dim, page, lens", CASES)
def test_triton_kernel_matches_float64(dtype, batch, hq, hkv, dim, page, lens):
    triton_or_skip()
    from kvplan.probe.attention import paged_decode_triton

    q, cache, table, ref = _case(dtype, batch, hq, hkv, dim, page, lens, seed=1)
    out = torch.full_like(q, float("nan"))  # poisoned: every element must be written
    paged_decode_triton(q, cache, table, out=out, block_n=32)
    assert bool(torch.isfinite(out).all())
    assert relative_error(out, ref) <= ERROR_BOUNDS[dtype]


@pytest.mark.parametrize("splits", [2, 3, 7])
def test_triton_split_kernel_matches_float64(splits):
    """Flash-decoding: chunks of each request merged by log-sum-exp; splits past a short request
    hold no tokens and must weigh nothing."""
    triton_or_skip()
    from kvplan.probe.attention import paged_decode_triton

    q, cache, table, ref = _case(torch.float32, 3, 8, 2, 64, 16, [1, 40, 200], seed=3)
    out = torch.full_like(q, float("nan"))
    paged_decode_triton(q, cache, table, out=out, block_n=16, num_splits=splits)
    assert bool(torch.isfinite(out).all())
    assert relative_error(out, ref) <= 1e-4


def test_triton_kernel_spans_pages_within_one_block():
    """block_n 64 over 16-token pages: each iteration gathers 4 non-contiguous pages."""
    triton_or_skip()
    from kvplan.probe.attention import paged_decode_triton

    q, cache, table, ref = _case(torch.float32, 2, 4, 2, 32, 16, [70, 130], seed=2)
    assert relative_error(paged_decode_triton(q, cache, table, block_n=64), ref) <= 1e-4


def test_reference_is_not_fooled_by_a_wrong_kernel():
    q, cache, table, ref = _case(torch.float32, 3, 8, 2, 64, 16, [1, 17, 100])
    wrong = paged_decode_torch(q, cache.roll(1, dims=0), table)  # every page id off by one
    assert relative_error(wrong, ref) > 0.1


# --- the whole probe on this machine ----------------------------------------------------------

def test_probe_allocates_exactly_what_the_calculator_predicts(catalog):
    # 64 MiB cap, util 1: 64 MiB / (16 tokens x 32 layers x 2 x 8 x 128 x 2 B = 2 MiB) = 32 pages
    opts = ProbeOptions(device="cpu", ctx=256, batch=4, util=1.0, max_gib=64 * MIB / 2**30, impl="torch")
    r = run_probe(catalog.model("llama3-8b"), opts, catalog.gpus.specs)
    assert (r.pool.predicted_blocks, r.pool.predicted_bytes) == (32, 64 * MIB)
    assert r.pool.allocated_bytes == 64 * MIB and r.pool.layers_allocated == 32 and r.pool.exact
    # a 256-token request takes 16 pages: 2 of the 4 asked for fit the 32 pages
    assert (r.page_table.batch, r.page_table.pages_used, r.page_table.problems) == (2, 32, ())
    assert r.ok and all(c.ok and c.all_written for c in r.correctness)
    assert r.nvml is False  # no NVML on the CPU: absent, not an error


def test_probe_mla_and_quantized_pages_are_counted_exactly(catalog):
    opts = ProbeOptions(device="cpu", ctx=64, batch=2, util=1.0, max_gib=0.0625, impl="torch", kv_dtype="int4")
    r = run_probe(catalog.model("deepseek-v2-lite"), opts, catalog.gpus.specs)
    # int4 latent: 576 x 0.5 B + 9 groups x 4 B = 324 B per token per layer; a page = 16 x 324 x 27 layers
    assert r.pool.page_bytes == 16 * 324 * 27 == 139_968
    assert r.pool.predicted_blocks == 64 * MIB // 139_968 and r.pool.exact
    assert r.correctness == ()  # latent pages are allocated and counted, not attended


@pytest.mark.parametrize("opts, message", [
    (ProbeOptions(device="cuda:7"), "--device cuda:7 does not exist"),
    (ProbeOptions(device="tpu"), "--device 'tpu'"),
    (ProbeOptions(device="cpu", ctx=10**6), "beyond llama3-8b's max context 8,192"),
    (ProbeOptions(device="cpu", with_weights=True), "llama3-8b does not fit on CPU"),
    (ProbeOptions(device="cpu", util=1.5), "--util 1.5 is outside (0, 1]"),
])
def test_probe_bad_input(catalog, opts, message):
    if CUDA and opts.device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        run_probe(catalog.model("llama3-8b"), opts, catalog.gpus.specs)


PROBE_KEYS = {"released", "model", "device", "device_name", "torch_version", "triton_version", "nvml", "kv_dtype", "memory",
              "pool", "page_table", "correctness", "bandwidth", "checks", "ok", "offload", "transfer"}


def test_probe_cli_json(capsys):
    assert main(["probe", "llama3-8b", "--device", "cpu", "--ctx", "128", "--batch", "2", "--max-gib", "0.05",
                 "--impl", "torch", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == PROBE_KEYS
    assert data["pool"]["exact"] and data["ok"]
    assert data["bandwidth"]["kernel_gbps"] > 0 and data["bandwidth"]["copy_gbps"] > 0


def test_probe_without_torch_says_how_to_install(capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    assert main(["probe", "llama3-8b"]) == 2
    assert capsys.readouterr().err == (
        "error: kvplan probe needs PyTorch: in a kvplan checkout, pip install '.[probe]' (without a GPU, first "
        "pip install torch --index-url https://download.pytorch.org/whl/cpu)\n")


@pytest.mark.parametrize("size, allocated", [
    (1000, 1024),                                  # rounded to 512 B
    (64 * MIB, 64 * MIB),                          # a whole number of 2 MiB granules
    (1_764_687_872, 1_764_687_872),                # 26,927 x 64 KiB: 1,114,112 B left over (> 1 MiB): split
    (2_327_707_648, 1110 * 2 * MIB),               # 35,518 x 64 KiB: 131,072 B left over: kept whole
])
def test_caching_allocator_rounding(size, allocated):
    from kvplan.probe.pool import caching_allocator_bytes

    assert caching_allocator_bytes(size) == allocated


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_probe_on_cuda(catalog):
    from kvplan.probe.pool import release_workspaces

    opts = ProbeOptions(device="cuda:0", ctx=4096, batch=8, max_gib=8)
    release_workspaces(torch.device("cuda:0"))  # earlier tests leave cuBLAS workspaces behind
    before = torch.cuda.memory_allocated()
    r = run_probe(catalog.model("llama3-8b"), opts, catalog.gpus.specs)
    assert r.pool.exact and r.pool.allocator_bytes == r.pool.allocator_predicted_bytes
    assert r.ok and r.correctness[0].impl == "triton"
    assert r.released and torch.cuda.memory_allocated() == before  # everything released


def test_a_sliding_window_model_pages_only_its_window(catalog):
    """Mistral-7B v0.1 windows every layer at 4,096 tokens: at 8,192 a request keeps 4,096 tokens in
    4,096 / 16 = 256 pages of each layer, as `kvplan size` counts it (512 MiB), and fits a 920 MiB pool."""
    opts = ProbeOptions(device="cpu", ctx=8192, batch=4, util=1.0, max_gib=0.9, impl="torch")
    r = run_probe(catalog.model("mistral-7b-v0.1"), opts, catalog.gpus.specs)
    t = r.page_table
    assert (t.ctx_tokens, t.held_tokens) == (8192, 4096)
    # pool 0.9 GiB / (32 layers x 16 tokens x 4,096 B = 2 MiB a page) = 460 pages: one request of 256
    assert r.pool.allocated_blocks == int(0.9 * 2**30) // (32 * 16 * 4096) == 460
    assert t.batch == 460 // 256 == 1 and t.pages_used == 256 and not t.problems and r.ok


def test_a_hybrid_shares_its_pool_across_kinds_as_the_calculator_counts(catalog):
    """Gemma-2-9B: 21 windowed (4,096) and 21 full layers, pages of one size (16 x 8 x 256 x 2 x 2 B =
    131,072 B a layer). Laid out as vLLM lays a hybrid out: 21 tensors shared by both kinds, each kind
    drawing its pages from one pool, so a 6,000-token request takes 375 full + 256 windowed pages."""
    from kvplan.calc.kv import paged_request_bytes, resolve_kv_format

    model = catalog.model("gemma2-9b")
    opts = ProbeOptions(device="cpu", ctx=6000, batch=4, util=0.9, max_gib=4, impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    # 4 GiB x 0.9 = 3,865,470,566 B / (42 x 131,072 B) = 702 blocks; 702 x 42 / 21 = 1,404 pages a tensor
    assert (r.pool.predicted_blocks, r.pool.layers_allocated, r.pool.allocated_blocks) == (702, 21, 1404)
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 702 * 42 * 131_072
    # 1,404 // (375 + 256) = 2 requests, as pool // paged bytes of one: 3,864,526,848 // (21 x 631 x 131,072)
    per_request = paged_request_bytes(model, 6000, resolve_kv_format(model, "auto"), 1, 16)
    assert per_request == 21 * (375 + 256) * 131_072
    assert r.page_table.batch == r.pool.allocated_bytes // per_request == 2  # one tensor a layer would fit 1
    assert r.page_table.pages_used == 2 * 631 and not r.page_table.problems and r.ok


def test_constant_states_get_a_slot_a_request_as_the_calculator_counts(catalog):
    """Jamba v0.1: 4 attention layers (8 KV heads x 128) and 28 Mamba layers (d_inner 8,192, state 16,
    conv 4). A 1,024-token request: 4 x 64 pages x 65,536 B = 16,777,216 B of KV, and 28 states of
    (8,192 x 3 + 8,192 x 16) x 2 B = 311,296 B = 8,716,288 B; 25,493,504 B in all."""
    from kvplan.calc.kv import paged_request_bytes, resolve_kv_format

    model = catalog.model("jamba-v0.1")
    per_request = paged_request_bytes(model, 1024, resolve_kv_format(model, "auto"), 1, 16)
    assert per_request == 4 * 64 * 65_536 + 28 * 311_296 == 25_493_504
    opts = ProbeOptions(device="cpu", ctx=1024, batch=4, util=1.0, max_gib=64 * MIB / 2**30, impl="torch")
    r = run_probe(model, opts, catalog.gpus.specs)
    # 64 MiB // 25,493,504 B = 2 requests: their pages and their states, nothing more
    assert r.page_table.batch == 67_108_864 // per_request == 2
    assert r.pool.allocated_bytes == r.pool.predicted_bytes == 2 * per_request and r.pool.exact
    assert r.pool.layers_allocated == 4 + 28 and r.ok


def test_the_probe_says_when_it_lowers_the_batch(capsys):
    from kvplan.cli import main

    assert main(["probe", "llama3-8b", "--device", "cpu", "--batch", "512", "--ctx", "4096"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--batch 512 lowered to" in out and "the pool holds" in out
