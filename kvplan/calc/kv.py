"""KV-cache size of a model at a context: pure functions of a frozen spec and a few integers.

Per layer group g on one tensor-parallel rank (the numbers of kvplan.specs.layer_kind.LayerKind):
    bytes_per_token_per_layer(g) = kv_bytes_per_token(g, kv_format, tp)
    bytes_per_request(g)         = count(g) * (cached_tokens(g, ctx) * bytes_per_token_per_layer(g)
                                               + state_bytes(g, tp, state_dtype_bytes))
A request's KV is the sum over groups; a batch is that times the batch size; paged KV rounds each
layer's tokens up to whole pages of `block_size` tokens (a Mamba state is one page of its own).
"""

from __future__ import annotations

from kvplan import bounds
from kvplan.errors import InputError
from kvplan.results.base import Step
from kvplan.results.size import KvSize, LayerKv, MhaComparison
from kvplan.specs.layer_kind import LayerKind
from kvplan.specs.layer_text import (bytes_formula, describe, elements_formula, fixed_formula, held_formula,
                                     state_formula)
from kvplan.specs.model import ModelSpec
from kvplan.units import DTYPE_BYTES, KvFormat, ceil_div, kv_format



def compute_dtype(model: ModelSpec) -> str:
    """The dtype activations (and so an 'auto' KV cache) use: fp8 checkpoints compute in bf16."""
    return model.compute_dtype


def resolve_kv_format(model: ModelSpec, kv_dtype: str) -> KvFormat:
    """'auto' follows the engines (vLLM kv_cache_dtype=auto): the model's compute dtype."""
    return kv_format(compute_dtype(model) if kv_dtype == "auto" else kv_dtype)


def check_size_inputs(model: ModelSpec, ctx: int, batch: int, tp: int, block_size: int) -> None:
    bounds.tokens(ctx, "ctx")
    bounds.requests(batch, "batch")
    bounds.block_size(block_size, "block_size")
    if tp < 1 or model.num_attention_heads % tp:
        raise InputError(f"{{tp}} {tp} does not divide {model.name}'s {model.num_attention_heads} "
                         f"attention heads; use a divisor of {model.num_attention_heads}", "tp")
    multiple = max(group.block_multiple for group in model.layers)
    if block_size % multiple:
        raise InputError(f"{{block_size}} {block_size:,} does not hold whole pages of {model.name}'s compressed "
                         f"layers (one latent per {multiple} tokens); give {{block_size}} a multiple of {multiple}"
                         + (f" (its kernels page it by {model.kernel_block_size})" if model.kernel_block_size else ""),
                         "block_size")


def layer_kv(group: LayerKind, ctx: int, fmt: KvFormat, state_dtype: str, tp: int,
             block_size: int, pp: int = 1) -> LayerKv:
    """One layer group's KV on one rank at context `ctx`. Under pipeline parallelism a GPU holds
    its stage's layers: the largest stage has ceil(count / pp) layers of each group."""
    per_token = group.kv_bytes_per_token(fmt, tp)
    state = group.state_bytes(tp, DTYPE_BYTES[state_dtype])
    cached = group.cached_tokens(ctx)
    per_layer = group.held_bytes(ctx, fmt, tp) + state  # cached x per_token, unless entries differ in size
    page = group.page_size_bytes(block_size=block_size, kv_format=fmt, tp=tp,
                                 state_dtype_bytes=DTYPE_BYTES[state_dtype])
    pages = 1 if state else group.held_pages(ctx, block_size)  # a Mamba state is allocated whole, as one page
    count = ceil_div(group.count, pp)
    return LayerKv(
        kind=group.kind, count=count, description=describe(group), cached_tokens=cached,
        bytes_per_token_per_layer=per_token, state_bytes_per_layer=state,
        bytes_per_request_per_layer=per_layer, page_bytes_per_layer=page,
        pages_per_request_per_layer=pages, bytes_per_token=count * per_token,
        bytes_per_request=count * per_layer, paged_bytes_per_request=count * pages * page,
    )


def layers_kv(model: ModelSpec, ctx: int, fmt: KvFormat, tp: int = 1, block_size: int = 16,
              pp: int = 1) -> tuple[LayerKv, ...]:
    state_dtype = compute_dtype(model)
    return tuple(layer_kv(g, ctx, fmt, state_dtype, tp, block_size, pp) for g in model.layers)


def request_bytes(model: ModelSpec, ctx: int, fmt: KvFormat, tp: int = 1, pp: int = 1) -> int:
    """Exact KV bytes of one request of `ctx` tokens on one GPU (tensor rank, pipeline stage)."""
    return sum(layer.bytes_per_request for layer in layers_kv(model, ctx, fmt, tp, pp=pp))


def paged_request_bytes(model: ModelSpec, ctx: int, fmt: KvFormat, tp: int = 1, block_size: int = 16,
                        pp: int = 1) -> int:
    """KV bytes of one request rounded up to whole pages, per layer, on one GPU."""
    return sum(layer.paged_bytes_per_request for layer in layers_kv(model, ctx, fmt, tp, block_size, pp))


