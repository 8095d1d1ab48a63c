"""`kvplan log`: an engine's start-up log read back, each figure beside kvplan's own."""

from __future__ import annotations

from kvplan.results.base import Result, Step


class LoggedFigure(Result):
    """One figure the log states: as logged, as kvplan reproduces it from the log's own terms (an
    interval where the log rounds), as kvplan predicts it from defaults, and the rule it follows."""

    name: str  # "weights", "activation", "non-torch", "CUDA graphs", "KV cache", "token capacity"...
    unit: str  # "GiB", "tokens", "x"
    logged: float
    reproduced_low: float | None = None  # from the log's own terms, at either end of its rounding
    reproduced_high: float | None = None
    predicted: float | None = None  # from defaults (the settings the log states, kvplan's rules)
    error: float | None = None  # (predicted - logged) / logged
    rule: str = ""  # which term of kvplan's budget, and its source

    @property
    def reproduced(self) -> bool | None:
        """Whether the logged figure lies within what the log's own terms give (None: not computed)."""
        if self.reproduced_low is None or self.reproduced_high is None:
            return None
        return self.reproduced_low <= self.logged <= self.reproduced_high


class LogReport(Result):
    """A start-up log explained: what it states, each figure against kvplan's rules, and the next
    question answered from its measured terms."""

    source: str  # the file, or "stdin"
    engine: str  # the preset the log's release selects ("vllm==0.19")
    release: str  # as the log states it, or "" where it does not
    model: str  # kvplan's model
    model_in_log: str  # as the log names it
    gpu: str  # kvplan's GPU, or "" where the log's is not one kvplan holds
    gpu_in_log: str
    tp: int
    pp: int
    kv_dtype: str
    max_model_len: int
    block_size: int
    max_num_seqs: int
    gpu_memory_utilization: float
    figures: tuple[LoggedFigure, ...]
    kv_tokens: int  # the logged token capacity
    tokens_per_request_at_max_num_seqs: int  # logged capacity / max_num_seqs
    preempts_at: str  # when max_num_seqs requests preempt, in words
    target: int | None = None  # --target N: concurrent requests of max_model_len asked for
    target_util: float | None = None  # the utilization that fits them (None: none does)
    target_max_model_len: int | None = None  # the longest max_model_len at which N fit at the logged utilization
    # the log's measured terms as a plan's inputs (--from-log, --to-check); None where it states too few
    util: float | None = None  # the utilization (SGLang: mem_fraction_static) the log states
    max_num_batched_tokens: int | None = None
    allow_long_max_len: bool = False  # the log started past the model's context: the engine's switch was set
    num_speculative_tokens: int = 0
    measured_total_gib: float | None = None
    measured_weights_gib: float | None = None
    measured_rest_gib: float | None = None  # the non-KV memory beside the weights
    guarded_kv_tokens: int | None = None  # the capacity kvplan gives the measured terms (--to-check's floor)
    notes: tuple[str, ...] = ()
    explain: tuple[Step, ...] = ()
