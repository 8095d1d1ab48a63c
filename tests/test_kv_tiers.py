"""KV offload tiers beside the GPU pool (calc/kvtiers.py), and weights kept on the host.

Numbers by hand from the engines' own rules: vLLM 0.34 vllm/v1/kv_offload/cpu/spec.py
CPUOffloadingSpec.__init__ (chunk = GPU block x worker copies, rounded up to 4,096 B; one copy for an
MLA model under TP alone), vLLM 0.19's (block x world_size, no rounding), LMCache
lmcache/v1/metadata.py get_shapes (256-token chunks of [K/V, layers, tokens, heads x head_dim]) and
SGLang mem_cache/pool_host/base.py HostKVCache.__init__ (one page more than the floor)."""

from __future__ import annotations

import pytest

from kvplan.cli import main
from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.errors import InputError
from kvplan.specs.engines.registry import engine

GIB = 2**30


def tier(catalog, model="llama3-8b", gpu="h100", **inputs):
    b = memory_budget(catalog.model(model), catalog.gpu(gpu), BudgetInputs(**inputs))
    return b, b.kv_offload


def test_vllm_native_tier_holds_the_flag_in_blocks_and_leaves_the_pool_alone(catalog):
    b, (t,) = tier(catalog, engine="vllm==0.34", kv_offload_gib=8)
    plain = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(engine="vllm==0.34"))
    assert t.bytes_per_token == 131_072  # 2 (K,V) x 32 layers x 8 heads x 128 x 2 B
    assert t.chunk_bytes == 2_097_152  # 16 tokens x 131,072 B, a multiple of 4,096 already
    assert t.chunks == 4_096  # 8 x 2^30 B / 2,097,152 B
    assert t.tokens == 65_536  # 4,096 chunks x 16 tokens
    # cross-check: 8 GiB / 131,072 B a token = 65,536
    assert t.tokens == 8 * GIB // 131_072
    assert (b.kv_pool_bytes, b.token_capacity) == (plain.kv_pool_bytes, plain.token_capacity)  # GPU pool unchanged
    assert t.gpu_pool_tokens == plain.token_capacity


def test_vllm_native_size_is_every_ranks_together(catalog):
    _, (t,) = tier(catalog, engine="vllm==0.34", kv_offload_gib=8, tp=2)
    assert t.chunk_bytes == 2 * 1_048_576  # a GPU's block of 4 heads (1,048,576 B) x 2 worker copies
    assert t.tokens == 65_536  # the same tokens as one GPU: 8 GiB / 2,097,152 B x 16


def test_mla_under_tp_keeps_one_copy_from_0_34_and_pages_are_aligned(catalog):
    # DeepSeek-V3: 61 layers x (512 + 64) x 2 B = 70,272 B a token; 16-token blocks of 1,124,352 B
    _, (new,) = tier(catalog, "deepseek-v3", "h200", engine="vllm==0.34", tp=8, kv_offload_gib=16)
    _, (old,) = tier(catalog, "deepseek-v3", "h200", engine="vllm==0.19", tp=8, kv_offload_gib=16)
    assert new.chunk_bytes == 1_126_400  # 1,124,352 B = 274.5 x 4,096: rounded up to 275 x 4,096, one copy
    assert new.chunks == 15_252 and new.tokens == 244_032  # 17,179,869,184 // 1,126,400; x 16
    assert old.chunk_bytes == 8_994_816  # 0.19: 1,124,352 B x 8 workers, no rounding
    assert old.chunks == 1_909 and old.tokens == 30_544  # 17,179,869,184 // 8,994,816; x 16


def test_lmcache_chunks_of_256_tokens_a_rank(catalog):
    _, (cpu, disk) = tier(catalog, engine="vllm==0.19", kv_offload_gib=64, kv_offload_backend="lmcache", tp=2,
                          kv_offload_disk_gib=100)
    assert cpu.bytes_per_token == 65_536  # 2 x 32 layers x 4 heads a rank x 128 x 2 B
    assert cpu.chunk_bytes == 16_777_216  # 256 tokens x 65,536 B
    assert cpu.size_bytes == 32 * GIB and cpu.per_rank  # vLLM 0.19: 64 GiB / (TP 2 x PP 1) a rank
    assert cpu.chunks == 2_048 and cpu.tokens == 524_288  # 32 x 2^30 / 16,777,216; x 256
    assert disk.medium == "local disk" and disk.chunks == 6_400  # 100 x 2^30 / 16,777,216
    assert disk.tokens == 1_638_400  # 6,400 x 256


