"""A KV offload tier beside the GPU's pool (vLLM's CPU offloading, LMCache, SGLang HiCache)."""

from __future__ import annotations

from kvplan.results.base import Result, Step


class KvOffloadTier(Result):
    """Host memory (or a local disk) that keeps KV blocks the GPU pool evicts. It holds prefixes for
    reuse: a hit reloads them instead of recomputing them. The GPU pool, and with it the number of
    requests that run at once, is the same with the tier as without it."""

    backend: str  # "native" (vLLM OffloadingConnector), "lmcache", "hicache" (SGLang)
    medium: str  # "host memory" or "local disk"
    layout: str  # how the tier lays a token out, in words
    size_bytes: int  # the tier's bytes as the engine reads its setting (every rank's, or one rank's: per_rank)
    per_rank: bool  # size_bytes is one GPU worker's (LMCache, HiCache); False: all of the replica's
    bytes_per_token: int  # in the tier's layout, for what size_bytes covers
    chunk_tokens: int  # tokens in one unit the tier allocates (a block, a chunk, a page)
    chunk_bytes: int  # bytes of that unit, padding included
    chunks: int  # units that fit
    tokens: int  # tokens the tier holds: chunks x chunk_tokens (HiCache: its pages x page size)
    gpu_pool_tokens: int  # the GPU pool's, unchanged by the tier
    source: str  # the engine file and function the rule follows
    breakeven_prefix_tokens: int | None = None  # from this prefix on a reload beats recompute (None: never, or no GPU)
    verdict_basis: str = ""  # the link and the prefill rate of that verdict
    explain: tuple[Step, ...] = ()
