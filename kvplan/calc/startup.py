"""Will the engine start? vLLM refuses to start when one request of max_model_len does not fit its
KV pool (vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory: "To serve at least one request
with the model's max seq len ... KV cache is needed, which is larger than the available KV cache
memory"), and names the longest max_model_len that would (estimate_max_model_len, a binary search
over the same sum). How one request is counted is the engine's start rule (kvplan.specs.engines).
SGLang starts on any pool of 7 tokens or more and cuts requests to it instead (tp_worker.py:
max_req_len = min(context_len - 1, max_total_num_tokens - 1), max_req_input_len = max_req_len - 5,
both asserted positive: "Memory pool size is too small")."""

from __future__ import annotations

from kvplan.bounds import MAX_TOKENS
from kvplan.calc.kv import compute_dtype, paged_request_bytes, resolve_kv_format
from kvplan.calc.kvgroups import cached_kinds, kv_groups, padded_state_page
from kvplan.calc.kvpacked import budget_packing
from kvplan.calc.search import largest_true
from kvplan.results.capacity import MemoryBudget, StartCheck
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.model import ModelSpec
from kvplan.units import DTYPE_BYTES, KvFormat, ceil_div, fmt_binary


def max_memory_usage_bytes(model: ModelSpec, budget: MemoryBudget, max_len: int) -> int:
    """vLLM V1's start-up sum (check_enough_kv_cache_memory over each layer's max_memory_usage_bytes):
    a windowed layer counts window - 1 + max_num_batched_tokens tokens and one page more, a chunked
    layer its chunk + max_num_batched_tokens, a full layer max_model_len, each at its block size once
    pages of different sizes are unified (block_sizes); a state its page, padded to the attention
    page where the engine unifies them (MambaSpec page_size_padded), times the pages one request holds
    (budget.state_pages: 1 + num_speculative_tokens in mamba_cache_mode 'none', 2 + them in 'align').
    Caches packed by block (DeepSeek-V4 under vLLM 0.34) are counted by group, as
    get_kv_cache_configs checks them (_max_memory_usage_bytes_from_groups: a block's bytes x the blocks
    one request takes, summed over groups)."""
    if packing := budget_packing(model, budget):
        layout, in_flight = packing
        return layout.bytes_per_block * layout.blocks_per_request(max_len, in_flight)
    engine = engine_entry(budget.engine)
    fmt = resolve_kv_format(model, budget.kv_dtype)
    state_bytes = DTYPE_BYTES[compute_dtype(model)]
    blocks = block_sizes(model, budget, fmt)
    padded = (padded_state_page(model, fmt, budget.tp, budget.block_size, state_bytes, budget.num_speculative_tokens)
              if engine.hybrid_pages else 0)
    total = 0
    for group, block in zip(model.layers, blocks):
        count = ceil_div(group.count, budget.pp)
        if padded and not group.is_attention and group.state_elements(1):
            total += count * padded * budget.state_pages
            continue
        total += count * group.max_memory_bytes(
            max_model_len=max_len, max_num_batched_tokens=budget.max_num_batched_tokens, block_size=block,
            kv_format=fmt, tp=budget.tp, state_dtype_bytes=state_bytes)
    return total


def block_sizes(model: ModelSpec, budget: MemoryBudget, fmt: KvFormat) -> list[int]:
    """Each layer group's block size: the budget's, or, where vLLM groups the layers and their pages
    differ in size, the one unify_kv_cache_spec_page_size gives it (Gemma-4's full layers: 32)."""
    base = [budget.block_size] * len(model.layers)
    engine = engine_entry(budget.engine)
    layout = (kv_groups(model, fmt, budget.tp, budget.block_size, states=engine.hybrid_pages,
                        num_spec=budget.num_speculative_tokens)
              if engine.kv_groups else None)
    if layout is None:
        return base
    unified = dict(zip(map(id, cached_kinds(model)), layout.block_sizes))
    return [unified.get(id(group), block) for group, block in zip(model.layers, base)]