def test_sglang_hicache_ratio_and_size(catalog):
    b, (by_ratio,) = tier(catalog, engine="sglang", kv_offload_backend="hicache")
    assert by_ratio.tokens == b.token_capacity * 2 + 1  # floor(tokens x 2.0) // page 1 + 1 padding page
    _, (by_size,) = tier(catalog, engine="sglang", hicache_size_gb=10)
    assert by_size.tokens == 76_294  # floor(10 x 10^9 / 131,072 = 76,293.9) + 1 page of 1 token
    assert by_size.size_bytes == 76_294 * 131_072


def test_a_tier_of_another_engine_or_an_older_release_is_refused(catalog):
    with pytest.raises(InputError, match="SGLang's, not vLLM's"):
        tier(catalog, engine="vllm==0.34", kv_offload_backend="hicache")
    with pytest.raises(InputError, match="no KV offload tier"):
        tier(catalog, engine="vllm==0.8", kv_offload_gib=8)
    with pytest.raises(InputError, match="needs its size"):
        tier(catalog, engine="vllm==0.34", kv_offload_backend="native")


def test_cpu_offload_is_weights_on_the_host_not_kv(catalog):
    with_host, tiers = tier(catalog, engine="vllm==0.34", cpu_offload_gib=2)
    plain = memory_budget(catalog.model("llama3-8b"), catalog.gpu("h100"), BudgetInputs(engine="vllm==0.34"))
    assert tiers == () and with_host.cpu_offload_bytes == 2 * GIB
    assert plain.weights_bytes - with_host.weights_bytes == 2 * GIB  # 2 x 2^30 B stay on the host
    assert with_host.kv_pool_bytes - plain.kv_pool_bytes == 2 * GIB  # and the pool takes them


def test_the_vllm_serve_line_reads_and_writes_the_tier():
    fields, ignored = engine("vllm").read_command(
        "vllm serve m --kv-offloading-size 8 --kv-offloading-backend lmcache --cpu-offload-gb 2")
    assert fields["kv_offload_gib"] == 8 and fields["kv_offload_backend"] == "lmcache"
    assert fields["cpu_offload_gib"] == 2 and ignored == []


