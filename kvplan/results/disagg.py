"""The two roles of a disaggregated deployment (`kvplan plan --disaggregated`)."""

from __future__ import annotations

from kvplan.results.base import Result
from kvplan.results.capacity import PlanResult


class DisaggPlan(Result):
    """`kvplan plan --disaggregated`: prefill workers and decode workers, each planned on its own budget."""

    prompt_tokens: int
    max_num_batched_tokens: int  # a prefill worker's step: the prompt tokens it runs at once
    prefill_requests: int  # requests in prefill on a worker at once: ceil(max_num_batched_tokens / prompt), >= 1
    prefill: PlanResult  # the smallest deployment holding them at the prompt's length
    decode: PlanResult  # the smallest holding every concurrent request at its full context
    role_note: str = ""  # whether the engine sizes the roles apart, and how its two servers are joined
