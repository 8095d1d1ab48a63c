"""SGLang: the pool is the memory free after loading, less what mem_fraction_static keeps back of
the memory free before loading (measured once the CUDA context and NCCL are up):

    pool = (before - weights) - before x (1 - mem_fraction_static),  before = total - overhead
         = mem_fraction_static x (total - overhead) - weights

Source: python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token;
python/sglang/srt/server_args.py (page_size 1, mem_fraction_static by TP size).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, CommandLine, Engine, Replica, Term, comm_buffers, half_from_fp32
from kvplan.units import GIB, MIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

# server_args: mem_fraction_static by the GPUs of a replica (at least this many -> this fraction)
FRACTION_BY_GPUS = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))

COMMAND = CommandLine(
    program="python -m sglang.launch_server",
    launchers=(("python", "-m", "sglang.launch_server"), ("python3", "-m", "sglang.launch_server"),
               ("sglang", "serve")),
    model_flag="--model-path",
    flags={"revision": "--revision", "tp": "--tp-size", "pp": "--pp-size", "max_model_len": "--context-length",
           "util": "--mem-fraction-static",
           "kv_dtype": "--kv-cache-dtype", "max_num_seqs": "--max-running-requests", "block_size": "--page-size",
           "max_num_batched_tokens": "--chunked-prefill-size", "weights_dtype": "--dtype",
           "quantization": "--quantization", "cpu_offload_gib": "--cpu-offload-gb", "hicache_ratio": "--hicache-ratio", "hicache_size_gb": "--hicache-size",
           "disaggregation_mode": "--disaggregation-mode"},
    also_read={"--model": "model", "--tp": "tp", "--pp": "pp"},
    kv_dtypes={"fp8": "fp8_e4m3"},
    dtypes={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"},
    quantizations={"fp8": "fp8"},
    # HiCache, a host KV tier (python/sglang/srt/server_args.py enable_hierarchical_cache, hicache_ratio, hicache_size)
    switches={"kv_offload_backend": {"hicache": "--enable-hierarchical-cache"}},
    program_words=("sglang",),
    usage="`python -m sglang.launch_server --model-path MODEL ...`",
)


class Sglang(Engine):
    """SGLang 0.4.10 to 0.5.4: mem_fraction_static from a reserve by GPU class."""

    name, display_name = "sglang", "SGLang"
    release = "0.5"
    first: tuple[int, ...] = (0, 4, 10)
    last: tuple[int, ...] | None = (0, 5, 4)
    encodes: tuple[str, ...] = ("python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token",
                                "python/sglang/srt/server_args.py (mem_fraction_static by GPU class)",
                                "python/sglang/srt/configs/model_config.py")
    changes = "a context_length past the model's is refused unless SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
    util, util_name = 0.88, "mem_fraction_static"
    fraction_of_free_memory = True
    names_disagg_role = True  # --disaggregation-mode prefill|decode
    util_meaning = ("of the device's total memory, for weights and the KV pool; the rest is headroom for "
                    "activations and CUDA graphs")
    block_size = 1
    formula = "util x (total - overhead) - weights"
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static = (memory - reserve) "
              "/ memory, the reserve by GPU class (server_args, 0.5.0 to 0.5.4)")
    command = COMMAND
    # model_config.py: a context_length above the derived one is refused unless this is set
    long_context_switch = "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
    # tp_worker.py: any pool of 7 tokens starts; a request is cut to it (max_req_len), not refused at start
    start_rule = "pool_tokens"

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        """0.4.10 to 0.5.4 (server_args): a reserve by the GPU's memory (nvidia-smi's total), in GiB:
        under 35: 2.8 + TP x PP / 10; under 90: 9.5 + TP x PP / 2; under 160: 12 + TP x PP / 2; else 32."""
        memory = _smi_gib(gpu)
        if memory is None:
            return self.util
        gpus = tp * pp
        reserve = (2.8 + gpus / 10 if memory < 35 else 9.5 + gpus / 2 if memory < 90 else
                   12 + gpus / 2 if memory < 160 else 32)
        return round((memory - reserve) / memory, 3)

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        return Term(0, "in the (1 - mem_fraction_static) headroom")

    def overhead(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """What is gone before the 'before loading' measure: the CUDA context, and NCCL's buffers."""
        comm, what = comm_buffers(replica)
        parts = [(self.base_overhead_bytes, self.base_overhead_source)] + ([(comm, what)] if comm else [])
        return Term(sum(b for b, _ in parts), " + ".join(w for _, w in parts), " + ".join(f"{b:,} B" for b, _ in parts))

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        return int(util * (total - overhead)) - weights - activation

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        """ModelConfig._get_and_verify_dtype (python/sglang/srt/configs/model_config.py): a float32
        checkpoint is served in fp16, a Gemma one in bf16."""
        return half_from_fp32(model, "SGLang", ("gemma",))


