"""Results of the capacity commands: budget, batch, fit, plan, and the every-model overview."""

from __future__ import annotations

from kvplan.results.base import Result, Step
from kvplan.results.tiers import KvOffloadTier


class MemoryBudget(Result):
    """One GPU's memory, term by term, and the KV pool an engine leaves in it."""

    engine: str  # as given: a name (its default preset) or a preset, 'vllm==0.19'
    engine_release: str  # the releases the preset encodes ("" for the textbook budget)
    engine_formula: str
    engine_source: str
    model: str
    gpu: str
    tp: int
    pp: int
    dtype: str  # what the engine serves weights and activations in
    dtype_source: str  # why: the checkpoint's, the engine's rule for --dtype auto, or given
    dtype_cast: bool  # the engine casts the checkpoint's weights to dtype as it loads them
    weights_dtype: str  # the weights format asked for: auto (the checkpoint's) or a format given
    start_refusal: str = ""  # why the engine refuses these settings outright ("" when it does not)
    kv_dtype: str
    block_size: int
    max_num_batched_tokens: int  # the scheduler's caps the budget was computed for (given, or the engine's)
    max_num_seqs: int
    chunked_prefill: bool = True  # prompts longer than max_num_batched_tokens are split into chunks
    default_batched_tokens: int = 0  # the engine's own max_num_batched_tokens default here (what a command omits)
    default_chunked_prefill: bool = True  # and its chunked prefill default
    sampler: str | None = None  # the top-k/top-p sampler asked for ("flashinfer", "pytorch"); None: the release's
    max_model_len: int = 0  # the max_model_len the profile and the token count assumed
    padding_layers: int = 0  # layers vLLM adds to fill its KV cache groups: memory that holds no token
    num_speculative_tokens: int = 0  # draft tokens a step verifies (vLLM's speculative_config)
    prefix_caching: bool | None = None  # asked for (None: the release's default)
    state_pages: int = 1  # pages a request takes in each recurrent-state group (vLLM MambaSpec)
    speculative_method: str | None = None  # the drafter's method (vLLM speculative_config); None: no drafter
    draft_model: str | None = None  # the draft model's name (method draft_model)
    draft_weights_bytes: int = 0  # the drafter's weights per GPU, inside weights_bytes (0 where weights were given)
    draft_weights_source: str = ""
    draft_kv_layers: int = 0  # the drafter's attention layers in the KV pool
    lookahead_tokens: int = 0  # slots a running request holds beyond its tokens (capped at max_model_len)
    allow_long_max_len: bool  # a max_model_len past the model's context is let start (the engine's switch)
    util: float
    util_name: str  # the engine's own name for its memory fraction
    util_source: str
    util_cut: str  # how the engine cut the fraction before sizing ('x 0.85 for ...'); '' where it did not
    total_bytes: int
    total_source: str
    weights_bytes: int
    weights_source: str
    activation_bytes: int
    activation_source: str
    overhead_bytes: int
    overhead_source: str
    kv_pool_bytes: int
    weights_fit: bool
    page_bytes: int
    kv_bytes_per_token: int
    num_blocks: int
    token_capacity: int
    explain: tuple[Step, ...]
    lora_bytes: int = 0  # vLLM's LoRA buffers per GPU (--enable-lora), counted beside the weights
    lora_source: str = ""
    lora_formula: str = ""
    kv_offload: tuple[KvOffloadTier, ...] = ()  # tiers beside the pool (host memory, disk): the pool is unchanged
    cpu_offload_bytes: int = 0  # weights kept on the host (vLLM --cpu-offload-gb), already out of weights_bytes
    # The settings the terms were planned with, for the deploy line (calc/deployterms.py): LoRA's slots,
    # the draft model's repo, the multimodal limits, SGLang's HiCache ratio or size
    enable_lora: bool = False
    max_loras: int = 1
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None
    draft_model_repo: str | None = None  # what the engine loads the draft model from
    limit_mm_per_prompt: tuple[tuple[str, int], ...] | None = None
    mm_encoder_tp_mode: str | None = None
    hicache_ratio: float | None = None
    hicache_size_gb: float | None = None
    disaggregation_mode: str | None = None  # a disaggregated worker's role (SGLang --disaggregation-mode)

    @property
    def usable_pool_bytes(self) -> int:
        """The pool requests can use: kv_pool_bytes, which is negative when the other terms
        overrun the budget (by how much is worth showing), clamped at 0."""
        return max(self.kv_pool_bytes, 0)


class StartCheck(Result):
    """Whether the engine starts: one request of max_model_len must fit the KV pool (vLLM refuses
    otherwise; SGLang starts on any pool of 7 tokens and cuts requests to it), and the longest
    max_model_len that would."""

    starts: bool
    engine: str  # the engine's display name
    max_model_len: int
    needed_bytes: int  # one request of max_model_len on one GPU, as the engine counts it at start-up
    kv_pool_bytes: int
    largest_max_model_len: int  # max_model_len itself when it starts; 0: none starts
    no_pool: bool  # the weights and runtime leave no KV pool at all: no max_model_len helps
    model_context: int  # the longest max_model_len the model's config allows, as the engine derives it
    beyond_context: bool  # max_model_len is past it and the engine refuses (its switch is not set)
    long_context_switch: str  # the environment setting that lets it start anyway ("" where none)
    refused: bool = False  # the engine refuses the settings themselves (reason says which); no length helps
    reason: str  # why it does not start ("" when it does)
    engine_max_len_flag: str  # the engine's own flag for max_model_len ("" when it has no command)
    cut_at: int = 0  # SGLang: the longest request it admits where the pool holds fewer than max_model_len tokens
    pool_tokens: int = 0  # the tokens the pool holds


