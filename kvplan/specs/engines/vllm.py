"""vLLM V1: the pool is what gpu_memory_utilization of the device leaves after the profiled peak.

    pool = total x gpu_memory_utilization - (weights + activation peak + non-torch memory)

Sources: vllm/v1/worker/gpu_worker.py Worker.determine_available_memory (the budget),
vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory (the start-up refusal),
vllm/engine/arg_utils.py (block_size 16, gpu_memory_utilization 0.9, batch defaults by GPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import (
    BatchLimits, Engine, Replica, Term, comm_buffers, forward_pass, half_from_fp32,
)
from kvplan.specs.engines.loading import mxfp4_padding, rotary_dim
from kvplan.specs.engines.pages import hybrid_page
from kvplan.specs.engines.served import unserved
from kvplan.specs.engines.vllm_alloc import loaded_extras
from kvplan.specs.engines.vllm_command import COMMAND
from kvplan.specs.engines.vllm_mm import EncoderProfile
from kvplan.specs.engines.vllm_states import checkpoint_alignment, state_pages
from kvplan.units import DTYPE_BYTES, GIB, MIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec
    from kvplan.units import KvFormat

# _FLOAT16_NOT_SUPPORTED_MODELS (vllm/config/model.py): model types that refuse fp16
FP16_REFUSED = ("gemma2", "gemma3", "glm4")

# vLLM's non-torch memory (CUDA context allocations outside PyTorch's caching allocator, cuBLAS
# workspaces) as logged on one H100 at TP 1: "non-torch memory takes 0.25GiB".
NON_TORCH_BYTES = GIB // 4
# 0.8 to 0.17 count less: "0.07 GiB for non-torch memory" on one H100 at TP 1 (0.10.2's gpu_worker.py
# summary line, tests/fixtures/engine_logs/vllm-0.10.2-qwen3-4b-h100-1.log); 0.18 profiles the CUDA
# graphs' warm-up inside the window and logs the 0.25 above.
V1_EARLY_NON_TORCH_BYTES = round(0.07 * GIB)
# V0 to 0.6: 0.35 GiB non-torch on one GPU (0.6.4, RTX 3090), past the start, weights and profile (memory_profiling).
V0_NON_TORCH_BYTES = round(0.35 * GIB)
# The dummy sampler's tensors alive at its peak, in bytes per row x vocabulary entry, for a 16-bit
# model (vllm/v1/worker/gpu_model_runner.py _dummy_sampler_run: top_k = vocab - 1 and top_p 0.9,
# so the top-k/top-p path runs over every entry). Every path holds the logits in the model's dtype
# (2) and as fp32 (4). The PyTorch sort (to 0.17): during logits.sort(), the sorted values (4),
# their int64 indices (8), the int64 iota the sort starts from (8) and the radix sort's double
# buffer of keys and values (12): 38 in all. vLLM's logs measure 37.3 to 39.7 (Qwen3-4B, Qwen3-32B,
# Qwen3-235B, Llama-3-8B on H100s and an H200, 0.10.0 to 0.11.2). The Triton top-k/top-p kernel
# (0.18 on) works in place: the probabilities (4) and the exponential draws (4) beside the logits:
# 14. FlashInfer's fused kernel: the probabilities alone (4): 10.
PYTORCH_SORT_SAMPLER_BYTES = 38
TRITON_SAMPLER_BYTES = 14
FLASHINFER_SAMPLER_BYTES = 10
# CUDA graph memory from 0.20 (gpu_model_runner.py profile_cudagraph_memory): each captured batch
# size costs its graphs' private pool. Two public logs measure 4.8 MiB (Qwen3-30B-A3B, 0.22: 30
# sizes, 0.14 GiB) and 6.1 MiB (Phi-3-mini, 0.19 with the estimate printed: 86 sizes, 0.51 GiB) a
# size; kvplan takes 5 MiB.
CUDA_GRAPH_BYTES_PER_SIZE = 5 * MIB

class Vllm(EncoderProfile, Engine):
    """vLLM 0.18 and 0.19: the Triton top-k/top-p sampler; CUDA graphs outside the budget."""

    name, display_name = "vllm", "vLLM"
    release = "0.19"
    first: tuple[int, ...] = (0, 18)
    last: tuple[int, ...] | None = (0, 19)
    encodes: tuple[str, ...] = ("vllm/v1/worker/gpu_worker.py Worker.determine_available_memory",
                                "vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory",
                                "vllm/engine/arg_utils.py (batch defaults by GPU)")
    changes = ("the sampler's top-k/top-p runs as a Triton kernel, in place (14 B a logit at its peak, 38 before); "
               "MLA pages by the backend's preferred size: 16 on Hopper, 32 on Blackwell")
    util, util_name = 0.90, "gpu_memory_utilization"
    util_meaning = "of the device's total memory, for everything vLLM allocates"
    block_size = 16
    formula = "total x util - (weights + activation + overhead)"
    source = ("vLLM V1 Worker.determine_available_memory; defaults gpu_memory_utilization=0.9, "
              "block_size=16")
    command = COMMAND
    start_rule = "max_memory_usage"
    generation = "V1"
    disagg_join = ("join them with a KV connector (--kv-transfer-config '{\"kv_connector\": \"NixlConnector\", "
                   "\"kv_role\": \"kv_both\"}')")
    # vllm/config: a max_model_len above the derived one is refused unless this is set
    long_context_switch = "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
    environment_fields = {"VLLM_USE_FLASHINFER_SAMPLER=1": ("sampler", "flashinfer"),
                          "VLLM_USE_FLASHINFER_SAMPLER=0": ("sampler", "pytorch")}
    environment_values = {"LMCACHE_MAX_LOCAL_DISK_SIZE": "kv_offload_disk_gib"}
    base_overhead_bytes = NON_TORCH_BYTES
    base_overhead_source = "vLLM non-torch, as logged"
    tokens_rule = "blocks"
    kv_groups = True
    # the sampler's bytes per row x vocabulary entry without FlashInfer, and whether FlashInfer's
    # sampler runs by default: from 0.21, where vLLM installs it and turns it on; before, it runs only
    # where installed by hand (0.8-0.11, which say "FlashInfer is not available" otherwise) or asked
    # for (0.12-0.20): `sampler` (--sampler, VLLM_USE_FLASHINFER_SAMPLER) says which a deployment has
    sampler_bytes = TRITON_SAMPLER_BYTES
    flashinfer_sampler = False
    flashinfer_where_installed = False  # 0.8-0.11: FlashInfer's sampler runs wherever it is installed
    cuda_graphs_counted = False  # the profiled CUDA graph estimate is subtracted (0.20 on)

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        return int(total * util) - (weights + activation + overhead)

    # MLA (DeepSeek's latent attention) pages, by the kernel vLLM picks: 0.8 to 0.17 force FlashMLA's 64
    # on Hopper and CUTLASS MLA's 128 on Blackwell (compute capability 10.x) (platforms/cuda.py
    # check_and_update_config); from 0.18 the first backend of the priority list takes its preferred size:
    # FlashAttention MLA (multiples of 16) on Hopper, FlashInfer MLA (32 or 64) on Blackwell: 32
    mla_blocks: dict[str, int] = {"Hopper": 16, "Blackwell": 32}
    kv_group_ratio = True  # 0.12 on: groups as large as the largest kind when it is under 1.25 x the smallest
    hybrid_pages = True  # attention blocks grown to a recurrent state's page (from 0.10.2; 0.11 on here)
    # ... in steps of 64 tokens where the attention is MLA (0.19 HybridAttentionMambaModelConfig; 128 only
    # with --attention-backend CUTLASS_MLA); 0.34 below: 128 (platforms/interface.py _align_hybrid_block_size)
    mla_hybrid_alignment = 64
    # A hybrid's state pages per request (vllm_states.py): speculative blocks counted (0.15 on), what
    # prefix caching does to a state ("none": hybrids have none, to 0.11; "all": a page per block, 0.12
    # to 0.14; "all_or_align": "all" where the model supports Mamba prefix caching, else "align", 0.15
    # to 0.27; "align": 0.28 on), whether it is on for a hybrid by default (0.26 on), and which state
    # kinds keep a prefill checkpoint block in "align" mode (0.32: Mamba-2; 0.33: + GDN on FlashInfer)
    speculative_state_blocks = True
    prefix_caching_mode = "all_or_align"
    hybrid_prefix_caching = False
    checkpoint_kinds: tuple[str, ...] = ()

    def state_pages_per_request(self, model: ModelSpec, gpu: GpuSpec | None, *, block_size: int, max_model_len: int,
                                num_spec: int = 0, prefix_caching: bool | None = None) -> int:
        return state_pages(self, model, gpu, block_size=block_size, max_model_len=max_model_len, num_spec=num_spec,
                           prefix_caching=prefix_caching)

    def default_block_size(self, model: ModelSpec, gpu: GpuSpec | None, fmt: KvFormat, tp: int = 1, *,
                           num_spec: int = 0, prefix_caching: bool | None = None) -> int:
        alignment = checkpoint_alignment(self, model, gpu, prefix_caching)
        hybrid = (hybrid_page(model, fmt, tp, alignment, mla_alignment=self.mla_hybrid_alignment, num_spec=num_spec)
                  if self.hybrid_pages else None)
        if hybrid:
            return hybrid[0]
        if model.kernel_block_size:  # DeepSeek-V4's sparse MLA kernels take 256-token blocks only (sparse_mla.py)
            return model.kernel_block_size
        if gpu is None or not any(group.kind == "mla" for group in model.layers):
            return self.block_size
        arch = gpu.architecture
        if arch.startswith("Blackwell"):  # compute capability 10.x; the RTX cards (12.x) run neither kernel
            arch = "Blackwell (RTX)" if gpu.name.startswith("rtx") else "Blackwell"
        return self.mla_blocks.get(arch, self.block_size)

    def sampler(self, replica: Replica) -> tuple[int, str]:
        """(bytes per row x vocabulary entry, which path) of the dummy sampler run on this GPU."""
        cuda = replica.gpu is None or replica.gpu.cuda_capable
        flashinfer = self.flashinfer_sampler if replica.sampler is None else replica.sampler == "flashinfer"
        native = "PyTorch sort" if self.sampler_bytes == PYTORCH_SORT_SAMPLER_BYTES else "Triton top-k/top-p"
        per, path = ((FLASHINFER_SAMPLER_BYTES, "FlashInfer top-k/top-p") if flashinfer and cuda
                     else (self.sampler_bytes, native))
        return (2 * per, path + ", fp32 model") if replica.dtype == "fp32" else (per, path)

    def sampler_environment(self, asked: str | None) -> tuple[str, ...]:
        """VLLM_USE_FLASHINFER_SAMPLER where the sampler asked for is not the release's default: 1 turns
        FlashInfer's on (0.12-0.20, where it is installed), 0 turns it off."""
        if asked is None or (asked == "flashinfer") == self.flashinfer_sampler:
            return ()
        if asked == "flashinfer" and self.flashinfer_where_installed:
            return ()  # 0.8-0.11 run it wherever it is installed: nothing to set
        return (f"VLLM_USE_FLASHINFER_SAMPLER={1 if asked == 'flashinfer' else 0}",)

    def disk_tier_environment(self, gib_per_rank: float) -> tuple[str, ...]:
        """LMCache's local disk, set in its own environment (lmcache/v1/config.py: local_disk, a path, and
        max_local_disk_size, GiB a rank); the path is LMCache's examples' and any local one serves."""
        return ("LMCACHE_LOCAL_DISK=file:///tmp/lmcache/", f"LMCACHE_MAX_LOCAL_DISK_SIZE={gib_per_rank:g}")

    def text_activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """The profile run's text peak (gpu_model_runner.py profile_run): a forward pass of
        max_num_batched_tokens tokens, then the dummy sampler over min(max_num_seqs, tokens) rows of
        the whole vocabulary, gathered on every TP rank (not divided by TP), the batch's hidden
        states still alive. The larger of the two is the peak."""
        tokens = limits.max_num_batched_tokens
        rows = min(limits.max_num_seqs, tokens)
        width = DTYPE_BYTES.get(replica.dtype, 2)
        forward, forward_formula = forward_pass(model, replica.tp, tokens, width)
        if not replica.samples:  # a pipeline stage before the last: no logits, no sampler
            return Term(forward, f"forward pass of {tokens:,} tokens (no sampler on this stage)", forward_formula)
        per, path = self.sampler(replica)
        hidden = tokens * model.hidden_size * width
        sampler = rows * model.vocab_size * per + hidden
        sampler_formula = (f"{rows:,} rows x {model.vocab_size:,} vocab x {per} B ({path}) "
                           f"+ {tokens:,} x {model.hidden_size:,} x {width} B hidden")
        if sampler >= forward:
            return Term(sampler, f"sampler over {rows:,} sequences ({path})",
                        f"max(forward {forward:,} B, sampler {sampler_formula})")
        return Term(forward, f"forward pass of {tokens:,} tokens",
                    f"max(forward {forward_formula}, sampler {sampler:,} B)")

    def weights_extra(self, model: ModelSpec, replica: Replica) -> list[tuple[int, str]]:
        """What 'Model loading took' holds beyond the parameters, on every GPU: the RoPE cos/sin cache
        (rotary_embedding get_rope: one [positions, rotary dim] table in the model's dtype per distinct
        rope, positions being the derived context; Gemma-3's local and global ropes are two), MXFP4
        experts padded for the MoE kernel (quantization/mxfp4.py create_weights), and what the
        allocator's blocks and the tensors TP does not split add (vllm_alloc.py)."""
        extra = []
        rotary = rotary_dim(model)
        if rotary:
            ropes = 2 if model.family.startswith("gemma3") else 1
            width = DTYPE_BYTES.get(replica.dtype, 2)
            extra.append((ropes * model.max_context * rotary * width, "RoPE table" if ropes == 1 else "RoPE tables"))
        padding = mxfp4_padding(model, replica)
        if padding:
            extra.append(padding)
        return extra + loaded_extras(model, replica)  # the allocator's blocks, what TP does not split

    def cuda_graph_sizes(self, limits: BatchLimits) -> tuple[int, int]:
        """(piecewise, full) batch sizes vLLM captures by default: 1, 2, 4, then every 8 to 256 and
        every 16 beyond, up to min(2 x max_num_seqs, 512, max_num_batched_tokens); full graphs of
        uniform decode batches up to max_num_seqs (config/vllm.py, config/compilation.py)."""
        largest = min(2 * limits.max_num_seqs, 512, limits.max_num_batched_tokens)
        sizes = [1, 2, 4, *range(8, 256, 8), *range(256, 513, 16)]
        return (sum(s <= largest for s in sizes),
                sum(s <= min(limits.max_num_seqs, largest) for s in sizes))

    def overhead(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """Non-torch memory (what grows outside PyTorch's allocator once the worker starts: cuBLAS
        workspaces, NCCL's and the custom all-reduce's buffers), and from 0.20 the CUDA graphs'
        profiled estimate."""
        comm, what = comm_buffers(replica)
        parts = [(self.base_overhead_bytes, self.base_overhead_source)] + ([(comm, what)] if comm else [])
        if self.cuda_graphs_counted:
            piecewise, full = self.cuda_graph_sizes(limits)
            parts.append(((piecewise + full) * CUDA_GRAPH_BYTES_PER_SIZE, f"CUDA graphs ({piecewise + full} sizes)"))
        formula = " + ".join(f"{b:,} B" for b, _ in parts)
        if self.cuda_graphs_counted:
            formula += f" (CUDA graphs: {piecewise} piecewise + {full} full sizes x 5 MiB)"
        return Term(sum(b for b, _ in parts), " + ".join(w for _, w in parts), formula)

    def start_refusal(self, model: ModelSpec, replica: Replica, limits: BatchLimits,
                      version: tuple[int, ...] | None = None) -> str:
        """The release must serve the architecture (specs/engines/served.py); SchedulerConfig:
        max_num_batched_tokens at least max_num_seqs, and max_model_len without chunked prefill;
        ModelConfig and the CUDA platform: bf16 needs compute capability 8.0, and Gemma-2/3 and GLM-4
        refuse fp16 (numerical instability), where auto lands them on a GPU without bf16."""
        gpu, dtype = replica.gpu, replica.dtype
        if refused := unserved(model.architecture, self.first, self.last, self.release, version):
            return refused
        if limits.max_num_batched_tokens < limits.max_num_seqs:
            return (f"max_num_batched_tokens ({limits.max_num_batched_tokens:,}) must be at least max_num_seqs "
                    f"({limits.max_num_seqs:,})")
        if not limits.chunked_prefill and limits.max_num_batched_tokens < replica.max_model_len:
            return (f"without chunked prefill max_num_batched_tokens ({limits.max_num_batched_tokens:,}) must be "
                    f"at least max_model_len ({replica.max_model_len:,})")
        if dtype == "bf16" and gpu is not None and not gpu.has_bf16:
            return f"bf16 needs compute capability 8.0 and {gpu.name} ({gpu.architecture}) has none"
        if dtype == "fp16" and model.family.startswith(FP16_REFUSED):
            return f"{model.family} models refuse fp16 (numerical instability) and this GPU has no bf16"
        return ""

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        """ModelConfig's auto dtype (vllm/config/model.py _resolve_auto_dtype): the platform's
        preferred dtype, bf16 on GPUs that have it (compute capability 8.0 and up) and fp16 on older
        ones, for a float32 checkpoint, and for a bf16 checkpoint on a GPU without bf16."""
        has_bf16 = gpu is None or gpu.has_bf16
        preferred = "bf16" if has_bf16 else "fp16"
        checkpoint = model.compute_dtype
        if checkpoint == "fp32":
            return preferred, f"the checkpoint's fp32, which vLLM serves in {preferred} (--dtype auto)"
        if checkpoint == "bf16" and not has_bf16:
            return "fp16", f"the checkpoint's bf16, which vLLM serves in fp16 on {gpu.name if gpu else 'it'} (no bf16)"
        return checkpoint, f"the checkpoint's {model.dtype}"


class VllmV0(Vllm):
    """vLLM's V0 engine, the default to 0.7: the profile run and the block count of the old worker."""

    release = "0.6"
    first: tuple[int, ...] = (0, 5, 3)
    last: tuple[int, ...] | None = (0, 6)
    encodes: tuple[str, ...] = ("vllm/worker/worker.py Worker.determine_num_available_blocks",
                                "vllm/worker/model_runner.py GPUModelRunnerBase.profile_run",
                                "vllm/config.py SchedulerConfig, _get_and_verify_dtype",
                                "vllm/engine/arg_utils.py (max_num_seqs 256)")
    changes = ("V0: one request of max_model_len must fit as its pages (no window + chunk count); max_num_seqs "
               "256 on every GPU; chunked prefill only past 32K tokens, so the profile batch is max_model_len "
               "tokens; an fp32 checkpoint is served in fp16 (Gemma-2 in bf16)")
    start_rule = "paged_request"
    generation = "V0"
    source = "vLLM V0 Worker.determine_num_available_blocks; defaults gpu_memory_utilization=0.9, block_size=16"
    base_overhead_bytes, base_overhead_source = V0_NON_TORCH_BYTES, "vLLM V0 non-torch, as logged"
    kv_groups = hybrid_pages = False
    plans_unnamed_v0_logs = True  # a V0 log naming no release is planned with this preset (calc/logfit.py)
    sampler_bytes = PYTORCH_SORT_SAMPLER_BYTES
    speculative_state_blocks = False
    prefix_caching_mode = "none"
    mla_blocks: dict[str, int] = {}  # FlashMLA came with 0.7.3, after most of the releases this preset holds

    def batch_limits(self, gpu: GpuSpec | None, total_bytes: int, max_model_len: int = 0,
                     chunked_prefill: bool | None = None) -> BatchLimits:
        """SchedulerConfig (V0): chunked prefill by default only past 32,768 tokens, then 512 batched
        tokens; without it a step holds a whole prompt, max(max_model_len, 2,048) tokens."""
        chunked = max_model_len > 32768 if chunked_prefill is None else chunked_prefill
        return BatchLimits(512 if chunked else max(max_model_len, 2048), 256, chunked)

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """V0's profile run: max_num_batched_tokens tokens over max_num_seqs sequences, the sampler
        over one row a sequence; the forward pass is the peak but for a short max_model_len."""
        tokens, rows = limits.max_num_batched_tokens, limits.max_num_seqs
        width = DTYPE_BYTES.get(replica.dtype, 2)
        forward, formula = forward_pass(model, replica.tp, tokens, width)
        per, path = self.sampler(replica)
        sampler = rows * model.vocab_size * per
        peak = max(forward, sampler)
        return Term(peak, f"profile run of {tokens:,} tokens, {rows:,} sequences",
                    f"max(forward {formula}, sampler {rows:,} x {model.vocab_size:,} x {per} B)")

    def overhead(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        comm, what = comm_buffers(replica)
        note = f" + {what}" if comm else ""
        return Term(self.base_overhead_bytes + comm, self.base_overhead_source + note,
                    f"{self.base_overhead_bytes:,} B" + (f" + {comm:,} B" if comm else ""))

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        return half_from_fp32(model, f"vLLM {self.release}", ("gemma2",))


class Vllm08(Vllm):
    """vLLM 0.8 to 0.10: the V1 engine by default; FlashInfer's sampler only where installed by hand."""

    release = "0.8"
    first: tuple[int, ...] = (0, 8)
    last: tuple[int, ...] | None = (0, 10)
    encodes: tuple[str, ...] = ("vllm/v1/worker/gpu_worker.py Worker.determine_available_memory",
                                "vllm/v1/worker/gpu_model_runner.py profile_run, _dummy_sampler_run",
                                "vllm/v1/sample/ops/topk_topp_sampler.py (FlashInfer where installed)",
                                "vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory", "vllm/config.py")
    changes = ("V1 becomes the default engine: the V1 budget and start-up check; the dummy sampler's PyTorch "
               "sort (38 B a logit; FlashInfer's, 10 B, where installed: --sampler flashinfer); MLA pages of 64 "
               "tokens on Hopper (FlashMLA), 128 on Blackwell (CUTLASS MLA)")
    hybrid_pages = False
    base_overhead_bytes = V1_EARLY_NON_TORCH_BYTES
    base_overhead_source = "vLLM non-torch, as 0.10.2 logs it on an H100"
    sampler_bytes = PYTORCH_SORT_SAMPLER_BYTES
    # MambaSpec.max_memory_usage_bytes is one page (0.10.2, 0.11: "Need to update this when supporting
    # prefix caching"), however many speculative blocks are allocated; hybrids have no prefix caching
    speculative_state_blocks = False
    prefix_caching_mode = "none"
    mla_blocks = {"Hopper": 64, "Blackwell": 128}
    kv_group_ratio = False
    flashinfer_where_installed = True


class Vllm11(Vllm08):
    """vLLM 0.11: the config package; FlashInfer's sampler still only where installed by hand."""

    release = "0.11"
    first: tuple[int, ...] = (0, 11)
    last: tuple[int, ...] | None = (0, 11)
    encodes: tuple[str, ...] = ("vllm/v1/worker/gpu_worker.py Worker.determine_available_memory", "vllm/config/model.py",
                                "vllm/v1/sample/ops/topk_topp_sampler.py", "vllm/v1/core/kv_cache_utils.py")
    changes = "the config package (vllm/config/); the sampler as 0.8's; hybrid attention pages grown to a state's"
    hybrid_pages = True


class Vllm12(Vllm11):
    """vLLM 0.12 to 0.14: FlashInfer's sampler only when asked for (VLLM_USE_FLASHINFER_SAMPLER=1)."""

    release = "0.12"
    first: tuple[int, ...] = (0, 12)
    last: tuple[int, ...] | None = (0, 14)
    encodes: tuple[str, ...] = ("vllm/v1/sample/ops/topk_topp_sampler.py (FlashInfer opt-in)",
                                "vllm/v1/worker/gpu_worker.py", "vllm/v1/core/kv_cache_utils.py")
    changes = "FlashInfer's sampler becomes opt-in (VLLM_USE_FLASHINFER_SAMPLER=1) even where installed"
    flashinfer_where_installed = False
    kv_group_ratio = True
    # MambaSpec.max_memory_usage_bytes: cdiv(max_model_len, block_size) pages, the block max_model_len
    # without prefix caching (MambaModelConfig), the attention block with it
    prefix_caching_mode = "all"


class Vllm15(Vllm12):
    """vLLM 0.15 to 0.17: Mamba cache modes; a state's speculative blocks counted."""

    release = "0.15"
    first: tuple[int, ...] = (0, 15)
    last: tuple[int, ...] | None = (0, 17)
    encodes: tuple[str, ...] = ("vllm/v1/kv_cache_interface.py MambaSpec.max_memory_usage_bytes",
                                "vllm/model_executor/models/config.py MambaModelConfig")
    changes = ("mamba_cache_mode: a state takes 1 + num_speculative_tokens pages a request ('none'), 2 + them "
               "with prefix caching ('align'), or one a block where the model supports Mamba prefix caching ('all')")
    speculative_state_blocks = True
    prefix_caching_mode = "all_or_align"


class Vllm20(Vllm):
    """vLLM 0.20.0: gpu_memory_utilization 0.92, and the CUDA graphs' estimate inside it."""

    release = "0.20"
    first: tuple[int, ...] = (0, 20)
    last: tuple[int, ...] | None = (0, 20, 0)
    util = 0.92
    encodes: tuple[str, ...] = ("vllm/config/cache.py (gpu_memory_utilization 0.92)",
                                "vllm/v1/worker/gpu_model_runner.py profile_cudagraph_memory",
                                "vllm/envs.py VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1")
    changes = "gpu_memory_utilization defaults to 0.92 (0.9 before), and the CUDA graphs' estimate is subtracted"
    source = ("vLLM V1 Worker.determine_available_memory; defaults gpu_memory_utilization=0.92, "
              "block_size=16")
    cuda_graphs_counted = True
