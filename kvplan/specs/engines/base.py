"""What every engine entry is: its budget terms, its defaults and its command line.

An engine is data plus a few small rules (gpt-fast's table of model configs is the model): the
entry says what its memory fraction means, how it turns a GPU into a KV pool, when it refuses to
start, its batch defaults, and the command line that starts it, written and read by the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvplan.errors import InputError
from kvplan.specs.engines.command import CommandLine as CommandLine
from kvplan.specs.engines.deploy import Deploy as Deploy
from kvplan.specs.engines.fields import FIELD_READERS
from kvplan.specs.engines.speculative import SPECULATIVE_FLAGS as SPECULATIVE_FLAGS
from kvplan.units import GIB, ceil_div

if TYPE_CHECKING:  # the specs arrive as arguments: importing the registry loads no spec class
    from kvplan.units import KvFormat
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

# SGLang and TensorRT-LLM: the CUDA context and NCCL outside the weights, per GPU. The measured
# CUDA context of PyTorch 2.11 on an H100 is 528.8 MiB (kvplan probe notes).
RUNTIME_OVERHEAD_BYTES = 529 * 2**20
# NCCL's buffers in a rank that talks to others, outside PyTorch's allocator, per GPU. Measured, as
# the engines log them (kvplan cannot read NCCL's sizing from an engine's source): vLLM 0.10.1 on
# A100s at TP 2 with custom all-reduce off (no P2P) spends 0.12 GiB more than at TP 1 (0.74 and
# 0.81 GiB of activation and non-torch memory against 0.62 and 0.69, tests/fixtures/engine_logs).
NCCL_BYTES = round(0.12 * GIB)
# NVLink SHARP on NVSwitch (GpuSpec.nvls): NCCL registers multicast buffers for the TP group's
# all-reduce. vLLM 0.19 logs non-torch memory of 2.1 GiB (Llama-3.3-70B) and 2.07 GiB (gpt-oss-20b)
# at TP 2 on H100 SXM, against 0.25 GiB at TP 1: 1.85 GiB in all, NCCL's own included.
NVLS_BYTES = round(1.85 * GIB) - NCCL_BYTES


@dataclass(frozen=True)
class Term:
    """One budget term: its bytes, a short source for the table, the formula for --explain."""

    value: int
    source: str
    formula: str = ""


@dataclass(frozen=True)
class BatchLimits:
    """The scheduler's caps: tokens in one forward pass, sequences running at once, and whether a
    prompt longer than the token cap is split into chunks (chunked prefill)."""

    max_num_batched_tokens: int
    max_num_seqs: int
    chunked_prefill: bool = True


@dataclass(frozen=True)
class Replica:
    """The deployment an engine profiles, beyond the model: one GPU of a tp x pp replica serving
    weights and activations in `dtype`, with max_model_len tokens a request."""

    gpu: GpuSpec | None
    tp: int = 1
    pp: int = 1
    dtype: str = "bf16"
    max_model_len: int = 0
    sampler: str | None = None  # "flashinfer" or "pytorch" where the deployment says; None: the release's default
    samples: bool = True  # this GPU's stage runs the sampler (a pipeline's last stage, or no pipeline)
    mm_limits: tuple[tuple[str, int], ...] | None = None  # --limit-mm-per-prompt; None: every modality allowed
    mm_encoder_tp_mode: str | None = None  # "weights" (the default) or "data"
    weights_dtype: str = "auto"  # the weights' format as loaded ("auto": the checkpoint's)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp


def comm_buffers(replica: Replica) -> tuple[int, str]:
    """(bytes, what) of the communication buffers one rank holds: none alone; NCCL's for a TP group
    or a pipeline; NVLink SHARP's on NVSwitch for a TP group (a pipeline's sends use none)."""
    if replica.gpus == 1:
        return 0, ""
    if replica.tp > 1 and replica.gpu is not None and replica.gpu.nvls:
        return NCCL_BYTES + NVLS_BYTES, f"NCCL with NVLink SHARP for a TP group of {replica.tp}"
    return NCCL_BYTES, f"NCCL for {replica.gpus} GPUs"


def vllm_batch_limits(gpu: GpuSpec | None, total_bytes: int) -> BatchLimits:
    """vLLM V1 (OpenAI server) defaults: 8192 batched tokens and 1024 sequences on GPUs of at
    least 70 GiB other than the A100, else 2048 and 256 (vllm/engine/arg_utils.py, PR #17885)."""
    large = total_bytes >= 70 * GIB and not (gpu is not None and gpu.name.startswith("a100"))
    return BatchLimits(8192, 1024) if large else BatchLimits(2048, 256)


def forward_pass(model: ModelSpec, tp: int, tokens: int, dtype_bytes: int = 2) -> tuple[int, str]:
    """Peak of a profiling forward pass of `tokens` tokens:

    resident:  3 hidden-state buffers, tokens x hidden x dtype bytes;
    transient: the MLP's gate/up and activation outputs (for MoE, every expert a token runs: the
               routed top-k and the shared ones, ModelSpec.active_intermediate_size),
               3 x tokens x intermediate / tp x dtype bytes.
    """
    h, inter = model.hidden_size, ceil_div(model.active_intermediate_size, tp)
    value = 3 * tokens * h * dtype_bytes + 3 * tokens * inter * dtype_bytes
    return value, f"3 x {tokens:,} x {h:,} x {dtype_bytes} B + 3 x {tokens:,} x {inter:,} x {dtype_bytes} B"


def forward_pass_peak(model: ModelSpec, tp: int, tokens: int, seqs: int) -> tuple[int, str]:
    """A forward pass of `tokens` tokens (forward_pass) plus a sampler run over `seqs` sequences,
    its logits and probabilities in fp32, 2 x seqs x vocab x 4 B: the estimate SGLang's and
    TensorRT-LLM's entries keep (their fractions leave the activations outside the pool)."""
    forward, formula = forward_pass(model, tp, tokens)
    sampler = 2 * seqs * model.vocab_size * 4
    return forward + sampler, formula + f" + 2 x {seqs:,} x {model.vocab_size:,} x 4 B"


class Engine:
    """One engine's entry. Subclasses set the data and override the rules that differ.

    The budget's terms (total, activation, overhead) and the pool rule take plain numbers and specs;
    calc.budget adds them up, so a rule here is the engine's own arithmetic and nothing else."""

    name: str  # what a user types: --engine vllm
    display_name: str  # in sentences: "vLLM will not start"
    # The releases this preset encodes: a label ("0.19"), the first and last versions it holds for
    # (last None: every later one until another preset), the engine source files it reads, and what
    # changes from the preset before it. `--engine vllm==0.19.1` picks the preset holding 0.19.1.
    release: str = ""
    first: tuple[int, ...] = ()
    last: tuple[int, ...] | None = None
    encodes: tuple[str, ...] = ()
    changes: str = ""
    util: float  # the default of its memory fraction
    util_name: str  # the engine's own name for that fraction
    util_meaning: str  # what the fraction is a fraction of
    block_size: int  # tokens per KV page
    formula: str  # the pool rule, in words of the terms
    source: str  # where the rule and defaults come from
    command: CommandLine | None = None  # None: nothing to start (the textbook budget)
    # How the start-up check counts one request of max_model_len: "max_memory_usage" (vLLM V1: each
    # layer kind's max_memory_usage_bytes) or "paged_request" (the request's pages as it is held).
    start_rule: str = "paged_request"
    # The switch that lets a max_model_len beyond the model's derived context start (an environment
    # variable); "" where the engine has none and does not refuse.
    long_context_switch: str = ""
    # Other environment settings a command line may carry: "VAR=value" -> (check-file field, value)
    environment_fields: dict[str, tuple[str, object]] = {}
    # Environment settings whose value a check-file field takes: VAR -> field (LMCache's disk GiB)
    environment_values: dict[str, str] = {}
    # How the engine logs its token capacity ("GPU KV cache size: N tokens"): "blocks" (whole pages
    # of every layer, times the page's tokens) or "concurrency" (vLLM 0.21 on: requests of
    # max_model_len the pool holds, times max_model_len). kv_groups: vLLM V1's layout of a hybrid
    # model's layers into groups of one page size, padding layers included (calc/kvgroups.py).
    tokens_rule: str = "blocks"
    kv_group_ratio: bool = False  # vLLM 0.12 on: see calc/kvgroups.py
    pipeline_stages: bool = True  # each pipeline stage sizes its own pool; the engine keeps the smallest
    kv_groups: bool = False
    hybrid_pages: bool = False  # a recurrent state's page unified with attention's (vLLM 0.10.2 on)
    # DeepSeek-V4's caches packed by block into groups of their own (vLLM 0.34 _get_packed_kv_cache_groups,
    # calc/kvpacked.py), and whether windows hold 2 steps of batched tokens in flight (async scheduling)
    packed_kv_groups: bool = False
    async_scheduling: bool = False
    # Reading a start-up log back (calc/logfit.py): whether the fraction applies to the memory free
    # before the weights, with no other term beside them (SGLang), and whether the block size a log
    # states is the engine build's, known before launch (TensorRT-LLM's tokens per block)
    # The engine generation a preset's rules are (vLLM "V0", "V1"; "" where there is one): a log whose lines
    # show the other generation is planned with the newest preset of its own (calc/logfit.py)
    generation: str = ""
    fraction_of_free_memory: bool = False
    logged_block_is_built: bool = False
    # Disaggregated serving (calc/disagg.py): whether the engine's command names a worker's role
    # (SGLang --disaggregation-mode), and how the user joins two ordinary servers where it does not
    names_disagg_role: bool = False
    disagg_join: str = "join them with the engine's KV transfer"
    base_overhead_bytes = RUNTIME_OVERHEAD_BYTES
    base_overhead_source = "CUDA context, measured"

    @property
    def key(self) -> str:
        """What names this preset exactly: 'vllm==0.19' ('raw' where there are no releases)."""
        return f"{self.name}=={self.release}" if self.release else self.name

    def holds(self, version: tuple[int, ...]) -> bool:
        """Whether this preset encodes the release `version` (compared part by part, 0.19 = 0.19.0)."""
        width = max(len(version), len(self.first), len(self.last or ()))
        pad = lambda v: v + (0,) * (width - len(v))  # noqa: E731
        above = pad(version) >= pad(self.first)
        return above and (self.last is None or pad(version[: len(self.last)]) <= pad(self.last))

    def default_block_size(self, model: ModelSpec, gpu: GpuSpec | None, fmt: KvFormat, tp: int = 1, *,
                           num_spec: int = 0, prefix_caching: bool | None = None) -> int:
        """Tokens per KV page when none is given: the engine's, unless the model's attention kernels take
        one page size only (DeepSeek-V4's sparse MLA: 256, whole compressed latents per page)."""
        return model.kernel_block_size or self.block_size

    def state_pages_per_request(self, model: ModelSpec, gpu: GpuSpec | None, *, block_size: int, max_model_len: int,
                                num_spec: int = 0, prefix_caching: bool | None = None) -> int:
        """Pages of a recurrent state one request takes (vLLM: vllm_states.py); one elsewhere."""
        return 1

    def total_memory(self, gpu: GpuSpec) -> Term:
        total, basis = gpu.cuda_memory()
        return Term(total, f"{gpu.name} as CUDA reports it ({basis})",
                    f"the device total a process sees (cudaMemGetInfo): {basis}")

    def batch_limits(self, gpu: GpuSpec | None, total_bytes: int, max_model_len: int = 0,
                     chunked_prefill: bool | None = None) -> BatchLimits:
        """The scheduler's defaults on this GPU. Without chunked prefill a step must hold a whole
        prompt: the token cap rises to max_model_len where that is more (vLLM SchedulerConfig)."""
        default = vllm_batch_limits(gpu, total_bytes)
        if chunked_prefill is False:
            return BatchLimits(max(default.max_num_batched_tokens, max_model_len), default.max_num_seqs, False)
        return default

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        tokens, seqs = limits.max_num_batched_tokens, limits.max_num_seqs
        value, formula = forward_pass_peak(model, replica.tp, tokens, seqs)
        return Term(value, f"estimate: {tokens:,}-token batch, {seqs:,} sequences", formula)

    def weights_extra(self, model: ModelSpec, replica: Replica) -> list[tuple[int, str]]:
        """Bytes the engine counts with the weights beyond the parameters (buffers, padding), per GPU:
        (bytes, what) each; none by default."""
        return []

    def overhead(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """What the engine holds outside the weights, activations and pool, per GPU."""
        comm, what = comm_buffers(replica)
        note = f" + {what}" if comm else ""
        formula = f"{self.base_overhead_bytes:,} B" + (f" + {comm:,} B" if comm else "")
        return Term(self.base_overhead_bytes + comm, self.base_overhead_source + note, formula)

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        """(the dtype `--dtype auto` serves weights and activations in, and why): by default the
        checkpoint's own compute dtype."""
        return model.compute_dtype, f"the checkpoint's {model.dtype}"

    def auto_kv_dtype(self, model: ModelSpec, dtype: str) -> str:
        """The KV dtype `auto` stores: the served dtype (vLLM and SGLang: model_config.dtype)."""
        return dtype

    def start_refusal(self, model: ModelSpec, replica: Replica, limits: BatchLimits,
                      version: tuple[int, ...] | None = None) -> str:
        """Why the engine refuses these settings before sizing memory ("" if not); `version`: the release asked."""
        return ""

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        """The memory fraction this engine takes when none is given, for one GPU of a tp x pp replica
        serving `model`, in a disaggregated deployment's `role` ("prefill", "decode"; None: both),
        with `running` requests at most where the command sets them."""
        return self.util

    def fraction_in_force(self, util: float, model: ModelSpec, given: bool = False,
                          replica: Replica | None = None) -> float:
        """The memory fraction the engine sizes with, `given` or default (SGLang lowers it for a
        multimodal model, and for ROCm's aiter backend, by release); the fraction itself by default."""
        return util

    def fraction_cut(self, model: ModelSpec, given: bool, replica: Replica) -> str:
        """Why fraction_in_force differs from the fraction ('x 0.85 for ...'); '' where it does not."""
        return ""

    def logged_fraction(self, util: float, model: ModelSpec, replica: Replica) -> float:
        """The fraction a command line gave, from the one a start-up log prints (SGLang prints its
        server_args after the cuts made there); the printed one by default."""
        return util

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        raise NotImplementedError

    def counted_page_bytes(self, model: ModelSpec, fmt: KvFormat, pp: int, block: int, page: int) -> int:
        """What one page costs in the engine's count of its token capacity: the page as laid out, by
        default (SGLang counts an MLA token as its latent, whatever the layout stores)."""
        return page

    def measured_rest(self, total: float, util: float, weights: float, kv: float) -> float:
        """The non-KV memory beyond the weights that a log's total, fraction, weights and KV memory imply,
        by this engine's pool rule inverted (GiB): total x util - weights - KV where the fraction is of the
        total (vLLM)."""
        return total * util - weights - kv

    def sampler_environment(self, asked: str | None) -> tuple[str, ...]:
        """The environment setting that makes the engine run the sampler asked for (none by default)."""
        return ()

    def disk_tier_environment(self, gib_per_rank: float) -> tuple[str, ...]:
        """The environment settings that give a KV offload tier its local disk (none by default)."""
        return ()

    def write_command(self, deploy: Deploy) -> str:
        """The command that starts this engine with `deploy` ("" when the engine has none)."""
        return self.command.write(deploy) if self.command else ""

    def read_command(self, text: str) -> tuple[dict, list[str]]:
        """The settings a command line sets, by check-file field, and the flags kvplan ignores; the
        engine's long-context switch before it sets allow_long_max_len."""
        if self.command is None:
            raise InputError(f"{self.display_name} has no command line to read")
        fields, ignored = self.command.read(text, self.name, self.display_name)
        environment = fields.pop("environment", [])
        if self.long_context_switch and self.long_context_switch in environment:
            fields["allow_long_max_len"] = True
        for setting in environment:
            if setting in self.environment_fields:
                name, value = self.environment_fields[setting]
                fields[name] = value
            variable, _, value = setting.partition("=")
            if variable in self.environment_values:
                name = self.environment_values[variable]
                fields[name] = FIELD_READERS[name](value, variable)
        return fields, ignored


def half_from_fp32(model: ModelSpec, engine: str, bf16_families: tuple[str, ...]) -> tuple[str, str]:
    """The older rule for --dtype auto (vLLM to 0.9.0, SGLang): a float32 checkpoint is served in fp16,
    the families in `bf16_families` (Gemma) in bf16; any other checkpoint in its own dtype."""
    if model.compute_dtype != "fp32":
        return model.compute_dtype, f"the checkpoint's {model.dtype}"
    served = "bf16" if model.family.startswith(bf16_families) else "fp16"
    return served, f"the checkpoint's fp32, which {engine} serves in {served} (--dtype auto)"
