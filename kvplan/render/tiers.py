"""The lines batch and fit print for KV offload tiers and weights kept on the host: figures from the
budget, no arithmetic but units."""

from __future__ import annotations

from kvplan.render.flags import flag
from kvplan.results.capacity import MemoryBudget
from kvplan.results.tiers import KvOffloadTier
from kvplan.units import GIB

NAMES = {"native": "vLLM native CPU offload", "lmcache": "LMCache", "hicache": "SGLang HiCache"}


def tier_line(t: KvOffloadTier) -> str:
    whose = "a rank" if t.per_rank else "every rank's together"
    line = (f"KV offload tier ({NAMES[t.backend]}, {t.medium}, {t.size_bytes / GIB:,.2f} GiB {whose}): "
            f"{t.tokens:,} tokens on the {'host' if t.medium == 'host memory' else 'disk'} in {t.chunks:,} chunks of "
            f"{t.chunk_tokens:,} tokens ({t.bytes_per_token:,} B a token), GPU pool unchanged "
            f"({t.gpu_pool_tokens:,} tokens, the same concurrency); a prefix found there is reloaded, not recomputed")
    if t.breakeven_prefix_tokens is not None:
        line += f": reloading wins from {t.breakeven_prefix_tokens:,} tokens ({t.verdict_basis}; `kvplan offload`)"
    return line + "."


def host_lines(b: MemoryBudget) -> list[str]:
    """One line per tier, and one for weights on the host, which are not KV."""
    lines = [tier_line(t) for t in b.kv_offload]
    if b.cpu_offload_bytes:
        lines.append(f"Weights on the host ({flag('cpu_offload_gib')} {b.cpu_offload_bytes / GIB:g}): up to "
                     f"{b.cpu_offload_bytes / GIB:,.2f} GiB of each GPU's weights stay in host memory and stream in "
                     "each step; they are weights, not KV, and no KV tier.")
    return lines

