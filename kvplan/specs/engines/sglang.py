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
    """SGLang 0.5.0 to 0.5.4: mem_fraction_static from a reserve by GPU class, a multimodal model's
    default scaled by its vision tower (vlm_factor)."""

    name, display_name = "sglang", "SGLang"
    release = "0.5"
    first: tuple[int, ...] = (0, 5)
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
    # How the release cuts mem_fraction_static for a multimodal model (kvplan: one with a vision or audio
    # tower): a factor on any fraction, given or default (ModelRunner.__init__, 0.3 to 0.4.8); a factor on
    # the default only (server_args, 0.4.9 to 0.4.9.post2); None: the default scaled by the vision tower's
    # size (server_args adjust_mem_fraction_for_vlm, 0.4.9.post3 on), see vlm_factor.
    multimodal_factor: float | None = None
    multimodal_cuts_given = False

    def fraction_in_force(self, util: float, model: ModelSpec, given: bool = False) -> float:
        """The fraction a multimodal model is sized with (multimodal_factor); the fraction itself for a
        text model, and for a given fraction where the release cuts only its default."""
        if not model.tower_params or (given and not self.multimodal_cuts_given):
            return util
        factor = vlm_factor(model) if self.multimodal_factor is None else self.multimodal_factor
        return round(util * factor, 6)

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


def vlm_factor(model: ModelSpec) -> float:
    """server_args adjust_mem_fraction_for_vlm (0.4.9.post3 on): 0.95 x clamp(1 - 0.1 x (r - 1), 0.8, 1.05),
    r = L x H^2 / (24 x 1,024^2), L and H vision_config's num_hidden_layers and hidden_size as the config
    object holds them (24 and 1,024, a ViT-L/14, where config.json states none: Qwen-VL towers name
    their depth "depth"). Gemma-3's SigLIP (27 x 1,152): r 1.4238, 0.95 x 0.95762 = 0.90974."""
    layers = model.vision_num_hidden_layers or 24
    hidden = model.vision_hidden_size or 1024
    ratio = layers * hidden ** 2 / (24 * 1024 ** 2)
    return 0.95 * max(0.8, min(1.05, 1.0 - 0.1 * (ratio - 1.0)))


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
    """SGLang 0.4.0 to 0.4.3: mem_fraction_static by TP size, times 0.95 for a multimodal model."""

    release = "0.4"
    first: tuple[int, ...] = (0, 4)
    last: tuple[int, ...] | None = (0, 4, 3)
    encodes: tuple[str, ...] = ("python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token",
                                "python/sglang/srt/server_args.py (mem_fraction_static by tp_size)")
    changes = ("mem_fraction_static by TP size (0.88 at 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16), times 0.95 "
               "for a multimodal model, given or default")
    multimodal_factor: float | None = 0.95  # ModelRunner.__init__: "if self.is_multimodal: mem_fraction_static *= 0.95"
    multimodal_cuts_given = True
    fraction_by_gpus: tuple[tuple[int, float], ...] = FRACTION_BY_GPUS
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16)")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        """server_args to 0.4.6 reads the table by tp_size alone (0.4.7 by tp_size x pp_size)."""
        return next(fraction for size, fraction in self.fraction_by_gpus if tp >= size)


class Sglang044(Sglang04):
    """SGLang 0.4.4 to 0.4.10: a context_length past the model's only warns."""

    release = "0.4.4"
    first: tuple[int, ...] = (0, 4, 4)
    last: tuple[int, ...] | None = (0, 4, 4)
    encodes: tuple[str, ...] = ("python/sglang/srt/configs/model_config.py "
                                "(SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN default True, 0.4.4 to 0.5.0)",)
    changes = "a context_length past the model's only warns (SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN on by default)"
    long_context_switch = ""


class Sglang045(Sglang044):
    """SGLang 0.4.5: the multimodal cut is 0.90."""

    release = "0.4.5"
    first: tuple[int, ...] = (0, 4, 5)
    last: tuple[int, ...] | None = (0, 4, 5)
    changes = "a multimodal model's fraction times 0.90, given or default (ModelRunner), not 0.95"
    multimodal_factor: float | None = 0.90


class Sglang046(Sglang045):
    """SGLang 0.4.6: on a GPU above 80 GiB the fraction leaves 13 GiB."""

    release = "0.4.6"
    first: tuple[int, ...] = (0, 4, 6)
    last: tuple[int, ...] | None = (0, 4, 6)
    changes = ("above 81,920 MiB (nvidia-smi's total) mem_fraction_static = (memory - 13 GiB) / memory, unrounded; "
               "the TP table below it")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        memory = _smi_gib(gpu)
        if memory is not None and memory > 80:
            return (memory - 13) / memory
        return super().default_util(gpu, tp, pp, model=model, role=role, running=running)


