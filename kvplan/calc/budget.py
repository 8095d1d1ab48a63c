"""The per-GPU memory budget and the KV pool it leaves, as each serving engine computes it.

    vllm:   pool = total x gpu_memory_utilization - (weights + activation peak + non-torch)
    sglang: pool = free after load - total x (1 - mem_fraction_static),
            free after load = total - weights - runtime overhead (activations live in the
            headroom; an --activation-gib given is taken out of the free memory too)
    trtllm: pool = free_gpu_memory_fraction x (total - weights - runtime buffers - overhead)
    raw:    pool = memory - weights                      (the textbook: nothing else)

Every term is in the result with its source, and every term can be overridden.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.calc.kv import check_size_inputs, layers_kv, resolve_kv_format
from kvplan.calc.weights import weights_bytes, weights_per_gpu
from kvplan.errors import InputError
from kvplan.results.base import Step
from kvplan.results.capacity import MemoryBudget
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import GIB, ceil_div

# vLLM's non-torch memory (CUDA context allocations outside PyTorch's caching allocator, cuBLAS
# workspaces) as logged on one H100 at TP 1: "non-torch memory takes 0.25GiB".
NON_TORCH_BYTES = GIB // 4
# NCCL and custom all-reduce buffers when ranks talk (per GPU): vLLM 0.19 logs non-torch memory of
# 2.1 GiB (Llama-3.3-70B) and 2.07 GiB (gpt-oss-20b) at TP 2 on H100s, against 0.25 GiB at TP 1.
TP_COMM_BYTES = round(1.85 * GIB)  # 0.25 + 1.85 = 2.1 GiB at TP > 1
# SGLang and TensorRT-LLM: the CUDA context and NCCL outside the weights, per GPU. The measured
# CUDA context of PyTorch 2.11 on an H100 is 528.8 MiB (kvplan probe notes).
RUNTIME_OVERHEAD_BYTES = 529 * 2**20


class Engine:
    """An engine's budget rule. Subclasses hold each engine's formula and defaults."""

    name: str
    util: float  # the engine's default for its utilization knob
    util_flag: str
    block_size: int
    formula: str
    source: str

    def total_memory(self, gpu: GpuSpec) -> Term:
        total, basis = gpu.cuda_memory()
        return Term(total, f"{gpu.name} as CUDA reports it ({basis})",
                    f"the device total a process sees (cudaMemGetInfo): {basis}")

    def activation(self, model: ModelSpec, gpu: GpuSpec, inputs: BudgetInputs, total: int) -> Term:
        tokens, seqs = default_batch_limits(gpu, total)
        tokens = inputs.max_num_batched_tokens or tokens
        seqs = inputs.max_num_seqs or seqs
        value, formula = activation_estimate(model, inputs.tp, tokens, seqs)
        return Term(value, f"estimate: {tokens:,}-token batch, {seqs:,} sequences", formula)

    base_overhead_bytes = RUNTIME_OVERHEAD_BYTES
    base_overhead_source = "CUDA context, measured"

    def overhead(self, inputs: BudgetInputs) -> Term:
        gpus = inputs.tp * inputs.pp
        comm = TP_COMM_BYTES if gpus > 1 else 0
        note = f" + NCCL for {gpus} GPUs" if comm else ""
        formula = f"{self.base_overhead_bytes:,} B" + (f" + {comm:,} B" if comm else "")
        return Term(self.base_overhead_bytes + comm, self.base_overhead_source + note, formula)

    def default_util(self, inputs: BudgetInputs) -> float:
        return self.util

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        raise NotImplementedError


class Vllm(Engine):
    name, util, util_flag, block_size = "vllm", 0.90, "gpu_memory_utilization", 16
    formula = "total x util - (weights + activation + overhead)"
    source = ("vLLM V1 Worker.determine_available_memory; defaults gpu_memory_utilization=0.9, "
              "block_size=16")

    base_overhead_bytes = NON_TORCH_BYTES
    base_overhead_source = "vLLM non-torch, as logged"

    def pool(self, total, util, weights, activation, overhead):
        return int(total * util) - (weights + activation + overhead)


class Sglang(Engine):
    name, util, util_flag, block_size = "sglang", 0.88, "mem_fraction_static", 1
    formula = "(total - weights - overhead - activation) - total x (1 - util)"
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16)")

    def default_util(self, inputs: BudgetInputs) -> float:
        gpus = inputs.tp * inputs.pp
        return next(frac for size, frac in ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88)) if gpus >= size)

    def activation(self, model, gpu, inputs, total):
        return Term(0, "in the (1 - mem_fraction_static) headroom")

    def pool(self, total, util, weights, activation, overhead):
        return (total - weights - overhead - activation) - int(total * (1 - util))


class Trtllm(Engine):
    name, util, util_flag, block_size = "trtllm", 0.90, "free_gpu_memory_fraction", 32
    formula = "util x (total - weights - activation - overhead)"
    source = ("TensorRT-LLM KvCacheConfig: free_gpu_memory_fraction=0.9 of the memory free after "
              "loading the engine and its runtime buffers; tokens_per_block=32")

    def pool(self, total, util, weights, activation, overhead):
        return int(util * (total - weights - activation - overhead))


class Raw(Engine):
    name, util, util_flag, block_size = "raw", 1.0, "utilization", 16
    formula = "total x util - weights"
    source = "the textbook budget (the PagedAttention course notes): nothing but weights and KV"

    def total_memory(self, gpu):
        return Term(gpu.memory_bytes, f"{gpu.name} nominal")

    def activation(self, model, gpu, inputs, total):
        return Term(0, "none, by definition")

    def overhead(self, inputs):
        return Term(0, "none, by definition")

    def pool(self, total, util, weights, activation, overhead):
        return int(total * util) - (weights + activation + overhead)


ENGINES: dict[str, Engine] = {e.name: e for e in (Vllm(), Sglang(), Trtllm(), Raw())}


def engine_preset(name: str) -> Engine:
    try:
        return ENGINES[name.lower()]
    except KeyError:
        raise InputError(f"unknown engine '{name}'; choose one of {', '.join(ENGINES)}") from None


@dataclass(frozen=True)
class Term:
    """One budget term: its bytes, a short source for the table, the formula for --explain."""

    value: int
    source: str
    formula: str = ""


@dataclass(frozen=True)
class BudgetInputs:
    """What a user may override; None takes the engine's default."""

    engine: str = "vllm"
    tp: int = 1
    pp: int = 1
    kv_dtype: str = "auto"
    weights_dtype: str = "auto"
    util: float | None = None
    gpu_mem_bytes: int | None = None
    weights_bytes: int | None = None
    activation_bytes: int | None = None
    overhead_bytes: int | None = None
    block_size: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None

    def __post_init__(self) -> None:
        """Names are checked when the inputs are made, so a sweep or a plan refuses a bad one at once
        rather than marking every point it would have computed."""
        from kvplan.calc.weights import weight_format
        from kvplan.units import kv_format

        engine_preset(self.engine)
        if self.kv_dtype != "auto":
            kv_format(self.kv_dtype)
        if self.weights_dtype != "auto":
            weight_format(self.weights_dtype)

    @property
    def overridden(self) -> bool:
        """True when anything but the parallelism and dtypes departs from the vLLM defaults."""
        return self.engine != "vllm" or any(
            getattr(self, name) is not None for name in (
                "util", "gpu_mem_bytes", "weights_bytes", "activation_bytes", "overhead_bytes", "block_size",
                "max_num_batched_tokens", "max_num_seqs"))

    def realistic(self) -> "BudgetInputs":
        """The same deployment under the realistic default: vLLM's budget with nothing overridden."""
        return BudgetInputs(tp=self.tp, pp=self.pp, kv_dtype=self.kv_dtype, weights_dtype=self.weights_dtype)