def paged_request_bytes_at(model: ModelSpec, budget: MemoryBudget, max_len: int) -> int:
    """One request of max_len tokens as it is held: each layer's tokens in whole pages."""
    fmt = resolve_kv_format(model, budget.kv_dtype)
    return paged_request_bytes(model, max_len, fmt, budget.tp, budget.block_size, budget.pp)


POOL_MIN_TOKENS = 7  # SGLang: max_total_num_tokens - 1 - 5 >= 1 (tp_worker.py max_req_input_len)


def pool_tokens_bytes(model: ModelSpec, budget: MemoryBudget, max_len: int) -> int:
    """SGLang's start-up need: a pool of 7 tokens, whatever max_model_len (a longer request is cut to
    the pool, not refused at start)."""
    return paged_request_bytes_at(model, budget, POOL_MIN_TOKENS)


START_RULES = {"max_memory_usage": max_memory_usage_bytes, "paged_request": paged_request_bytes_at,
               "pool_tokens": pool_tokens_bytes}


def start_bytes(model: ModelSpec, budget: MemoryBudget, max_len: int) -> int:
    """The KV bytes one request of max_model_len = max_len needs at start-up, on one GPU, counted by
    the engine's start rule."""
    return START_RULES[engine_entry(budget.engine).start_rule](model, budget, max_len)


def startup(model: ModelSpec, budget: MemoryBudget, max_len: int) -> StartCheck:
    """Whether the engine starts with max_model_len = max_len on this budget, and if not, the longest
    max_model_len that would."""
    engine = engine_entry(budget.engine)
    needed = start_bytes(model, budget, max_len)
    pool = budget.usable_pool_bytes
    no_pool = not budget.weights_fit or pool == 0
    beyond = max_len > model.max_context and bool(engine.long_context_switch) and not budget.allow_long_max_len
    refused = bool(budget.start_refusal)
    starts = not no_pool and needed <= pool and not beyond and not refused
    cut = engine.start_rule == "pool_tokens" and starts and budget.token_capacity < max_len
    cut_at = budget.token_capacity - 1 if cut else 0  # SGLang's max_req_len
    if starts:
        longest, reason = max_len, ""
    elif refused:
        longest, reason = 0, budget.start_refusal
    elif beyond:
        longest = largest_true(lambda n: start_bytes(model, budget, n) <= pool, 1, model.max_context)
        reason = f"max_model_len {max_len:,} is past {model.name}'s context of {model.max_context:,} tokens"
    elif no_pool:
        longest = 0
        reason = (f"no KV pool: the weights ({fmt_binary(budget.weights_bytes)}) and runtime leave nothing of "
                  f"{fmt_binary(budget.total_bytes)}")
    elif engine.start_rule == "pool_tokens":
        longest = 0  # no max_model_len helps: the pool itself is too small
        reason = (f"the pool holds {budget.token_capacity:,} tokens and {engine.display_name} needs "
                  f"{POOL_MIN_TOKENS} ('Memory pool size is too small')")
    else:
        longest = largest_true(lambda n: start_bytes(model, budget, n) <= pool, 1, max_len)
        reason = (f"one request of max_model_len {max_len:,} needs {fmt_binary(needed)} of KV, the pool holds "
                  f"{fmt_binary(pool)}")
    flag = engine.command.flags["max_model_len"] if engine.command else ""
    return StartCheck(starts=starts, engine=engine.display_name, max_model_len=max_len, needed_bytes=needed,
                      kv_pool_bytes=pool, largest_max_model_len=max(longest, 0), no_pool=no_pool,
                      model_context=model.max_context, beyond_context=beyond, refused=refused,
                      long_context_switch=engine.long_context_switch, reason=reason, engine_max_len_flag=flag,
                      cut_at=cut_at, pool_tokens=budget.token_capacity)


def max_context(model: ModelSpec, fmt: KvFormat, budget: MemoryBudget, batch: int) -> int:
    """The longest context at which `batch` requests still fit the pool, paged (0: not even 1 token)."""
    def fits(ctx: int) -> bool:
        per_request = paged_request_bytes(model, ctx, fmt, budget.tp, budget.block_size, budget.pp)
        return batch * per_request <= budget.kv_pool_bytes

    return max(largest_true(fits, 1, MAX_TOKENS), 0)