class Sglang047(Sglang045):
    """SGLang 0.4.7: the TP table to 80 GiB, 0.88 above; 0.79 above 180,000 MiB on CUDA; between 96 GiB
    and that, a reserve of 18 GiB at most."""

    release = "0.4.7"
    first: tuple[int, ...] = (0, 4, 7)
    last: tuple[int, ...] | None = (0, 4, 7)
    changes = ("the TP table by TP x PP to 81,920 MiB, 0.88 above it; above 180,000 MiB on CUDA 0.79; above 96 GiB "
               "min(f + 48 GiB x (1 - f) / memory, (memory - 18 GiB) / memory)")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        memory = _smi_gib(gpu)
        if memory is None:
            return self.util
        base = Sglang04.default_util(self, gpu, tp * pp, 1) if memory <= 80 else 0.88
        mib = memory * GIB / MIB
        if mib > 180_000 and gpu is not None and gpu.vendor == "nvidia":
            return 0.79
        if memory > 96:
            return min(base + 48 * 1024 * (1 - base) / mib, (memory - 18) / memory)
        return base


class Sglang048(Sglang):
    """SGLang 0.4.8: the reserve by GPU class of 0.5 (server_args); the multimodal cut of 0.90 still in
    ModelRunner, on any fraction."""

    release = "0.4.8"
    first: tuple[int, ...] = (0, 4, 8)
    last: tuple[int, ...] | None = (0, 4, 8)
    changes = ("mem_fraction_static = (memory - reserve) / memory, the reserve by GPU class as 0.5; a multimodal "
               "model's fraction times 0.90, given or default")
    long_context_switch = ""
    multimodal_factor: float | None = 0.90
    multimodal_cuts_given = True


class Sglang049(Sglang048):
    """SGLang 0.4.9 to 0.4.9.post2: the multimodal cut moves to server_args, on the default only."""

    release = "0.4.9"
    first: tuple[int, ...] = (0, 4, 9)
    last: tuple[int, ...] | None = (0, 4, 9, 0, 2)
    changes = "a multimodal model's default fraction times 0.90 (server_args); a given one is kept"
    multimodal_cuts_given = False


class Sglang0493(Sglang049):
    """SGLang 0.4.9.post3 to 0.4.10: a multimodal model's default scaled by its vision tower's size."""

    release = "0.4.9.post3"
    first: tuple[int, ...] = (0, 4, 9, 0, 3)
    last: tuple[int, ...] | None = (0, 4, 10)
    changes = ("a multimodal model's default fraction times 0.95 x clamp(1 - 0.1 x (L x H^2 / (24 x 1,024^2) - 1), 0.8, "
               "1.05), L and H its vision_config's layers and width (adjust_mem_fraction_for_vlm); a given one is kept")
    multimodal_factor = None


class Sglang03(Sglang04):
    """SGLang 0.3.0 to 0.3.4: the TP table of 0.4 but 0.83 at TP 8 (server_args before the GPU-memory
    tiers); any context_length is taken (configs/model_config.py compares none)."""

    release = "0.3"
    first: tuple[int, ...] = (0, 3)
    last: tuple[int, ...] | None = (0, 3, 4)
    changes = ("mem_fraction_static by TP size as 0.4, but 0.83 at TP 8 (0.4 lowered it to 0.81 with the "
               "GPU-memory tiers of chunked_prefill_size and cuda_graph_max_bs); any context_length is taken")
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.83 at 8, 0.79 at 16)")
    fraction_by_gpus = ((16, 0.79), (8, 0.83), (4, 0.85), (2, 0.87), (1, 0.88))  # server_args 0.2 to 0.3.5
    long_context_switch = ""


class Sglang035(Sglang03):
    """SGLang 0.3.5: a context_length past the model's is refused unless the switch is set."""

    release = "0.3.5"
    first: tuple[int, ...] = (0, 3, 5)
    last: tuple[int, ...] | None = (0, 3, 5)
    changes = "a context_length past the model's is refused unless SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
    long_context_switch = Sglang.long_context_switch


class Sglang036(Sglang035):
    """SGLang 0.3.6: 0.82 at TP 8."""

    release = "0.3.6"
    first: tuple[int, ...] = (0, 3, 6)
    last: tuple[int, ...] | None = (0, 3, 6)
    changes = "0.82 at TP 8"
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.82 at 8, 0.79 at 16)")
    fraction_by_gpus = ((16, 0.79), (8, 0.82), (4, 0.85), (2, 0.87), (1, 0.88))


SGLANG_PRESETS: tuple[Sglang, ...] = (Sglang03(), Sglang035(), Sglang036(), Sglang04(), Sglang044(), Sglang045(), Sglang046(), Sglang047(),
                                      Sglang048(), Sglang049(), Sglang0493(), SGLANG, Sglang55(), Sglang515())
