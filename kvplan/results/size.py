"""Results of `kvplan size`: the KV cache of one model at one context."""

from __future__ import annotations

from kvplan.results.base import Result, Step


class LayerKv(Result):
    """One layer group's share of the KV cache, on one GPU (one tensor-parallel rank)."""

    kind: str
    count: int
    description: str
    cached_tokens: int
    bytes_per_token_per_layer: int
    state_bytes_per_layer: int
    bytes_per_request_per_layer: int
    page_bytes_per_layer: int
    pages_per_request_per_layer: int
    bytes_per_token: int
    bytes_per_request: int
    paged_bytes_per_request: int


class MhaComparison(Result):
    """The same model with every KV head un-shared (MHA) and MLA decompressed."""

    bytes_per_token: int
    bytes_per_request: int
    ratio: float


class KvSize(Result):
    """KV cache of one model at one context. `*_per_gpu` is one tensor-parallel rank;
    `*_all_gpus` adds the ranks up (replicated heads and MLA latents counted on every rank)."""

    model: str
    model_origin: str | None = None  # where the model's spec came from (database, path, cache, Hub)
    display_name: str
    ctx_tokens: int
    batch: int
    tp: int
    block_size: int
    kv_dtype: str
    kv_dtype_note: str
    state_dtype: str
    max_context: int
    beyond_max_context: bool
    layers: tuple[LayerKv, ...]
    bytes_per_token_per_gpu: int
    bytes_per_token_all_gpus: int
    bytes_per_request_per_gpu: int
    bytes_per_request_all_gpus: int
    bytes_per_request_unsharded: int
    bytes_per_batch_per_gpu: int
    bytes_per_batch_all_gpus: int
    page_bytes_per_gpu: int
    pages_per_request: int
    paged_bytes_per_request_per_gpu: int
    paged_bytes_per_batch_per_gpu: int
    without_gqa: MhaComparison
    explain: tuple[Step, ...]