def _without_gqa(model: ModelSpec, ctx: int, fmt: KvFormat, tp: int, per_request: int) -> MhaComparison:
    state_dtype = compute_dtype(model)
    groups = [g.mha_equivalent(model.num_attention_heads) for g in model.layers]
    layers = [layer_kv(g, ctx, fmt, state_dtype, tp, 1) for g in groups]
    mha_request = sum(layer.bytes_per_request for layer in layers)
    return MhaComparison(bytes_per_token=sum(layer.bytes_per_token for layer in layers),
                         bytes_per_request=mha_request, ratio=mha_request / per_request)


def _explain(model: ModelSpec, fmt: KvFormat, tp: int, ctx: int, batch: int, layers: tuple[LayerKv, ...],
             per_request: int) -> list[Step]:
    steps = []
    for group, layer in zip(model.layers, layers):
        name = f"{layer.count} {layer.kind}"
        elements = group.kv_elements_per_token(tp)
        if elements:
            fixed = group.fixed_bytes_per_token(tp)
            extra = f" + {fixed_formula(group, tp)}" if fixed else ""
            steps.append(Step(label=f"{name}: per token per layer",
                              formula=f"{elements_formula(group, tp)} = "
                                      f"{bytes_formula(group, fmt.name) or fmt.formula(elements)}{extra}",
                              value=f"{layer.bytes_per_token_per_layer:,} B"))
            steps.append(Step(label=f"{name}: tokens held",
                              formula=held_formula(group, ctx), value=f"{layer.cached_tokens:,}"))
        if layer.state_bytes_per_layer:
            steps.append(Step(label=f"{name}: state per layer",
                              formula=f"{state_formula(group, tp)} x "
                                      f"{DTYPE_BYTES[compute_dtype(model)]} B ({compute_dtype(model)})",
                              value=f"{layer.state_bytes_per_layer:,} B"))
        held = f"{layer.cached_tokens:,} x {layer.bytes_per_token_per_layer:,} B" if elements else ""
        state = f"{layer.state_bytes_per_layer:,} B" if layer.state_bytes_per_layer else ""
        steps.append(Step(label=f"{name}: per request",
                          formula=f"{layer.count} x ({' + '.join(t for t in (held, state) if t)})",
                          value=f"{layer.bytes_per_request:,} B"))
    terms = " + ".join(f"{layer.bytes_per_request:,}" for layer in layers)
    steps.append(Step(label="per request", formula=f"{terms} B", value=f"{per_request:,} B"))
    steps.append(Step(label="per batch", formula=f"{batch:,} x {per_request:,} B",
                      value=f"{batch * per_request:,} B"))
    return steps


def kv_size(model: ModelSpec, ctx: int, *, batch: int = 1, kv_dtype: str = "auto", tp: int = 1,
            block_size: int | None = None) -> KvSize:
    """The KV cache of `batch` requests of `ctx` tokens each, per GPU and across `tp` GPUs; pages of
    `block_size` tokens (None: the block the model's kernels require, else 16)."""
    block_size = (model.kernel_block_size or 16) if block_size is None else block_size
    check_size_inputs(model, ctx, batch, tp, block_size)
    fmt = resolve_kv_format(model, kv_dtype)
    layers = layers_kv(model, ctx, fmt, tp, block_size)
    per_request = sum(layer.bytes_per_request for layer in layers)
    per_token = sum(layer.bytes_per_token for layer in layers)
    paged = sum(layer.paged_bytes_per_request for layer in layers)
    return KvSize(
        model_origin=model.origin,
        model=model.name, display_name=model.display_name, ctx_tokens=ctx, batch=batch, tp=tp,
        block_size=block_size, kv_dtype=fmt.name, kv_dtype_note="; ".join(n for n in (fmt.note, *(f"its layers store {layout}" for layout in model.stored_layouts)) if n),
        state_dtype=compute_dtype(model), max_context=model.max_context,
        beyond_max_context=ctx > model.max_context, layers=layers,
        bytes_per_token_per_gpu=per_token, bytes_per_token_all_gpus=tp * per_token,
        bytes_per_request_per_gpu=per_request, bytes_per_request_all_gpus=tp * per_request,
        bytes_per_request_unsharded=request_bytes(model, ctx, fmt) if tp > 1 else per_request,
        bytes_per_batch_per_gpu=batch * per_request, bytes_per_batch_all_gpus=batch * tp * per_request,
        page_bytes_per_gpu=sum(layer.count * layer.page_bytes_per_layer for layer in layers),
        pages_per_request=sum(layer.count * layer.pages_per_request_per_layer for layer in layers),
        paged_bytes_per_request_per_gpu=paged, paged_bytes_per_batch_per_gpu=batch * paged,
        without_gqa=_without_gqa(model, ctx, fmt, tp, per_request),
        explain=tuple(_explain(model, fmt, tp, ctx, batch, layers, per_request)),
    )