def default_batch_limits(gpu: GpuSpec | None, gpu_bytes: int) -> tuple[int, int]:
    """vLLM V1 (OpenAI server) defaults: 8192 batched tokens and 1024 sequences on GPUs of at
    least 70 GiB other than the A100, else 2048 and 256 (vllm/engine/arg_utils.py, PR #17885)."""
    large = gpu_bytes >= 70 * GIB and not (gpu is not None and gpu.name.startswith("a100"))
    return (8192, 1024) if large else (2048, 256)


def activation_estimate(model: ModelSpec, tp: int, tokens: int, seqs: int) -> tuple[int, str]:
    """Peak of a profiling forward pass of `tokens` tokens plus a sampler run over `seqs` sequences.

    resident: 3 hidden-state buffers, tokens x hidden x 2 B;
    transient: the MLP's gate/up and activation outputs (the routed experts' for MoE),
               3 x tokens x intermediate / tp x 2 B;
    sampler:   logits and probabilities in fp32, 2 x seqs x vocab x 4 B.
    """
    h = model.hidden_size
    inter = model.intermediate_size
    if model.moe:
        inter = (model.moe.expert_intermediate_size or inter) * model.moe.experts_per_token
    resident = 3 * tokens * h * 2
    mlp = 3 * tokens * ceil_div(inter, tp) * 2
    sampler = 2 * seqs * model.vocab_size * 4
    formula = (f"3 x {tokens:,} x {h:,} x 2 B + 3 x {tokens:,} x {ceil_div(inter, tp):,} x 2 B "
               f"+ 2 x {seqs:,} x {model.vocab_size:,} x 4 B")
    return resident + mlp + sampler, formula


def _check(inputs: BudgetInputs, util: float) -> None:
    if not 0 < util <= 1:
        raise InputError(f"--util {util} is outside (0, 1]; use e.g. 0.9")
    if inputs.pp < 1:
        raise InputError(f"--pp {inputs.pp} must be at least 1")
    for flag, value in (("--max-num-seqs", inputs.max_num_seqs), ("--max-num-batched-tokens", inputs.max_num_batched_tokens)):
        if value is not None and value < 1:
            raise InputError(f"{flag} {value} must be at least 1 (leave it out for the engine's default)")
    for name in ("gpu_mem_bytes", "weights_bytes", "activation_bytes", "overhead_bytes"):
        value = getattr(inputs, name)
        if value is not None and value < 0:
            flag = "--" + name.replace("_bytes", "-gib").replace("_", "-")
            raise InputError(f"{flag} must not be negative")


