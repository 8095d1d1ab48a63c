"""Rendering for `kvplan frag`, with the figures the literature reports beside kvplan's."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from kvplan.render.base import origin_line
from kvplan.render.flags import flag
from kvplan.results.frag import FragResult
from kvplan.units import fmt_binary

# Share of KV memory holding token states, Kwon et al. (SOSP 2023), Figure 2.
PAPER = {"fixed": 0.204, "doubling": 0.268, "exact": 0.382, "paged": 0.963}


def render_frag(console: Console, r: FragResult) -> None:
    on = f" on {r.gpu}" + (f" TP {r.tp}" if r.tp > 1 else "") + (f" PP {r.pp}" if r.pp > 1 else "")
    on += f" ({r.engine})" if r.gpu is not None else ""
    console.print(f"[bold]{r.model}[/]{on if r.gpu is not None else ''}: {r.requests:,} requests ({r.workload}, mean {r.mean_input:,.0f} in / "
                  f"{r.mean_output:,.0f} out), KV budget {fmt_binary(r.budget_bytes)} = {r.budget_tokens:,} tokens "
                  f"of {r.kv_bytes_per_token:,} B, max_len {r.max_len:,}, block {r.block_size}"
                  + (f", shared prefix {r.shared_prefix:,}" if r.shared_prefix else ""))
    console.print(admission_line(r))
    table = Table(title="KV memory over the run (time-averaged shares of allocated + external)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    columns = ("Strategy", "Live", "Reserved", "Internal", "External", "Live at peak")
    for name in columns + (("vLLM paper, live",) if r.paper_setting else ()):
        table.add_column(name, justify="left" if name == "Strategy" else "right")
    for row in r.rows:
        paper = PAPER.get(row.strategy)
        cells = [row.strategy, f"{row.live_share:.1%}", f"{row.reservation_share:.1%}", f"{row.internal_share:.1%}",
                 f"{row.external_share:.1%}", f"{row.peak_live_share:.1%}"]
        table.add_row(*cells, *((f"{paper:.1%}" if paper else "-",) if r.paper_setting else ()))
    console.print(table)
    if not r.paper_setting:
        console.print("[dim]The vLLM paper's shares (Kwon et al., Figure 2) are shown only in its setting: "
                      "kvplan frag opt-13b --gpu a100-40gb --max-len 2048.[/]")
    capped = [row.strategy for row in r.rows if r.max_num_seqs is not None and row.peak_concurrency == r.max_num_seqs]
    costs = Table(title="Concurrency and costs" + (f" (peak at max_num_seqs: {', '.join(capped)})" if capped else ""),
                  title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("Strategy", "Mean\nconc.", "Peak", "Wait,\nsteps", "Preempted", "Rejected", "Copied"):
        costs.add_column(name, justify="left" if name == "Strategy" else "right", no_wrap=True)  # "117 GiB" whole
    for row in r.rows:
        costs.add_row(row.strategy, f"{row.mean_concurrency:,.1f}", f"{row.peak_concurrency:,}",
                      f"{row.mean_wait_steps:,.0f}", f"{row.preemptions:,}", f"{row.rejected:,}",
                      fmt_binary(row.copied_bytes))
    console.print(costs)
    expect = Table(title="Analytic expectation against the simulation", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("Strategy", "Expectation", "Expected", "Simulated"):
        expect.add_column(name, justify="right" if name in ("Expected", "Simulated") else "left",
                          no_wrap=name in ("Expected", "Simulated"))
    for row in r.rows:
        fmt = "{:.2f}" if row.strategy in ("paged", "shared") else "{:.1%}"
        expect.add_row(row.strategy, row.expected, fmt.format(row.expected_value), fmt.format(row.simulated_value))
    console.print(expect)
    for row in r.rows:
        if row.strategy == "shared":
            console.print(f"Prefix sharing saved {fmt_binary(int(row.saved_bytes_mean))} on average.")
    if r.sweep:
        sweep = Table(title="Paged waste by block size", title_justify="left", box=box.SIMPLE_HEAD)
        for name in ("Block", "Internal", "Tokens/request", "(B-1)/2", "Mean conc."):
            sweep.add_column(name, justify="right")
        for s in r.sweep:
            sweep.add_row(str(s.block_size), f"{s.internal_share:.1%}", f"{s.internal_tokens_per_request:.2f}",
                          f"{s.expected_tokens_per_request:.1f}", f"{s.mean_concurrency:,.1f}")
        console.print(sweep)
    if r.model_origin:
        console.print(origin_line(r.model_origin))
    console.print("[dim]Live: slots holding token states; reserved: slots for tokens still to come (fixed, exact); "
                  "internal: slots never to be filled; external: free memory outside the largest hole.[/]")


def admission_line(r: FragResult) -> str:
    """The scheduler's caps the run was admitted under, and where each came from:
    'Admission caps: max_num_seqs 1,024, max_num_batched_tokens 8,192 (vllm's defaults for h100-sxm)'."""
    caps = (("max_num_seqs", r.max_num_seqs, r.max_num_seqs_source),
            ("max_num_batched_tokens", r.max_num_batched_tokens, r.max_num_batched_tokens_source))
    shown = [(field, value, source) for field, value, source in caps if value is not None]
    defaults = [field for field, _, source in shown if source == "engine default"]
    words = [f"{field} {value:,}" + (f" ({flag(field)})" if source == "given" else "") for field, value, source in shown]
    if defaults and len(defaults) == len(shown) > 1:
        words[-1] += f" ({r.engine}'s defaults for {r.gpu})"
    elif defaults:
        words = [w + (f" ({r.engine}'s default for {r.gpu})" if w.split()[0] in defaults else "") for w in words]
    missing = [flag(field) for field, value, _ in caps if value is None]
    if missing:
        words.append(("no " + " or ".join(field for field, value, _ in caps if value is None) if shown else "none")
                     + f" (a --kv-gib budget has no engine default; give {' and '.join(missing)})")
    return "Admission caps: " + ", ".join(words)
