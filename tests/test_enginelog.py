"""The start-up log reader (kvplan.specs.engines.logs) against the real logs of tests/fixtures/engine_logs/:
every figure SOURCES.yaml records by hand under `logged:` is what read_log reads from the raw text,
and the model, release, tp and max_model_len where the log states them. Hand-written small logs pin
the cases users paste: wrapped lines, colours, interleaved workers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from engine_fixtures import LOGS, SOURCES
from kvplan.errors import SpecError
from kvplan.specs.engines.logs import LoggedStartup, read_log

Get = Callable[[LoggedStartup], object]


def per_worker(name: str) -> Get:
    """A worker figure, one value per worker that states it (a SOURCES list), or the one value."""
    def get(s: LoggedStartup) -> object:
        values = tuple(getattr(w, name) for w in s.workers if getattr(w, name) is not None)
        return values[0] if len(set(values)) == 1 else values
    return get


def memory(name: str) -> Get:
    return lambda s: getattr(s.memory, name)


def setting(name: str) -> Get:
    return lambda s: getattr(s, name)


# SOURCES.yaml's keys (written by several hands, in each engine's own words) -> what read_log returns.
# SGLang's "GB" and vLLM V0's "GB" are GiB (kvplan/specs/engines/logs/startup.py says where each divides).
KEYS: dict[str, Get] = {
    "weights_gib": memory("weights_gib"), "weights_gb": memory("weights_gib"),
    "weights_gb_per_rank": per_worker("weights_gib"), "draft_weights_gb": memory("draft_weights_gib"),
    "kv_cache_gib": memory("kv_cache_gib"), "kv_cache_size_gib": memory("kv_cache_gib"),
    "kv_cache_bytes": memory("kv_cache_bytes"),
    "kv_tokens": setting("kv_tokens"), "kv_tokens_capacity": setting("kv_tokens"),
    "max_total_num_tokens": setting("kv_tokens"),
    "max_concurrency": setting("max_concurrency"),
    "max_model_len": setting("max_model_len"), "context_len": setting("max_model_len"),
    "gpu_memory_utilization": setting("gpu_memory_utilization"), "mem_fraction_static": setting("mem_fraction_static"),
    "kv_memory_percentage": setting("kv_memory_fraction"),
    "num_gpu_blocks": setting("num_gpu_blocks"), "kv_blocks": setting("num_gpu_blocks"),
    "num_cpu_blocks": setting("num_cpu_blocks"), "tokens_per_block": setting("block_size"),
    "cuda_graph_gib": memory("cuda_graph_gib"), "cuda_graph_actual_gib": memory("cuda_graph_gib"),
    "cuda_graph_gb": memory("cuda_graph_gib"), "cuda_graph_decode_gb": memory("cuda_graph_gib"),
    "cuda_graph_estimated_gib": memory("cuda_graph_estimated_gib"),
    "activation_gib": memory("activation_gib"),
    "non_torch_gib": memory("non_torch_gib"), "non_torch_memory_gib": memory("non_torch_gib"),
    "total_gpu_gib": memory("total_gpu_gib"), "total_gpu_memory_gib": memory("total_gpu_gib"),
    "total_gib": memory("total_gpu_gib"),
    "instance_can_use_gib": memory("requested_gib"), "requested_gib": memory("requested_gib"),
    "initial_memory_usage_gib": memory("initial_memory_usage_gib"),
    "peak_torch_memory_gib": memory("peak_torch_memory_gib"),
    "memory_usage_post_profile_gib": memory("memory_usage_post_profile_gib"),
    "kv_dtype": setting("kv_cache_dtype"),
    "kv_needed_for_max_model_len_gib": setting("kv_needed_gib"),
    "estimated_max_model_len": setting("estimated_max_model_len"),
    "gpu_memory_utilization_equivalent_without_cudagraph_profiling": setting("util_without_graph_profiling"),
    "padding_layers": setting("padding_layers"), "mamba_cache_blocks": setting("mamba_cache_blocks"),
    "avail_before_weights_gb": memory("free_at_start_gib"),
    "avail_after_weights_gb": per_worker("free_after_weights_gib"),
    "free_after_load_gib": memory("free_after_weights_gib"),
    "available_gpu_mem_gb": memory("free_after_graphs_gib"),
    "memory_pool_end_avail_gb": lambda s: s.pool_end_free_gib if len(s.pool_end_free_gib) > 1 else s.pool_end_free_gib[0],
    "k_size_gb": lambda s: s.pools[0].k_gib, "v_size_gb": lambda s: s.pools[0].v_gib,
    "kv_tokens_target_pool": lambda s: s.pools[0].tokens,
    "kv_tokens_swa_or_draft_pools": lambda s: {p.tokens for p in s.pools[1:]}.pop(),
    "chunked_prefill_size": setting("chunked_prefill_size"), "max_prefill_tokens": setting("max_prefill_tokens"),
    "max_running_requests": setting("max_num_seqs"), "max_num_seqs": setting("max_num_seqs"),
    "max_num_batched_tokens": setting("max_num_batched_tokens"),
    "engine_mib": setting("engine_mib"), "execution_context_mib": setting("execution_context_mib"),
    "runtime_buffers_gb": setting("runtime_buffers_gib"), "decoder_gb": setting("decoder_gib"),
}
# Keys naming one worker: "free_on_startup_gib_tp1" is TP1's "Free memory on device" figure.
WORKER_KEYS = {"free_on_startup_gib": "free_at_start_gib", "weights_plus_non_torch_gib": "weights_and_non_torch_gib",
               "kv_cache_in_use_gib": "kv_cache_gib"}
# The 0.10.0 TP 8 logs: SOURCES records rank 0's figures and first pool pair (its notes say so), where the
# binding worker is the one with the least KV memory (asserted apart below).
RANK0_RECORDED = {"vllm-0.10.0-qwen3-235b-a22b-fp8-h100-tp8-1.log", "vllm-0.10.0-qwen3-32b-h100-tp8-1.log"}


def getter(key: str) -> Get:
    if match := re.fullmatch(r"(?P<name>\w+)_tp(?P<rank>\d+)", key):
        return lambda s: getattr(s.worker(f"TP{match['rank']}"), WORKER_KEYS[match["name"]])
    return KEYS[key]


def expected(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


@pytest.fixture(scope="module")
def parsed() -> dict[str, LoggedStartup]:
    return {name: read_log((LOGS / name).read_text(), name) for name in SOURCES}


def test_every_fixture_is_read_as_its_engine(parsed):
    assert len(parsed) == len(SOURCES) == 99
    assert all(parsed[name].engine == entry["engine"] for name, entry in SOURCES.items())


CASES = [(name, key) for name, entry in SOURCES.items() for key in entry["logged"]]


@pytest.mark.parametrize("name, key", CASES, ids=[f"{n}:{k}" for n, k in CASES])
def test_every_logged_figure_is_read(parsed, name, key):
    startup, value = parsed[name], expected(SOURCES[name]["logged"][key])
    if name in RANK0_RECORDED and key in ("kv_cache_gib", "kv_tokens", "max_concurrency"):
        got = {"kv_cache_gib": startup.worker("rank=0").kv_cache_gib, "kv_tokens": startup.pools[0].tokens,
               "max_concurrency": startup.pools[0].max_concurrency}[key]
    else:
        got = getter(key)(startup)
    assert got == value, (name, key, got, value)


def test_the_binding_worker_is_the_one_with_the_least_kv_memory(parsed):
    """vLLM 0.10.0 at TP 8 logs each rank's KV memory (rank 0 35.74 GiB, ranks 1-6 35.65, rank 7 36.12)
    and one pool pair per rank; the engine sizes every rank's pool to the smallest. Qwen3-235B-FP8 at
    TP 8 holds 94 layers x 2 (K,V) x 1 KV head x 128 x 1 B (fp8) = 24,064 B a token, so 35.65 GiB
    +- 0.005 holds floor(x / (24,064 x 16)) x 16 = 1,590,480 to 1,590,928 tokens: the 1,590,736 logged
    beside ranks 1-6, not rank 0's 1,594,928."""
    startup = parsed["vllm-0.10.0-qwen3-235b-a22b-fp8-h100-tp8-1.log"]
    assert sorted(w.worker for w in startup.workers) == [f"rank={r}" for r in range(8)]
    assert (startup.worker("rank=0").kv_cache_gib, startup.worker("rank=7").kv_cache_gib) == (35.74, 36.12)
    assert (startup.kv_cache_gib, startup.kv_tokens, startup.max_concurrency) == (35.65, 1_590_736, 48.55)
    assert [p.tokens for p in startup.pools] == [1_594_928] + [1_590_736] * 6 + [1_611_664]
    ends = [int((35.65 + d) * 2**30) // (24_064 * 16) * 16 for d in (-0.005, 0.005)]
    assert ends == [1_590_480, 1_590_928] and ends[0] <= startup.kv_tokens <= ends[1]


def test_a_figure_the_binding_worker_does_not_log_comes_from_the_first_that_does(parsed):
    """vLLM 0.19.0 at TP 4: TP0 logs weights, KV memory and its graph capture; TP1 the CUDA graph pool
    line (2.62 actual, 2.73 estimated); TP3 the estimate. The binding TP0's figures stand, its missing
    ones come from the others."""
    startup = parsed["vllm-0.19.0-qwen2.5-72b-l40s-tp4-1.log"]
    assert startup.memory.worker == "TP0" and startup.worker("TP1").kv_cache_gib is None
    assert (startup.weights_gib, startup.kv_cache_gib, startup.cuda_graph_gib) == (33.98, 5.11, 2.62)
    assert startup.memory.cuda_graph_estimated_gib == 2.73 and startup.tp == 4


def first_word(text: str) -> str:
    return str(text).split()[0]


@pytest.mark.parametrize("name", list(SOURCES))
def test_the_release_model_and_parallelism_where_the_log_states_them(parsed, name):
    """Where the log prints the release SOURCES records (its first word), the reader reads exactly that;
    it never reads one SOURCES does not record. Likewise the model where the log quotes SOURCES' HF id,
    and tp and pp wherever the log states them."""
    entry, startup, text = SOURCES[name], parsed[name], (LOGS / name).read_text()
    release, model = first_word(entry["release"]), first_word(entry["model"])
    if release != "unknown" and release in text:
        assert startup.release == release
    assert startup.release in (None, release)
    if f"'{model}'" in text or f"serve {model}" in text:
        assert startup.model == model
    assert startup.tp in (None, entry["tp"]) and startup.pp in (None, entry["pp"])
    if re.search(r"tensor_parallel_size[=':\s]+\d+[,)}]|tp_size=\d+,|TP Size:\s+\d+$", text, re.M):
        assert startup.tp == entry["tp"]


def test_the_settings_the_logs_print(parsed):
    """A few settings read across the releases, each as its fixture prints it."""
    # 0.20.1: non-default args and config dump: tp 2, fp8_e5m2 KV, MTP with 3 speculative tokens
    s = parsed["vllm-0.20.1-qwen3.6-27b-int4-rtx3090-tp2-1.log"]
    assert (s.tp, s.kv_cache_dtype, s.quantization, s.speculative_method, s.num_speculative_tokens) == (
        2, "fp8_e5m2", "auto_round", "mtp", 3)
    # 0.22.1: "--gpu-memory-utilization=0.9200 is equivalent to ...=0.9182 without", prefix caching, batch 64
    s = parsed["vllm-0.22.1-qwen3-30b-a3b-fp8-h100-1.log"]
    assert (s.gpu_memory_utilization, s.util_without_graph_profiling, s.util_to_keep_kv_with_graph_profiling) == (
        0.92, 0.9182, 0.9218)
    assert (s.enable_prefix_caching, s.max_num_seqs, s.max_num_batched_tokens, s.gpu_name) == (
        True, 64, 8192, "NVIDIA_H100_80GB_HBM3")
    # the sampler: 0.10.1.1 on one A100 uses FlashInfer; on two A100 40GB nodes via Ray it is not installed
    assert parsed["vllm-0.10.1.1-qwen2-7b-a100-80gb-1.log"].flashinfer_sampler is True
    assert parsed["vllm-0.10.1.1-qwen2-7b-a100-40gb-tp2-1.log"].flashinfer_sampler is False
    assert parsed["vllm-0.19.1-qwen3-8b-a100-40gb-1.log"].flashinfer_sampler is None  # neither line
    # the pasted command line: "vllm serve unsloth/Qwen3.6-27B-NVFP4 ... --gpu-memory-utilization 0.7"
    s = parsed["vllm-0.25.1-qwen3.6-27b-nvfp4-rtx5090-1.log"]
    assert (s.model, s.gpu_memory_utilization, s.max_num_seqs, s.max_num_batched_tokens) == (
        "unsloth/Qwen3.6-27B-NVFP4", 0.7, 1, 32768)
    # SGLang: ServerArgs, then the figures in force; DFlash draft weights from the second load
    s = parsed["sglang-0.5.16-laguna-s-2.1-int4-gb10-1.log"]
    assert (s.mem_fraction_static, s.speculative_method, s.num_speculative_tokens, s.block_size) == (
        0.85, "DFLASH", 16, 1)
    assert (s.kv_tokens, [p.tokens for p in s.pools], s.memory.draft_weights_gib) == (
        185_897, [148_717, 185_897, 185_897], 1.58)
    # TensorRT-LLM: 4,607 blocks x 64 tokens = 294,848 tokens, the count its pool line states
    s = parsed["trtllm-0.12.0.dev2024073000-gpt-j-6b-fp8-h100-1.log"]
    assert (s.num_gpu_blocks * s.block_size, s.kv_tokens) == (294_848, 294_848)
    assert (s.kv_cache_dtype, s.max_model_len, s.max_num_seqs, s.kv_memory_fraction) == ("fp8", 4098, 4096, 0.99)


# A hand-written vLLM 0.12-style log of two workers (line forms as in the fixtures). Qwen3-8B at TP 2:
# 36 layers x 2 (K,V) x 4 KV heads x 128 x 2 B = 73,728 B a token; the binding TP1's 60.12 GiB holds
# floor(60.12 x 2**30 / (73,728 x 16)) x 16 = 875,552 tokens, 875,552 / 16,384 = 53.44 requests.
TWO_WORKERS = """\
(APIServer pid=1) INFO 01-07 02:30:10 [api_server.py:1772] vLLM API server version 0.12.0
(APIServer pid=1) INFO 01-07 02:30:10 [utils.py:253] non-default args: {'model_tag': 'Qwen/Qwen3-8B', \
'model': 'Qwen/Qwen3-8B', 'max_model_len': 16384, 'tensor_parallel_size': 2, 'gpu_memory_utilization': 0.85}
(EngineCore_DP0 pid=20) INFO 01-07 02:30:18 [core.py:93] Initializing a V1 LLM engine (v0.12.0) with config: \
model='Qwen/Qwen3-8B', speculative_config=None, dtype=torch.bfloat16, max_seq_len=16384, tensor_parallel_size=2, \
pipeline_parallel_size=1, quantization=None, kv_cache_dtype=auto, enable_prefix_caching=True, seed=0
(Worker_TP0 pid=31) DEBUG 01-07 02:30:40 [parallel_state.py:1165] world_size=2 rank=0 local_rank=0 backend=nccl
(Worker_TP0 pid=31) INFO 01-07 02:31:42 [gpu_model_runner.py:3549] Model loading took 7.6 GiB memory and 4.1 seconds
(Worker_TP1 pid=32) INFO 01-07 02:31:42 [gpu_model_runner.py:3549] Model loading took 7.6 GiB memory and 4.2 seconds
(Worker_TP1 pid=32) INFO 01-07 02:32:09 [gpu_worker.py:359] Available KV cache memory: 60.12 GiB
(Worker_TP0 pid=31) INFO 01-07 02:32:09 [gpu_worker.py:359] Available KV cache memory: 60.25 GiB
(EngineCore_DP0 pid=20) INFO 01-07 02:32:09 [kv_cache_utils.py:1286] GPU KV cache size: 875,552 tokens
(EngineCore_DP0 pid=20) INFO 01-07 02:32:09 [kv_cache_utils.py:1291] Maximum concurrency for 16,384 tokens per \
request: 53.44x
Capturing CUDA graphs (decode, FULL): 50%|█████     | 1/2\rCapturing CUDA graphs (decode, FULL): 100%|██████████| \
2/2 [00:01<00:00,  1.52it/s](Worker_TP1 pid=32) INFO 01-07 02:32:12 [gpu_model_runner.py:4466] Graph capturing \
finished in 3 secs, took 0.42 GiB
(Worker_TP0 pid=31) INFO 01-07 02:32:12 [gpu_model_runner.py:4466] Graph capturing finished in 3 secs, took 0.45 GiB
"""


def test_interleaved_workers_keep_their_own_figures():
    startup = read_log(TWO_WORKERS, "two.log")
    assert [w.worker for w in startup.workers] == ["TP0", "TP1"]
    assert (startup.worker("TP0").kv_cache_gib, startup.worker("TP0").cuda_graph_gib) == (60.25, 0.45)
    # the binding TP1: its own KV memory and graphs (the glued progress bar did not hide its line)
    assert (startup.memory.worker, startup.kv_cache_gib, startup.cuda_graph_gib, startup.weights_gib) == (
        "TP1", 60.12, 0.42, 7.6)
    assert int(60.12 * 2**30) // (73_728 * 16) * 16 == startup.kv_tokens == 875_552
    assert (startup.max_concurrency, round(875_552 / 16_384, 2)) == (53.44, 53.44)
    assert (startup.release, startup.model, startup.tp, startup.pp, startup.max_model_len) == (
        "0.12.0", "Qwen/Qwen3-8B", 2, 1, 16384)
    assert (startup.gpu_memory_utilization, startup.dtype, startup.kv_cache_dtype, startup.enable_prefix_caching) == (
        0.85, "bfloat16", "auto", True)


def hard_wrap(text: str, width: int) -> str:
    """The text as a terminal `width` columns wide wraps it, each line cut into `width`-character rows."""
    return "\n".join(line[i:i + width] for line in text.split("\n") for i in range(0, max(len(line), 1), width))


def test_a_figure_split_across_two_wrapped_lines_is_read_whole():
    pool_line = next(line for line in TWO_WORKERS.split("\n") if "GPU KV cache size" in line)
    width = pool_line.index("875,552") + len("875,5")  # the terminal cuts "875,5" / "52 tokens"
    wrapped = hard_wrap(TWO_WORKERS, width)
    assert "875,5\n52 tokens" in wrapped and 60 <= width <= 400
    assert read_log(wrapped, "two.log") == read_log(TWO_WORKERS, "two.log")


def test_colour_codes_are_peeled_off():
    coloured = TWO_WORKERS.replace("(Worker_TP1 pid=32)", "\x1b[1;36m(Worker_TP1 pid=32)\x1b[0;0m").replace(
        "INFO", "\x1b[32mINFO\x1b[0m")
    assert "\x1b[" in coloured and read_log(coloured, "two.log") == read_log(TWO_WORKERS, "two.log")


@pytest.mark.parametrize("text", [
    "", "\n\n", '{"model": "llama3-8b", "kv_cache_gib": 12.5}',
    "============ test session starts ============\ntests/test_kv.py ....... [100%]\n7 passed in 0.12s",
])
def test_a_text_no_engine_wrote_is_refused_in_one_line(text):
    with pytest.raises(SpecError) as refused:
        read_log(text, "paste.txt")
    message = str(refused.value)
    assert message.startswith("paste.txt: no vLLM, SGLang or TensorRT-LLM start-up line") and "\n" not in message


@pytest.mark.parametrize("cut", [
    TWO_WORKERS.split("(Worker_TP1 pid=32) INFO 01-07 02:32:09")[0],  # cut before the KV lines
    "(EngineCore_DP0 pid=20) INFO 01-07 02:32:09 [kv_cache_utils.py:1286] GPU KV cache size: 875,5",  # mid-figure
    "(Worker_TP1 pid=32) INFO 01-07 02:32:09 [gpu_worker.py:359] Available KV cache memory: 60.1",
])
def test_a_log_cut_before_its_kv_figures_is_refused_naming_them(cut):
    with pytest.raises(SpecError) as refused:
        read_log(cut, "cut.log")
    assert str(refused.value) == ("cut.log: this vllm log states no KV cache size (no 'Available KV cache memory', "
                                  "'GPU KV cache size' or V0 'Memory profiling' line); paste the log from the "
                                  "engine's start up to the KV cache lines")


# vLLM V0 (0.6.6 to 0.8) as worker.py and gpu_executor.py print it (figures from a public log of a run at
# gpu_memory_utilization 0.15 on an 80 GB card, found in the stored code index).
V0_LOG = """\
INFO 12-22 10:55:34 model_runner.py:1097] Loading model weights took 8.5107 GB
INFO 12-22 10:55:34 worker.py:241] Memory profiling takes 0.69 seconds
INFO 12-22 10:55:34 worker.py:241] the current vLLM instance can use total_gpu_memory (79.25GiB) x \
gpu_memory_utilization (0.15) = 11.89GiB
INFO 12-22 10:55:34 worker.py:241] model weights take 8.51GiB; non_torch_memory takes 0.26GiB; PyTorch activation \
peak memory takes 0.94GiB; the rest of the memory reserved for KV Cache is 2.18GiB.
INFO 12-22 10:55:35 gpu_executor.py:76] # GPU blocks: 715, # CPU blocks: 1310
INFO 12-22 10:55:35 gpu_executor.py:80] Maximum concurrency for 2048 tokens per request: 5.59x
"""


def test_a_v0_log_and_its_two_ways_of_stating_the_pool():
    """79.25 GiB x 0.15 = 11.8875, logged 11.89; 8.51 + 0.26 + 0.94 + 2.18 = 11.89 GiB, the same budget;
    715 blocks x 16 tokens = 11,440 tokens, / 2,048 = 5.586, the 5.59x logged."""
    startup = read_log(V0_LOG, "v0.log")
    m = startup.memory
    assert (m.total_gpu_gib, startup.gpu_memory_utilization, m.requested_gib) == (79.25, 0.15, 11.89)
    assert (m.weights_gib, m.non_torch_gib, m.activation_gib, m.kv_cache_gib) == (8.5107, 0.26, 0.94, 2.18)
    assert round(8.51 + 0.26 + 0.94 + 2.18, 2) == m.requested_gib
    assert (startup.num_gpu_blocks, startup.num_cpu_blocks, startup.max_concurrency) == (715, 1310, 5.59)
    # V0 states blocks, not tokens: 715 blocks x 16 (V0's block_size, the log states none) = 11,440 tokens
    assert round(715 * 16 / 2048, 2) == startup.max_concurrency and startup.kv_tokens == 11440
    assert startup.engine_generation == "V0"
    # the same terms wrapped over three lines, as V1 0.8's gpu_worker.py prints them
    wrapped = V0_LOG.replace("; PyTorch", ";\nPyTorch").replace("; the rest", ";\nthe rest")
    assert read_log(wrapped, "v0.log") == startup


def test_v0_memory_terms_alone_are_read_as_vllm():
    """Two V0 lines pasted without the rest (no banner): still a vLLM log, its KV memory read."""
    lines = V0_LOG.split("\n")[3:5]
    startup = read_log("\n".join(lines), "two-lines.log")
    assert (startup.engine, startup.kv_cache_gib, startup.num_gpu_blocks) == ("vllm", 2.18, 715)


def test_an_sglang_server_args_line_abridged_in_a_paste_is_read():
    """Users paste SGLang's ServerArgs dump cut down to what they changed ("server_args ... tp_size=4 ..."):
    its settings still count; served_model_name names the model where model_path was cut. The figures are a
    Qwen3-14B on 4 x RTX 4090 (a public deployment note): 298,447 tokens x 40 layers x 2 x 8/4 KV heads x 128 x
    2 B = 11.38 GiB (K 5.69 + V 5.69 GB logged)."""
    text = ("server_args ... served_model_name='Qwen3-14B' ... tp_size=4 ... mem_fraction_static=0.8 ... "
            "enable_metrics=True\n"
            "Load weight end. type=Qwen3ForCausalLM, dtype=torch.bfloat16, avail mem=16.00 GB, mem usage=7.08 GB.\n"
            "KV Cache is allocated. #tokens: 298447, K size: 5.69 GB, V size: 5.69 GB\n"
            "max_total_num_tokens=298447, chunked_prefill_size=2048, max_prefill_tokens=16384, "
            "max_running_requests=3730, context_len=40960, available_gpu_mem=2.82 GB\n")
    startup = read_log(text, "abridged.log")
    assert (startup.engine, startup.model, startup.tp, startup.mem_fraction_static) == ("sglang", "Qwen3-14B", 4, 0.8)
    assert startup.kv_tokens == 298_447 and startup.max_model_len == 40_960
    assert 298_447 * 40 * 2 * (8 // 4) * 128 * 2 / 2**30 == pytest.approx(11.38, abs=0.005)


def test_an_sglang_mla_pool_line_states_one_kv_size():
    """SGLang 0.5.8's MLA pool holds one latent a token and logs one size (Kimi-K2.5 on an MI355X rank):
    'KV Cache is allocated. #tokens: 2454421, KV size: 160.63 GB'."""
    startup = read_log("[2026-02-26 16:41:18 TP6] KV Cache is allocated. #tokens: 2454421, KV size: 160.63 GB\n", "x")
    assert (startup.engine, startup.kv_tokens, startup.memory.kv_cache_gib) == ("sglang", 2_454_421, 160.63)
    assert (startup.pools[0].k_gib, startup.pools[0].v_gib) == (160.63, 0.0)