def memory_budget(model: ModelSpec, gpu: GpuSpec | None, inputs: BudgetInputs = BudgetInputs()) -> MemoryBudget:
    """One GPU of a tp x pp replica: each term of the budget and the KV pool it leaves.
    `gpu` may be None when --gpu-mem gives the memory (the probe's local device)."""
    if gpu is None and inputs.gpu_mem_bytes is None:
        raise InputError("a budget needs a GPU from the database or its memory (--gpu-mem)")
    engine = engine_preset(inputs.engine)
    util = engine.default_util(inputs) if inputs.util is None else inputs.util
    _check(inputs, util)
    if inputs.pp > model.num_layers:
        raise InputError(f"--pp {inputs.pp} is more stages than {model.name}'s {model.num_layers} layers; "
                         f"give --pp {model.num_layers} or fewer")
    block = engine.block_size if inputs.block_size is None else inputs.block_size  # 0 is an error, not 'default'
    check_size_inputs(model, 1, 1, inputs.tp, block)
    fmt = resolve_kv_format(model, inputs.kv_dtype)
    total = _given(inputs.gpu_mem_bytes, "--gpu-mem") or engine.total_memory(gpu)
    weights = _given(inputs.weights_bytes, "--weights-gib") or _weights(model, inputs)
    activation = (_given(inputs.activation_bytes, "--activation-gib")
                  or engine.activation(model, gpu, inputs, total.value))
    overhead = _given(inputs.overhead_bytes, "--overhead-gib") or engine.overhead(inputs)
    pool = engine.pool(total.value, util, weights.value, activation.value, overhead.value)

    layers = layers_kv(model, 1, fmt, inputs.tp, block, inputs.pp)
    page = sum(layer.count * layer.page_bytes_per_layer for layer in layers if not layer.state_bytes_per_layer)
    per_token = sum(layer.bytes_per_token for layer in layers)
    blocks = max(pool, 0) // page if page else 0
    terms = {"total": total, "weights": weights, "activation": activation, "overhead": overhead}
    steps = _explain(engine, terms, util, pool, page, blocks, block)
    return MemoryBudget(
        engine=engine.name, engine_formula=engine.formula, engine_source=engine.source,
        model=model.name, gpu=gpu.name if gpu else "local device", tp=inputs.tp, pp=inputs.pp, kv_dtype=fmt.name,
        block_size=block, util=util, util_flag=engine.util_flag,
        util_source="--util" if inputs.util is not None else "engine default",
        total_bytes=total.value, total_source=total.source, weights_bytes=weights.value,
        weights_source=weights.source, activation_bytes=activation.value,
        activation_source=activation.source, overhead_bytes=overhead.value, overhead_source=overhead.source,
        kv_pool_bytes=pool, weights_fit=weights.value < total.value, page_bytes=page,
        kv_bytes_per_token=per_token, num_blocks=blocks,
        token_capacity=blocks * block if page else 0, explain=tuple(steps),
    )


def _given(value: int | None, flag: str) -> Term | None:
    return None if value is None else Term(value, flag)


def _weights(model: ModelSpec, inputs: BudgetInputs) -> Term:
    total, how = weights_bytes(model, inputs.weights_dtype)
    split = inputs.tp * inputs.pp
    dtype = inputs.weights_dtype if inputs.weights_dtype != "auto" else f"checkpoint, {model.quantization or model.dtype}"
    towers = f", vision tower {model.tower_params / 1e9:,.2f}B" if model.tower_params else ""
    source = f"{model.params_total / 1e9:,.1f}B params ({dtype}{towers})" + (f" / {split} GPUs" if split > 1 else "")
    return Term(weights_per_gpu(total, inputs.tp, inputs.pp), source, how + (f", / {split}" if split > 1 else ""))


def _explain(engine: Engine, terms: dict[str, Term], util: float, pool: int, page: int, blocks: int,
             block: int) -> list[Step]:
    steps = [Step(label=name, formula=term.formula or term.source, value=f"{term.value:,} B")
             for name, term in terms.items()]
    formula = engine.formula.replace("util", f"{util:g}")
    for name, term in terms.items():
        formula = formula.replace(name, f"{term.value / GIB:.2f} GiB")
    return steps + [
        Step(label=f"KV pool ({engine.name})", formula=formula, value=f"{pool:,} B"),
        Step(label="page, all layers", formula=f"{block} tokens x KV bytes per token", value=f"{page:,} B"),
        Step(label="blocks", formula=f"floor({max(pool, 0):,} B / {page:,} B)", value=f"{blocks:,}"),
        Step(label="token capacity", formula=f"{blocks:,} blocks x {block} tokens", value=f"{blocks * block:,}"),
    ]
