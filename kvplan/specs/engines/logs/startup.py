"""What an engine's start-up log states, as typed figures: the frozen records `read_log` returns.

Every figure is as the log prints it (a float of two or four decimals, never recomputed) and None
where the log does not state it. Memory is in GiB whatever the engine's label: vLLM V0's model
runner divides by GiB_bytes (worker/model_runner.py load_model, "Model loading took %.4f GiB" in
0.10.2; its releases of 0.6 to 0.9 label the figure "GB"), SGLang
prints "GB" for ``bytes / (1 << 30)`` (sglang/srt/utils.py get_available_gpu_memory) and
TensorRT-LLM's "GB"/"MB" step by 1024 (cpp/tensorrt_llm/runtime/memoryCounters.cpp,
doubleBytesToString); a TensorRT-LLM "MB" figure is divided by 1024 once, to GiB.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

Engine = Literal["vllm", "sglang", "trtllm"]


@dataclass(frozen=True)
class WorkerMemory:
    """One worker's (one GPU's) memory figures, as its own lines state them.

    `worker` names it as the log's prefix does: "TP1" (vLLM ``(Worker_TP1 pid=..)`` or
    ``(VllmWorker TP1 pid=..)``, SGLang ``[.. TP1]``), "rank=7" (``(VllmWorker rank=7 pid=..)``),
    "pid=345 ip=10.42.9.225" (a Ray worker), or "" for the process without a worker prefix (the
    engine core of a one-GPU run, or a log pasted without prefixes)."""

    worker: str = ""
    weights_gib: float | None = None  # vLLM "Model loading took"; SGLang "Load weight end ... mem usage"
    draft_weights_gib: float | None = None  # SGLang: a second "Load weight end" (the draft model's)
    kv_cache_gib: float | None = None  # vLLM "Available KV cache memory"; SGLang K + V of its first pool
    kv_cache_bytes: int | None = None  # vLLM 0.10+: "--kv-cache-memory=16440489164" (exact bytes)
    cuda_graph_gib: float | None = None  # vLLM "Graph capturing ... took" / "pool memory (actual)"; SGLang
    cuda_graph_estimated_gib: float | None = None  # vLLM 0.19+: "Estimated CUDA graph memory"
    activation_gib: float | None = None  # vLLM "peak activation" / V0 "PyTorch activation peak memory"
    non_torch_gib: float | None = None  # vLLM "non-torch memory" / V0 "non_torch_memory"
    weights_and_non_torch_gib: float | None = None  # vLLM 0.26+: "consumed memory (weights + non-torch)"
    total_gpu_gib: float | None = None  # vLLM "Free memory on device (F/T GiB)" T; V0 total_gpu_memory
    free_at_start_gib: float | None = None  # vLLM "Free memory on device (F/T GiB)" F; SGLang before weights
    requested_gib: float | None = None  # vLLM "Desired GPU memory utilization is (0.9, 21.28 GiB)"
    free_after_weights_gib: float | None = None  # SGLang "Load weight end. ... avail mem"; TRT "available"
    free_after_graphs_gib: float | None = None  # SGLang "available_gpu_mem=" after CUDA graphs
    initial_memory_usage_gib: float | None = None  # vLLM V0 (0.6.4) one-line profile
    peak_torch_memory_gib: float | None = None  # vLLM V0 (0.6.4) one-line profile
    memory_usage_post_profile_gib: float | None = None  # vLLM V0 (0.6.4) one-line profile


@dataclass(frozen=True)
class KVPool:
    """One KV cache pool as a line states it.

    vLLM: "GPU KV cache size: N tokens" with the next "Maximum concurrency for L tokens per
    request: Cx" (V1 0.10.0 prints one pair per worker, in rank order); V0: "# GPU blocks: B". SGLang:
    "KV Cache is allocated. #tokens: N, K size: k GB, V size: v GB" (a hybrid or speculative model
    allocates several). TensorRT-LLM: "Allocated G GiB for max tokens in paged KV cache (N)"."""

    worker: str = ""
    tokens: int | None = None
    max_concurrency: float | None = None  # vLLM: requests of `concurrency_len_tokens` that fit
    concurrency_len_tokens: int | None = None  # vLLM: the L of "Maximum concurrency for L tokens"
    gib: float | None = None  # TensorRT-LLM: the pool's GiB
    k_gib: float | None = None  # SGLang: K size
    v_gib: float | None = None  # SGLang: V size
    blocks: int | None = None  # vLLM V0 "# GPU blocks"; TensorRT-LLM "blocks in KV cache primary pool"


@dataclass(frozen=True)
class LoggedStartup:
    """The settings and figures one start-up log states (see the module docstring for units).

    `workers` keeps every worker's figures; `memory` is the binding worker's (the smallest KV
    memory: vLLM sizes every worker's pool to the smallest, v1/core/kv_cache_utils.py
    unify_kv_cache_configs / get_kv_cache_configs), each figure it does not state taken from the
    first worker that does. `pools` keeps every pool line; `kv_tokens` is the binding one (SGLang:
    max_total_num_tokens where logged). Engine-specific fields stay None for the other engines."""

    engine: Engine
    where: str  # the file or label the caller passed, for messages
    release: str | None = None  # "0.10.1.1", "0.14.0rc1.dev2+g7d9f6663a.d20260121", "0.12.0.dev2024073000"
    model: str | None = None  # as the log names it: an HF id or a local path
    tp: int | None = None
    pp: int | None = None
    dtype: str | None = None  # "bfloat16", "float16", "auto" as logged (torch. prefix dropped)
    kv_cache_dtype: str | None = None  # "auto", "fp8", "fp8_e5m2", "nvfp4", "int8_per_token_head"
    quantization: str | None = None  # "fp8", "awq_marlin", "compressed-tensors", "modelopt"...
    gpu_name: str | None = None  # "NVIDIA GeForce RTX 3090", "NVIDIA_H100_80GB_HBM3" as logged
    gpu_memory_utilization: float | None = None  # vLLM
    mem_fraction_static: float | None = None  # SGLang
    kv_memory_fraction: float | None = None  # TensorRT-LLM "KV Memory Percentage: 99.0%" -> 0.99
    max_model_len: int | None = None  # vLLM max_model_len; SGLang context_len; TRT maxSequenceLen
    block_size: int | None = None  # vLLM block_size; SGLang page_size; TRT "tokens per block"
    # vLLM's engine: "V0" where a line only V0 prints shows ("# GPU blocks", its memory profile, "Initializing an
    # LLM engine"), "V1" where V1's do ("GPU KV cache size", "Initializing a V1 LLM engine"); None: not shown
    engine_generation: str | None = None
    max_num_seqs: int | None = None  # vLLM max_num_seqs; SGLang max_running_requests; TRT maxNumSequences
    max_num_batched_tokens: int | None = None  # vLLM; TRT maxNumTokens
    chunked_prefill_size: int | None = None  # SGLang
    max_prefill_tokens: int | None = None  # SGLang
    num_speculative_tokens: int | None = None  # vLLM num_spec_tokens; SGLang speculative_num_draft_tokens
    speculative_method: str | None = None  # "mtp", "dflash", "eagle"... as logged
    enable_prefix_caching: bool | None = None  # vLLM; SGLang: not disable_radix_cache
    enable_lora: bool | None = None  # vLLM --enable-lora, with its slots, rank and CPU slots
    max_loras: int | None = None
    max_lora_rank: int | None = None
    max_cpu_loras: int | None = None
    flashinfer_sampler: bool | None = None  # vLLM: "Using FlashInfer for top-p & top-k sampling" / "not available"
    num_gpu_blocks: int | None = None  # vLLM "num_gpu_blocks is: B" (the final, unified count)
    num_cpu_blocks: int | None = None  # vLLM V0 "# CPU blocks"
    estimated_max_model_len: int | None = None  # vLLM "the estimated maximum model length is N"
    kv_needed_gib: float | None = None  # vLLM "X GiB KV cache is needed" for one max_model_len request
    util_without_graph_profiling: float | None = None  # vLLM 0.21+: "is equivalent to --g-m-u=X without"
    util_to_keep_kv_with_graph_profiling: float | None = None  # vLLM 0.19+: "increase ... to X"
    padding_layers: int | None = None  # vLLM "Add N padding layers"
    mamba_cache_blocks: int | None = None  # vLLM "(N blocks available)" for Mamba state
    pool_end_free_gib: tuple[float, ...] = ()  # SGLang "Memory pool end. avail mem", every line in order
    engine_mib: float | None = None  # TensorRT-LLM "Loaded engine size: 6214 MiB"
    execution_context_mib: float | None = None  # TensorRT-LLM
    runtime_buffers_gib: float | None = None  # TensorRT-LLM "Allocated 1.14 GB GPU memory for runtime buffers"
    decoder_gib: float | None = None  # TensorRT-LLM "Allocated 4.35 GB GPU memory for decoder"
    trtllm_backend: str | None = None  # TensorRT-LLM "pytorch" where the PyTorch backend's lines show (no engine), "autodeploy"
    kv_max_tokens: int | None = None  # TensorRT-LLM max_tokens, a cap on the pool (the smaller of it and the fraction's)
    workers: tuple[WorkerMemory, ...] = ()
    pools: tuple[KVPool, ...] = ()
    memory: WorkerMemory = WorkerMemory()
    kv_tokens: int | None = None
    max_concurrency: float | None = None

    @property
    def kv_rounding_gib(self) -> float:
        """How far the logged KV memory may be from the true one: 0.005 GiB where it is printed to two
        decimals; 0.01 for SGLang, whose K and V sizes are rounded apart."""
        return 0.01 if self.engine == "sglang" else 0.005

    @property
    def weights_gib(self) -> float | None:
        return self.memory.weights_gib

    @property
    def kv_cache_gib(self) -> float | None:
        return self.memory.kv_cache_gib

    @property
    def cuda_graph_gib(self) -> float | None:
        return self.memory.cuda_graph_gib

    @property
    def activation_gib(self) -> float | None:
        return self.memory.activation_gib

    @property
    def total_gpu_gib(self) -> float | None:
        return self.memory.total_gpu_gib

    def worker(self, name: str) -> WorkerMemory:
        """The worker the log names `name` ("TP0", "rank=0", ""); KeyError names those it has."""
        for found in self.workers:
            if found.worker == name:
                return found
        raise KeyError(f"no worker {name!r} in {self.where}; it names {[w.worker for w in self.workers]}")


SETTING_NAMES = frozenset(f.name for f in fields(LoggedStartup)) - {"engine", "where", "workers", "pools", "memory"}
WORKER_FIELDS = tuple(f.name for f in fields(WorkerMemory) if f.name != "worker")
