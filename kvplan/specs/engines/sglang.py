"""SGLang: the pool is the memory free after loading, less what mem_fraction_static keeps back of
the memory free before loading (measured once the CUDA context and NCCL are up):

    pool = (before - weights) - before x (1 - mem_fraction_static),  before = total - overhead
         = mem_fraction_static x (total - overhead) - weights

Source: python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token;
python/sglang/srt/server_args.py (page_size 1, mem_fraction_static by release). The releases from 0.5
are here; those before it, and the list of every preset, in sglang_older.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, CommandLine, Engine, Replica, Term, comm_buffers, half_from_fp32
from kvplan.specs.engines.loading import mla_replicated
from kvplan.specs.layers import MLALatent
from kvplan.units import GIB, MIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.units import KvFormat
    from kvplan.specs.model import ModelSpec

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
    # ROCm's aiter attention backend, SGLang's default on AMD (for MLA only at 16 or 128 KV heads a
    # rank), takes x 0.85 off the fraction, given or default, for a context past 8,192 tokens: in
    # ModelRunner.model_specific_adjustment (0.4.7 to 0.5.4, after the server_args line is printed)
    # or in ServerArgs.__post_init__ (0.5.5 on, so the printed fraction is already cut).
    aiter_cut = "model_runner"  # "" (none: before 0.4.7), "model_runner" or "server_args"

    def _cuts(self, model: ModelSpec, given: bool, replica: Replica | None) -> list[tuple[float, str]]:
        """(factor, why) of each cut the release makes to the fraction: a multimodal model's (multimodal_factor;
        not of a given fraction where the release cuts only its default), then aiter's."""
        cuts = []
        if model.tower_params and (self.multimodal_cuts_given or not given):
            factor = vlm_factor(model) if self.multimodal_factor is None else self.multimodal_factor
            cuts.append((factor, "a multimodal model" + (" (by its vision tower)" if self.multimodal_factor is None else "")))
        if self.aiter_cut and replica is not None and aiter_cuts(model, replica):
            cuts.append((AITER_FACTOR, "ROCm's aiter attention past 8,192 tokens"))
        return cuts

    def fraction_in_force(self, util: float, model: ModelSpec, given: bool = False,
                          replica: Replica | None = None) -> float:
        for factor, _ in self._cuts(model, given, replica):
            util = round(util * factor, 6)
        return util

    def fraction_cut(self, model: ModelSpec, given: bool, replica: Replica) -> str:
        return "; ".join(f"x {factor:.4g} for {why}" for factor, why in self._cuts(model, given, replica))

    def logged_fraction(self, util: float, model: ModelSpec, replica: Replica) -> float:
        """From 0.5.5 the server_args line prints the fraction after aiter's cut: the given one is it / 0.85."""
        if self.aiter_cut == "server_args" and aiter_cuts(model, replica):
            return util / AITER_FACTOR
        return util

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        """0.4.8 to 0.5.4 (server_args): a reserve by the GPU's memory (nvidia-smi's total), in GiB:
        under 35: 2.8 + TP x PP / 10; under 90: 9.5 + TP x PP / 2; under 160: 12 + TP x PP / 2; else 32."""
        memory = smi_gib(gpu)
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

    def counted_page_bytes(self, model: ModelSpec, fmt: KvFormat, pp: int, block: int, page: int) -> int:
        """ModelRunner.profile_max_num_token counts an MLA token as (kv_lora_rank + qk_rope_head_dim) x the KV
        dtype's size a layer, plus the sparse-attention indexer's 128 + 4 B where the model has one: for
        a DSA model in fp8 576 + 132 B, where its pool stores 656 + 132 (the fp8 latent's scales, the
        bf16 RoPE key), so the logged pool ('KV size') is the tokens counted x the stored bytes, past the
        fraction (read in 0.5.5, a 0.5.8 GLM-5-FP8 log agrees; the releases before count the same latent
        and serve no DSA model)."""
        groups = [g for g in model.layers if isinstance(g, MLALatent)]
        if not groups or len(groups) != len(model.layers) or fmt.name not in ("fp8", "bf16", "fp16"):
            return page
        width = 1 if fmt.name == "fp8" else 2
        per_token = 0
        for g in groups:
            indexer = g.index_head_dim + g.index_head_dim // 128 * 4 if g.index_head_dim else 0
            per_token += -(-g.count // pp) * ((g.kv_lora_rank + g.qk_rope_head_dim) * width + indexer)
        return per_token * block

    def weights_extra(self, model: ModelSpec, replica: Replica) -> list[tuple[int, str]]:
        """What the load's 'mem usage' holds beyond the parameters / TP: MLA's tensors no rank splits
        (loading.py mla_replicated; SGLang's DeepSeek model replicates them as vLLM's does)."""
        mla = mla_replicated(model, replica)
        return [(mla, f"tensors TP {replica.tp} does not split")] if mla else []

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        """ModelConfig._get_and_verify_dtype (python/sglang/srt/configs/model_config.py): a float32
        checkpoint is served in fp16, a Gemma one in bf16."""
        return half_from_fp32(model, "SGLang", ("gemma",))


SGLANG = Sglang()


AITER_FACTOR = 0.85


def aiter_cuts(model: ModelSpec, replica: Replica) -> bool:
    """Whether aiter, SGLang's default attention backend on an AMD GPU, cuts the fraction: a context
    (model_config.context_len) past 8,192 tokens, and for MLA 16 or 128 KV heads a rank
    (get_num_kv_heads: num_key_value_heads // TP, which MLA configs set to the head count)."""
    if replica.gpu is None or replica.gpu.vendor != "amd" or replica.max_model_len <= 8192:
        return False
    if any(group.kind == "mla" for group in model.layers):
        return max(1, model.num_attention_heads // replica.tp) in (16, 128)
    return True


def vlm_factor(model: ModelSpec) -> float:
    """server_args adjust_mem_fraction_for_vlm (0.4.9.post3 on): 0.95 x clamp(1 - 0.1 x (r - 1), 0.8, 1.05),
    r = L x H^2 / (24 x 1,024^2), L and H vision_config's num_hidden_layers and hidden_size as the config
    object holds them (24 and 1,024, a ViT-L/14, where config.json states none: Qwen-VL towers name
    their depth "depth"). Gemma-3's SigLIP (27 x 1,152): r 1.4238, 0.95 x 0.95762 = 0.90974."""
    layers = model.vision_num_hidden_layers or 24
    hidden = model.vision_hidden_size or 1024
    ratio = layers * hidden ** 2 / (24 * 1024 ** 2)
    return 0.95 * max(0.8, min(1.05, 1.0 - 0.1 * (ratio - 1.0)))


def smi_gib(gpu: GpuSpec | None) -> float | None:
    """The GPU's memory as nvidia-smi totals it (SGLang's get_device_memory_capacity), in GiB."""
    if gpu is None:
        return None
    return (gpu.usable_memory_bytes or gpu.memory_bytes) / GIB


class Sglang55(Sglang):
    """SGLang 0.5.5 to 0.5.14: mem_fraction_static from a reserve for activations and CUDA graphs."""

    release = "0.5.5"
    first: tuple[int, ...] = (0, 5, 5)
    aiter_cut = "server_args"
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
        memory = smi_gib(gpu)
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
        memory = smi_gib(gpu)
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
