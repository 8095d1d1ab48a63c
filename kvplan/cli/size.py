"""`kvplan size`: the KV cache of a model at a context."""

from __future__ import annotations

from typing import Annotated

import typer

from kvplan.cli.app import OUTPUT, DebugOpt, JsonOpt, OfflineOpt, SpecsOpt, app, console, handle_errors, read_option
from kvplan import bounds


@app.command()
@handle_errors
def size(
    model: Annotated[str, typer.Argument(help="Model name, alias or Hugging Face id (see `kvplan models`).")],
    ctx: Annotated[int, read_option(bounds.tokens, "--ctx", "-c", metavar="TOKENS",
                                     help="Context length in tokens: 4096, 32k (k = 1024), 1m.")] = 4096,
    batch: Annotated[int, read_option(bounds.requests, "--batch", "-b", metavar="N", help="Concurrent requests of that context.")] = 1,
    kv_dtype: Annotated[str, typer.Option(
        "--kv-dtype", help="KV storage: auto (the model's dtype), bf16, fp16, fp32, fp8, int8, int4.")] = "auto",
    tp: Annotated[int, read_option(bounds.gpus, "--tp", metavar="N", help="Tensor-parallel GPUs sharing the KV heads.")] = 1,
    block_size: Annotated[int | None, read_option(bounds.block_size, "--block-size", metavar="TOKENS", help=(
        "Tokens per KV page (default 16, or the block the model's kernels require: 256 for DeepSeek-V4)."))] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show each formula with the numbers plugged in.",
                                          rich_help_panel=OUTPUT)] = False,
    offline: OfflineOpt = False, json: JsonOpt = False,
    specs: SpecsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """KV-cache size of MODEL at a context length: per token, per request, per batch, per GPU.

    Example: kvplan size llama3-70b --ctx 4096 --tp 8 --explain
    """
    from kvplan.calc.kv import kv_size
    from kvplan.render.base import print_json
    from kvplan.render.size import render_size
    from kvplan.specs.catalog import find_model

    result = kv_size(find_model(model, specs or ()), ctx, batch=batch, kv_dtype=kv_dtype, tp=tp,
                     block_size=block_size)
    if json:
        print_json(console, result)
    else:
        render_size(console, result, explain=explain)
