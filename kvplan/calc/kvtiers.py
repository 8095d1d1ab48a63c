"""KV offload tiers: host memory (or a local disk) that keeps the KV blocks the GPU pool evicts.

A tier holds prefixes for reuse: a request whose prefix is there reloads it over the host link
instead of recomputing it (`kvplan offload` weighs the two: calc/offload.py). It does not add to the
GPU pool, so the tokens the GPU holds and the requests that run at once are the same with it.

    vLLM native (kv_offloading_size GiB, every rank's together; the OffloadingConnector):
      0.34 (vllm/v1/kv_offload/cpu/spec.py CPUOffloadingSpec.__init__, with worker_kv_bytes_per_block
      from distributed/kv_transfer/kv_connector/v1/offloading/config.py): a chunk is blocks_per_chunk
      (1) GPU blocks of every worker, rounded up to the host page (mmap.PAGESIZE, 4,096 B:
      SharedOffloadRegion.BLOCK_SIZE_ALIGNMENT); an MLA model under TP alone keeps one copy
      (replicated_layout). chunks = int(GiB x 2^30) // chunk bytes.
      0.19 (vllm/v1/kv_offload/cpu/spec.py): page_size x KV tensors x world_size, no rounding.
    LMCache (kv_offloading_backend lmcache): each rank keeps chunks of chunk_size (256) tokens laid
      out [K/V, layers, tokens, heads x head_dim] (lmcache/v1/metadata.py get_shapes) in
      max_local_cpu_size GiB (x 1024^3, cache_engine.py); vLLM 0.19 gives each rank the flag / (TP x PP)
      (config/vllm.py _post_init_kv_transfer_config). A local disk (max_local_disk_size GiB a rank,
      local_disk_backend.py) is a second tier of the same chunks.
    SGLang HiCache (enable_hierarchical_cache): a rank's host pool of hicache_ratio (default 2.0,
      arg_groups/fields/memory.py) x the device pool's tokens, or hicache_size GB (10^9) / bytes
      per token; one page more than that floor, in whole pages (mem_cache/pool_host/base.py
      HostKVCache.__init__); bytes per token (head_dim + v_head_dim) x heads x layers x itemsize
      (pool_host/mha.py), an MLA latent x layers (pool_host/mla.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.errors import InputError
from kvplan.results.base import Step
from kvplan.results.tiers import KvOffloadTier
from kvplan.specs.engines.offload_tiers import BACKENDS, default_backend, has_tiers, newer_rule, owner
from kvplan.specs.engines.registry import Engine
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import GIB, ceil_div

HOST_PAGE_BYTES = 4096  # mmap.PAGESIZE on x86-64 and most aarch64 kernels: vLLM 0.34's chunk alignment
LMCACHE_CHUNK_TOKENS = 256  # lmcache/v1/config.py chunk_size default
HICACHE_RATIO = 2.0  # sglang arg_groups/fields/memory.py: hicache_ratio's default in cache mode
GB = 10**9


@dataclass(frozen=True)
class TierInputs:
    """What the budget knows of one GPU's pool, for sizing a tier beside it."""

    block_bytes: int  # one GPU block, every layer (padding pages included)
    block_size: int
    bytes_per_token: int  # one GPU's KV bytes per token
    gpu_pool_tokens: int
    tp: int
    pp: int
    kv_dtype: str


def backend_of(inputs, engine: Engine) -> str | None:
    """The tier asked for (None: none): the backend given, else the engine's own (vLLM: native,
    SGLang: HiCache) when a size or ratio is."""
    sized = any(getattr(inputs, f) is not None for f in ("kv_offload_gib", "kv_offload_disk_gib", "hicache_ratio",
                                                         "hicache_size_gb"))
    if inputs.kv_offload_backend is None:
        return default_backend(engine) if sized else None
    if not any(inputs.kv_offload_backend in names for names in BACKENDS.values()):
        raise InputError(f"unknown KV offload backend '{inputs.kv_offload_backend}'; choose native, lmcache "
                         "(vLLM) or hicache (SGLang)", "kv_offload_backend")
    return inputs.kv_offload_backend


def _check_engine(backend: str, engine: Engine, has_states: bool) -> None:
    wanted = owner(backend)
    if engine.name != wanted:
        raise InputError(f"the {backend} KV offload tier is {engine_entry(wanted).display_name}'s, not "
                         f"{engine.display_name}'s; give {{engine}} {wanted} or another {{kv_offload_backend}}",
                         "engine", "kv_offload_backend")
    if not has_tiers(engine):
        raise InputError(f"{engine.display_name} {engine.release} has no KV offload tier (0.10.2's CacheConfig has "
                         f"no kv_offloading_size); give a later {{engine}} preset", "engine", "kv_offload_gib")
    if has_states and backend != BACKENDS[wanted][0]:
        raise InputError(f"kvplan sizes the {backend} tier for attention KV only, and this model keeps recurrent "
                         "states; drop {kv_offload_backend} or use native", "kv_offload_backend")


def kv_offload_tiers(model: ModelSpec, gpu: GpuSpec | None, engine: Engine, inputs, t: TierInputs,
                     has_states: bool) -> tuple[KvOffloadTier, ...]:
    """The tiers of `inputs` (BudgetInputs' kv_offload_* and hicache_* fields) beside one GPU's pool."""
    backend = backend_of(inputs, engine)
    if backend is None:
        return ()
    _check_engine(backend, engine, has_states)
    if backend == "native":
        tiers = [_native(model, engine, inputs.kv_offload_gib, t)]
    elif backend == "lmcache":
        if not inputs.kv_offload_gib:
            raise InputError("the LMCache tier needs its size: give {kv_offload_gib}", "kv_offload_gib")
        tiers = [_lmcache(inputs.kv_offload_gib / (t.tp * t.pp), t, "host memory", newer_rule(engine))]
        if inputs.kv_offload_disk_gib:
            tiers.append(_lmcache(inputs.kv_offload_disk_gib, t, "local disk", False))
    else:
        tiers = [_hicache(inputs.hicache_ratio, inputs.hicache_size_gb, t)]
    return tuple(tiers)