def test_fit_prints_the_tier_and_deploys_with_its_flags(capsys):
    code = main(["fit", "llama3-8b", "--gpu", "h100", "--ctx", "8192", "--engine", "vllm==0.34",
                 "--kv-offload-gib", "8", "--cpu-offload-gib", "2"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "65,536 tokens on the host in 4,096 chunks of 16 tokens (131,072 B a token), GPU pool unchanged" in out
    assert "--kv-offloading-size 8" in out and "--kv-offloading-backend" not in out  # native: the default
    assert "Weights on the host (--cpu-offload-gib 2)" in out


def test_a_check_file_takes_the_tier_from_the_serve_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios:\n  - name: t\n    gpu: h100\n    vllm: vllm serve meta-llama/Meta-Llama-3-8B "
                    "--max-model-len 8192 --kv-offloading-size 8\n")
    from kvplan.specs.checkfile import load_check_file

    (s,) = load_check_file(path)
    assert s.kv_offload_gib == 8


def test_sglang_hicache_host_pool_matches_a_real_log(catalog):
    """SGLang 0.5.15.post1, Qwen3-1.7B on MI355X, TP 4 with DP attention (4 ranks, each with all 8 KV
    heads), --hicache-ratio left at its default 2.0: the decode leg logged
    "max_total_num_tokens=1547424" and "Allocating 354.94 GB host memory for hierarchical KV cache."
    per rank (tests/fixtures/engine_logs/sglang-0.5.15.post1-qwen3-1.7b-mi355x-tp4-dp4-hicache-1.log;
    source https://github.com/AMD-AGI/Infera/blob/bc5fd1eb035565a3dda895a9e429c3af4822981d/
    kvaware.kvd.packup.better/02_mvp_hicache_blowup/results/r1_hicache_blowup.txt). Round r2 of the same
    run, --hicache-size 8, logged "Allocating 8.00 GB" (same file). The line divides bytes by 1e9."""
    from engine_fixtures import LOGS
    from kvplan.calc.kvtiers import TierInputs, kv_offload_tiers
    from kvplan.specs.engines.logs import read_log

    name = "sglang-0.5.15.post1-qwen3-1.7b-mi355x-tp4-dp4-hicache-1.log"
    pool = read_log((LOGS / name).read_text(), name).kv_tokens
    assert pool == 1_547_424
    model = catalog.model("qwen3-1.7b")
    per_token = memory_budget(model, catalog.gpu("h100"), BudgetInputs(engine="sglang")).kv_bytes_per_token
    assert per_token == 114_688  # 2 (K,V) x 28 layers x 8 KV heads x 128 x 2 B (bf16): attention TP 1 under DP
    t = TierInputs(block_bytes=per_token, block_size=1, bytes_per_token=per_token, gpu_pool_tokens=pool, tp=1,
                   pp=1, kv_dtype="bf16")  # page_size 1: SGLang's default, no --page-size in the command
    (by_ratio,) = kv_offload_tiers(model, None, engine("sglang"), BudgetInputs(engine="sglang",
                                   kv_offload_backend="hicache"), t, False)
    assert by_ratio.tokens == 3_094_849  # floor(1,547,424 x 2.0) // 1 + 1 padding page
    assert by_ratio.size_bytes == 354_942_042_112  # 3,094,849 x 114,688 B
    assert round(by_ratio.size_bytes / 1e9, 2) == 354.94  # the logged "354.94 GB"
    (by_size,) = kv_offload_tiers(model, None, engine("sglang"), BudgetInputs(engine="sglang", hicache_size_gb=8),
                                  t, False)
    assert by_size.tokens == 69_755  # floor(8 x 10^9 / 114,688 = 69,754.5) + 1 page of 1 token
    assert round(by_size.size_bytes / 1e9, 2) == 8.00  # 69,755 x 114,688 = 8,000,061,440 B: the logged "8.00 GB"
    paged = TierInputs(**{**t.__dict__, "block_size": 64})  # had the run used 64-token pages:
    (by_pages,) = kv_offload_tiers(model, None, engine("sglang"), BudgetInputs(engine="sglang",
                                   kv_offload_backend="hicache"), paged, False)
    assert by_pages.tokens == 3_094_912  # (3,094,848 // 64 + 1) x 64: one 64-token padding page
    assert round(by_pages.size_bytes / 1e9, 2) == 354.95  # 3,094,912 x 114,688 = 354,949,267,456 B: not the log's


def test_vllm_native_chunks_match_a_logged_host_tensor(catalog):
    """vLLM issue #53042 (https://github.com/vllm-project/vllm/issues/53042, 0.26.0, --kv-offloading-size
    200, world_size 4 per node, a hybrid model with 24 KV cache tensors): each rank allocated 24 host
    tensors of torch.zeros((2053, 1089536)), '24 x 2.0832 GiB = 50.0 GiB == cpu_bytes_to_use /
    world_size'. The 0.19 rule kvplan applies to 0.26: a chunk is the GPU block of every tensor
    (24 x 1,089,536 = 26,148,864 B) x 4 workers = 104,595,456 B; 200 x 2^30 // 104,595,456 = 2,053."""
    from kvplan.calc.kvtiers import TierInputs, _native

    t = TierInputs(block_bytes=24 * 1_089_536, block_size=16, bytes_per_token=24 * 1_089_536 // 16,
                   gpu_pool_tokens=0, tp=4, pp=1, kv_dtype="fp8")
    native = _native(catalog.model("llama3-8b"), engine("vllm==0.26"), 200, t)
    assert native.chunk_bytes == 24 * 1_089_536 * 4 == 104_595_456
    assert native.chunks == 200 * GIB // 104_595_456 == 2_053  # the logged tensors' first dimension
    assert abs(native.chunks * 24 * 1_089_536 / GIB - 50.0) < 0.01  # a rank's share: 2,053 x 26,148,864 B


def test_lmcache_size_is_a_ranks(catalog):
    """LMCache issue #2901 (https://github.com/LMCache/LMCache/issues/2901): LMCACHE_MAX_LOCAL_CPU_SIZE 50
    at TP 2 took ~50 GB RSS in each of the two workers ('each TP rank allocates LMCACHE_MAX_LOCAL_CPU_SIZE
    independently', the maintainer), and 50 GB held 409,600 tokens of a 131,072 B-a-token model at TP 1.
    kvplan: vLLM's --kv-offloading-size 100 at TP 2 is 50 GiB a rank, as that setting."""
    _, (one,) = tier(catalog, engine="vllm==0.19", kv_offload_gib=50, kv_offload_backend="lmcache")
    assert one.per_rank and one.size_bytes == 50 * GIB
    assert one.tokens == 409_600  # 50 x 2^30 / (256 x 131,072 B) = 1,600 chunks x 256
    _, (two,) = tier(catalog, engine="vllm==0.19", kv_offload_gib=100, kv_offload_backend="lmcache", tp=2)
    assert two.size_bytes == 50 * GIB  # a rank's, as each worker's ~50 GB RSS
    assert two.tokens == 819_200  # each rank holds half of every token's heads (65,536 B): twice the tokens