SGLANG = Sglang()


def _smi_gib(gpu: GpuSpec | None) -> float | None:
    """The GPU's memory as nvidia-smi totals it (SGLang's get_device_memory_capacity), in GiB."""
    if gpu is None:
        return None
    return (gpu.usable_memory_bytes or gpu.memory_bytes) / GIB


class Sglang55(Sglang):
    """SGLang 0.5.5 to 0.5.14: mem_fraction_static from a reserve for activations and CUDA graphs."""

    release = "0.5.5"
    first: tuple[int, ...] = (0, 5, 5)
    last: tuple[int, ...] | None = (0, 5, 14)
    encodes: tuple[str, ...] = ("python/sglang/srt/server_args.py ServerArgs._handle_gpu_memory_settings",
                                "python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token")
    changes = ("mem_fraction_static = (memory - reserve) / memory, reserve in MiB = 512 + 1.5 x max(chunked prefill, "
               "2,048) + 2 x cuda_graph_max_bs + 1,024 x TP x PP / 8, at least 10 GiB above 60 GiB")
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static from "
              "ServerArgs._handle_gpu_memory_settings (0.5.5 on)")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        """server_args: chunked_prefill_size and cuda_graph_max_bs by nvidia-smi's total (MiB), then the
        reserve: 512 + 1.5 x max(chunked_prefill_size, 2,048) + 2 x cuda_graph_max_bs + 1,024 x TP x PP / 8."""
        memory = _smi_gib(gpu)
        if memory is None:
            return self.util
        mib = memory * GIB / MIB
        chunk, max_bs = _tiers(memory, tp)
        reserve = 512 + 1.5 * max(chunk, 2048) + 2 * max_bs + 1024 * tp * pp / 8
        if mib > 60 * 1024:
            reserve = max(reserve, 10 * 1024)
        return round((mib - reserve) / mib, 3)


class Sglang515(Sglang55):
    """SGLang 0.5.15 on: the reserve counts the prefill CUDA graphs, and a disaggregated node reserves
    for its own phase only (sgl-project/sglang#29615)."""

    release = "0.5.15"
    first: tuple[int, ...] = (0, 5, 15)
    last: tuple[int, ...] | None = None
    encodes: tuple[str, ...] = ("python/sglang/srt/server_args.py ServerArgs._handle_gpu_memory_settings, "
                                "reserve_for_graph_mb, _generate_prefill_cuda_graph_batch_sizes",
                                "python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token")
    changes = ("the reserve adds the prefill CUDA graphs (8 MiB a captured size, 1.5 GiB for MLA); with "
               "--disaggregation-mode a prefill node drops the decode graphs, a decode node sizes its activation "
               "slack to its running requests (at least 2,048 tokens) and drops the prefill graphs (#29615)")
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static from "
              "ServerArgs._handle_gpu_memory_settings (0.5.15 on, by disaggregation mode)")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        """server_args (a snapshot after #29615, 2026): reserve MiB = 512 + 1.5 x activation tokens +
        1,024 x TP x PP / 8 + the decode graphs (2 x max_bs, not on a prefill node) + the prefill graphs
        (8 x the captured sizes up to chunked_prefill_size, 1,536 for MLA; not on a decode node), at
        least 10 GiB above 60 GiB; activation tokens max(chunked_prefill_size, 2,048), or on a decode
        node max(max_running_requests or max_bs, 2,048)."""
        memory = _smi_gib(gpu)
        if memory is None:
            return self.util
        mib = memory * GIB / MIB
        chunk, max_bs = _tiers(memory, tp)
        mla = model is not None and any(group.kind == "mla" for group in model.layers)
        tokens = max(running or max_bs, 2048) if role == "decode" else max(chunk, 2048)
        reserve = 512 + 1.5 * tokens + 1024 * tp * pp / 8
        if role != "prefill":
            reserve += 2 * max_bs
        if role != "decode":
            reserve += 1536 if mla else 8 * len(prefill_graph_sizes(chunk))
        if mib > 60 * 1024:
            reserve = max(reserve, 10 * 1024)
        return round((mib - reserve) / mib, 3)


