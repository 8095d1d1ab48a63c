"""Rendering for `kvplan plan --disaggregated`: the two roles, each as a plan."""

from __future__ import annotations

from kvplan.render.capacity import render_plan
from kvplan.results.disagg import DisaggPlan


def render_disaggregated(console, r: DisaggPlan, explain: bool = False) -> None:
    """Both roles, each as `kvplan plan` prints a plan, under a line that says how its load was counted."""
    console.print(f"Prefill workers: {r.prefill_requests:,} request(s) in prefill at once (ceil("
                  f"{r.max_num_batched_tokens:,} batched tokens / {r.prompt_tokens:,}-token prompt)), each holding "
                  "its prompt's KV until a decode worker takes it", markup=False)
    render_plan(console, r.prefill, explain=explain)
    console.print()
    console.print(f"Decode workers: {r.decode.concurrency:,} concurrent requests at their full context of "
                  f"{r.decode.ctx_tokens:,} tokens", markup=False)
    render_plan(console, r.decode, explain=explain)
    if r.role_note:
        console.print(r.role_note, markup=False)
    console.print("[dim]Memory only: the prefill workers' count for an arrival rate is a question of compute.[/]")