def _native(model: ModelSpec, engine: Engine, gib: float | None, t: TierInputs) -> KvOffloadTier:
    if not gib:
        raise InputError("vLLM's native KV offload tier needs its size: give {kv_offload_gib}", "kv_offload_gib")
    newer = newer_rule(engine)
    mla = all(group.kind == "mla" for group in model.layers)
    copies = 1 if newer and mla and t.tp > 1 and t.pp == 1 else t.tp * t.pp  # replicated_layout: one copy
    raw = t.block_bytes * copies
    chunk = ceil_div(raw, HOST_PAGE_BYTES) * HOST_PAGE_BYTES if newer else raw
    size = int(gib * GIB)  # int(kv_offloading_size * (1 << 30))
    chunks = size // chunk
    rule = "0.34 CPUOffloadingSpec" if newer else "0.19 CPUOffloadingSpec"
    pad = f", rounded up to {HOST_PAGE_BYTES:,} B" if newer else ""
    steps = (Step(label="KV offload chunk (vLLM native)", value=f"{chunk:,} B",
                  formula=f"{t.block_bytes:,} B a GPU block x {copies} worker cop{'y' if copies == 1 else 'ies'}{pad}"),
             Step(label="KV offload chunks", formula=f"floor({size:,} B / {chunk:,} B)", value=f"{chunks:,}"),
             Step(label="KV offload tokens", formula=f"{chunks:,} x {t.block_size} tokens", value=f"{chunks * t.block_size:,}"))
    return KvOffloadTier(backend="native", medium="host memory", layout=f"the GPU's {t.block_size}-token blocks, "
                         f"{copies} worker cop{'y' if copies == 1 else 'ies'} a chunk", size_bytes=size, per_rank=False,
                         bytes_per_token=raw // t.block_size, chunk_tokens=t.block_size, chunk_bytes=chunk,
                         chunks=chunks, tokens=chunks * t.block_size, gpu_pool_tokens=t.gpu_pool_tokens,
                         source=f"vLLM {rule} (vllm/v1/kv_offload/cpu/spec.py)", explain=steps)


def _lmcache(gib_per_rank: float, t: TierInputs, medium: str, not_passed: bool) -> KvOffloadTier:
    size = int(gib_per_rank * 1024**3)  # max_local_cpu_size (or max_local_disk_size) GiB, a rank
    chunk = LMCACHE_CHUNK_TOKENS * t.bytes_per_token
    chunks = size // chunk
    note = ("; vLLM 0.34 passes no size to LMCache's own server (LMCacheMPConnector): set its max_local_cpu_size "
            "to this" if not_passed else "")
    steps = (Step(label=f"LMCache chunk ({medium})", formula=f"{LMCACHE_CHUNK_TOKENS} tokens x {t.bytes_per_token:,} B",
                  value=f"{chunk:,} B"),
             Step(label=f"LMCache chunks ({medium}, a rank)", formula=f"floor({gib_per_rank:g} GiB = {size:,} B / {chunk:,} B)", value=f"{chunks:,}"))
    return KvOffloadTier(backend="lmcache", medium=medium, layout="[K/V, layers, tokens, heads x head_dim] a rank",
                         size_bytes=size, per_rank=True, bytes_per_token=t.bytes_per_token,
                         chunk_tokens=LMCACHE_CHUNK_TOKENS, chunk_bytes=chunk, chunks=chunks,
                         tokens=chunks * LMCACHE_CHUNK_TOKENS, gpu_pool_tokens=t.gpu_pool_tokens,
                         source="LMCache lmcache/v1/metadata.py get_shapes, storage_backend/local_cpu_backend.py" + note,
                         explain=steps)


def _hicache(ratio: float | None, size_gb: float | None, t: TierInputs) -> KvOffloadTier:
    if size_gb:
        floor, how = int(size_gb * GB // t.bytes_per_token), f"{size_gb:g} GB / {t.bytes_per_token:,} B"
    else:
        r = HICACHE_RATIO if ratio is None else ratio
        floor, how = int(t.gpu_pool_tokens * r), f"{t.gpu_pool_tokens:,} device tokens x hicache_ratio {r:g}"
    pages = floor // t.block_size + 1  # HostKVCache: one page more, the padding page
    tokens = pages * t.block_size
    steps = (Step(label="HiCache host tokens", formula=f"(floor({how}) // {t.block_size} + 1) x {t.block_size}",
                  value=f"{tokens:,}"),
             Step(label="HiCache host bytes, a rank", formula=f"{tokens:,} x {t.bytes_per_token:,} B",
                  value=f"{tokens * t.bytes_per_token:,} B"))
    return KvOffloadTier(backend="hicache", medium="host memory", layout="K and V per layer per token, a rank",
                         size_bytes=tokens * t.bytes_per_token, per_rank=True, bytes_per_token=t.bytes_per_token,
                         chunk_tokens=t.block_size, chunk_bytes=t.block_size * t.bytes_per_token, chunks=pages,
                         tokens=tokens, gpu_pool_tokens=t.gpu_pool_tokens,
                         source="SGLang mem_cache/pool_host/base.py HostKVCache.__init__, pool_host/mha.py", explain=steps)