def _tiers(memory: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, the decode graphs' max_bs) by nvidia-smi's total in GiB (server_args)."""
    return ((2048, 8) if memory < 20 else (2048, 24 if tp < 4 else 80) if memory < 35 else
            (4096, 32 if tp < 4 else 160) if memory < 60 else (8192, 256 if tp < 4 else 512)
            if memory < 160 else (16384, 512))


def prefill_graph_sizes(max_tokens: int) -> list[int]:
    """The token counts SGLang captures prefill graphs at (server_args
    _generate_prefill_cuda_graph_batch_sizes): 58 up to 8,192."""
    sizes = [*range(4, 33, 4), *range(48, 257, 16), *range(288, 513, 32), *range(576, 1025, 64),
             *range(1280, 4097, 256), *range(4608, max_tokens + 1, 512)]
    return [size for size in sizes if size <= max_tokens]


class Sglang04(Sglang):
    """SGLang 0.4 to 0.4.5: mem_fraction_static by TP size, cut for a multimodal model; a context_length
    past the model's only warns (0.4.4 to 0.4.10)."""

    release = "0.4"
    first: tuple[int, ...] = (0, 4)
    last: tuple[int, ...] | None = (0, 4, 5)
    encodes: tuple[str, ...] = ("python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token",
                                "python/sglang/srt/configs/model_config.py "
                                "(SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN default True)")
    changes = ("mem_fraction_static by TP size (0.88 at 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16), times 0.95 "
               "for a multimodal model; a context_length past the model's only warns")
    long_context_switch = ""
    fraction_by_gpus: tuple[tuple[int, float], ...] = FRACTION_BY_GPUS
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16)")

    def fraction_in_force(self, util: float, model: ModelSpec) -> float:
        """ModelRunner.__init__ (0.3 to 0.4.9): "if self.is_multimodal: mem_fraction_static *= 0.95", the
        given fraction or the default; kvplan counts a model with a vision or audio tower as multimodal."""
        return round(util * MULTIMODAL_FACTOR, 6) if model.tower_params else util

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        return next(fraction for size, fraction in self.fraction_by_gpus if tp * pp >= size)


class Sglang046(Sglang04):
    """SGLang 0.4.6 to 0.4.9: on a GPU above 80 GiB the fraction leaves 13 GiB."""

    release = "0.4.6"
    first: tuple[int, ...] = (0, 4, 6)
    last: tuple[int, ...] | None = (0, 4, 9)
    changes = ("on a GPU above 80 GiB (nvidia-smi's total) mem_fraction_static = (memory - 13 GiB) / memory; the TP "
               "table below it, and the multimodal cut, as 0.4")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        memory = _smi_gib(gpu)
        if memory is not None and memory > 80:
            return round((memory - 13) / memory, 3)
        return super().default_util(gpu, tp, pp, model=model, role=role, running=running)


class Sglang03(Sglang04):
    """SGLang 0.3: the TP table of 0.4 but 0.83 at TP 8 (server_args before the GPU-memory tiers)."""

    release = "0.3"
    first: tuple[int, ...] = (0, 3)
    last: tuple[int, ...] | None = (0, 3)
    changes = ("mem_fraction_static by TP size as 0.4, but 0.83 at 8 GPUs (0.4 lowered it to 0.81 with the "
               "GPU-memory tiers of chunked_prefill_size and cuda_graph_max_bs)")
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.83 at 8, 0.79 at 16)")
    fraction_by_gpus = ((16, 0.79), (8, 0.83), (4, 0.85), (2, 0.87), (1, 0.88))  # server_args 0.2 and 0.3


# SGLang 0.4's cut of the memory fraction for a multimodal model (model_runner.py)
MULTIMODAL_FACTOR = 0.95

SGLANG_PRESETS: tuple[Sglang, ...] = (Sglang03(), Sglang04(), Sglang046(), SGLANG, Sglang55(), Sglang515())