class StrategyRow(Result):
    """Requests that fit under one allocation strategy, at average and at peak occupancy."""

    strategy: str
    rule: str
    reserved_tokens_avg: int
    bytes_per_request_avg: int
    concurrency_avg: int
    reserved_tokens_peak: int
    bytes_per_request_peak: int
    concurrency_peak: int


class Roofline(Result):
    """One decode step on one GPU at a batch: bytes over bandwidth vs FLOPs over peak."""

    batch: int
    context_tokens: int
    hbm_bandwidth_gbps: float
    peak_tflops: float
    peak_source: str
    weight_bytes: int
    kv_bytes: int
    flops: int
    memory_time_s: float
    compute_time_s: float
    step_time_s: float
    bound: str
    tokens_per_s: float
    compute_bound_batch: int


class BatchResult(Result):
    """`kvplan batch`: the budget, the strategies side by side, the engine's own figures."""

    model: str
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
    gpu: str
    in_tokens: int
    out_tokens: int
    avg_tokens: int
    peak_tokens: int
    max_len: int
    budget: MemoryBudget
    strategies: tuple[StrategyRow, ...]
    max_concurrency_at_max_len: float
    start: StartCheck
    roofline: Roofline | None
    longest_ctx_tokens: int | None = None  # the longest context at which longest_ctx_requests requests fit
    longest_ctx_requests: int | None = None  # --max-ctx N: the requests that question was asked for
    default_engine_kv_pool_bytes: int | None = None  # the default engine's pool, nothing overridden
    default_engine_paged: StrategyRow | None = None  # and its paged row, beside an overridden budget


class Knob(Result):
    """One change and what it gives: the concurrency at the workload after the change."""

    change: str  # in words
    fix: dict[str, int | str]  # the settings it makes, by field name; rendered as the reader's flags
    kv_pool_bytes: int
    concurrency: int
    fits: bool
    command: str = ""  # the engine command after the change, when it fits ("" otherwise)


class FitResult(Result):
    """`kvplan fit`: the whole memory breakdown of one GPU, a verdict, and what would fit."""

    model: str
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
    gpu: str
    ctx_tokens: int
    max_len: int
    target_concurrency: int
    budget: MemoryBudget
    bytes_per_request: int
    concurrency: int
    kv_used_bytes: int
    free_bytes: int
    held_back_bytes: int = 0  # what util keeps back: total - weights - activation - overhead - pool
    start: StartCheck
    fits: bool
    verdict: str
    knobs: tuple[Knob, ...]
    command: str  # the engine command that deploys it, only when it starts and fits ("" otherwise)
    command_note: str = ""  # what the command cannot say (a weights format the engine does not cast to)


class Deployment(Result):
    """One way to serve the load: replicas of tp x pp GPUs."""

    kv_dtype: str
    tp: int
    pp: int
    concurrency_per_replica: int  # what fits, capped at max_num_seqs
    fitting_per_replica: int  # what the pool holds
    max_num_seqs: int
    replicas: int
    gpus: int
    nodes: int
    kv_pool_bytes_per_gpu: int
    bytes_per_request_per_gpu: int
    max_len: int
    command: str


class SmallerFleet(Result):
    """The most replicas of one shape on fewer GPUs than the best deployment, and what they hold."""

    kv_dtype: str
    tp: int
    pp: int
    replicas: int  # floor((best GPUs - 1) / (tp x pp))
    gpus: int
    concurrency_per_replica: int  # min(fitting, max_num_seqs); 0 when the shape does not serve
    concurrency: int  # replicas x concurrency_per_replica: below the concurrency asked
    starts: bool  # the engine starts at max_len
    fitting_per_replica: int  # requests of ctx the pool holds (0: not one)
    needed_bytes: int  # one request of max_len at start-up, per GPU
    kv_pool_bytes: int  # the pool it must fit, per GPU


class SmallerFleets(Result):
    """Why the best deployment's GPU count is the least, for one KV dtype."""

    kv_dtype: str
    best_gpus: int  # every fleet here has fewer
    shapes: int  # shapes (TP x PP) with a replica on fewer GPUs: each checked
    not_serving: int  # of them, those that do not start at max_len or hold no request
    most_held: int  # the most any of them holds at once: below the concurrency asked
    nearest: tuple[SmallerFleet, ...]  # shown: the best's shape one replica fewer, the most held, the largest idle


class PlanResult(Result):
    """`kvplan plan`: the smallest deployment for N concurrent requests at a context, per KV dtype."""

    model: str
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
    gpu: str
    concurrency: int
    ctx_tokens: int
    max_len: int
    gpus_per_node: int
    cross_node_tp: bool
    searched: str  # the space searched, in words
    best: tuple[Deployment, ...]
    runners_up: tuple[Deployment, ...]  # fewer pipeline stages for more GPUs, per KV dtype
    candidates: tuple[Deployment, ...]
    infeasible: tuple[str, ...]
    smaller: tuple[SmallerFleets, ...] = ()  # per KV dtype, the fleets of fewer GPUs than the best
    explain: tuple[Step, ...] = ()


class OverviewRow(Result):
    """`kvplan batch --gpu G` without a model: one model at the smallest TP that serves a request."""

    model: str
    params_total: int
    tp: int | None
    weights_bytes_per_gpu: int | None
    kv_pool_bytes_per_gpu: int | None
    concurrency_avg: int
    concurrency_peak: int
    note: str


class Overview(Result):
    """`kvplan batch --gpu G`: every model on one GPU, with the settings the header names."""

    gpu: str
    engine: str
    kv_dtype: str
    in_tokens: int
    out_tokens: int
    rows: tuple[OverviewRow, ...]
