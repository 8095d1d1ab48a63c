"""The typer app, its consoles, the error handler and the options every command shares.

Command modules (one per command or small family) register on `app`; `kvplan.cli` imports only
the one being run."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from kvplan import __version__, bounds
from kvplan.errors import InputError, KvplanError
from kvplan.specs.engines import DEFAULT_ENGINE as DEFAULT_ENGINE  # for the commands' --engine default

def _bare_flags(params: list) -> list:
    """A flag takes no value: its help shows none (typer would print '<bool>' beside it)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Command(typer.core.TyperCommand):
    def get_params(self, ctx):  # type: ignore[no-untyped-def]
        return _bare_flags(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx):  # type: ignore[no-untyped-def]
        return _bare_flags(super().get_params(ctx))


class _App(typer.Typer):
    """The app, whose commands show flags without a value placeholder."""

    def command(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _App(
    cls=_Group,
    name="kvplan",
    help="Capacity planner for LLM inference memory: KV-cache size, batch capacity, paging, offload.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

OUTPUT = "Output"
SpecsOpt = Annotated[Optional[list[Path]], typer.Option(
    "--specs", metavar="DIR", help="Extra spec folder (DIR/models/*.yaml, DIR/gpus/*.yaml); "
    "overrides packaged specs by name. Repeatable; also read from $KVPLAN_SPECS.",
    rich_help_panel="Spec database")]
def _go_offline(value: bool) -> bool:
    if value:  # huggingface_hub reads the same variable; kvplan's resolver skips the Hub
        os.environ["HF_HUB_OFFLINE"] = "1"
    return value


OfflineOpt = Annotated[bool, typer.Option(
    "--offline", callback=_go_offline, help="Never ask the Hugging Face Hub: resolve models from the database, "
    "local paths and the local Hugging Face cache only (as HF_HUB_OFFLINE=1).", rich_help_panel="Spec database")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.", rich_help_panel=OUTPUT)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.",
                                        rich_help_panel=OUTPUT)]


def read_option(read, flag: str, *more: str, **option):
    """An option read by one of kvplan.bounds' readers: `--max-len 8k` is read, bounded and refused
    alike in every command. The reader's InputError passes through click to main(), one line, exit 2."""
    return typer.Option(flag, *more, parser=lambda text: read(text, flag), **option)


def spelled(err: KvplanError) -> str:
    """The error in the command line's words: the fields a calculator names become their flags."""
    from kvplan.render.flags import FLAGS

    return err.spelled(FLAGS) if isinstance(err, InputError) else str(err)


def handle_errors(command):
    """Turn a KvplanError into one line per problem on stderr and exit code 2 (unless --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KvplanError as err:
            if kwargs.get("debug"):
                raise
            for line in spelled(err).splitlines():
                err_console.print(f"error: {line}", markup=False)
            raise typer.Exit(err.exit_code) from None
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as err:  # a bug, not bad input: still one line, and a code (3) no bad input gets
            if kwargs.get("debug"):
                raise
            err_console.print(f"error: internal error ({type(err).__name__}: {err}); rerun with --debug and "
                              "report it with the command line", markup=False)
            raise typer.Exit(3) from None

    return wrapper


def catalog(specs: Optional[list[Path]]):
    from kvplan.specs.catalog import load_catalog

    return load_catalog(specs or ())


def _version(value: bool) -> None:
    if value:
        console.print(f"kvplan {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """kvplan: how much memory an LLM's KV cache takes, and how many requests fit.

    Example: kvplan size llama3-70b --ctx 4096
    """


BUDGET = "Memory budget (every term can be overridden)"
CHUNKED = "Chunked prefill"
GpuOpt = Annotated[str, typer.Option("--gpu", "-g", help="GPU name or alias (see `kvplan gpus`).")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="Budget rule: vllm, sglang, trtllm or raw (the textbook: memory - weights); NAME==VERSION "
    "picks a release's preset (vllm==0.11; `kvplan engines` lists them).",
    rich_help_panel=BUDGET)]
TpOpt = Annotated[int, read_option(bounds.gpus, "--tp", metavar="N", help="Tensor-parallel GPUs per replica.",
                              rich_help_panel=BUDGET)]
PpOpt = Annotated[int, read_option(bounds.gpus, "--pp", metavar="N", help="Pipeline-parallel stages per replica.",
                              rich_help_panel=BUDGET)]
KvDtypeOpt = Annotated[str, typer.Option(
    "--kv-dtype", help="KV storage: auto, bf16, fp16, fp32, fp8, int8, int4.", rich_help_panel=BUDGET)]
WeightsDtypeOpt = Annotated[str, typer.Option(
    "--weights-dtype", help="auto (the checkpoint), bf16, fp16, fp8, int8, int4 (AWQ/GPTQ), nf4.",
    rich_help_panel=BUDGET)]
UtilOpt = Annotated[Optional[float], read_option(
    bounds.fraction, "--util", metavar="FRACTION", help="The engine's memory fraction, in (0, 1] (vLLM "
    "gpu_memory_utilization, SGLang mem_fraction_static, TRT-LLM free_gpu_memory_fraction).", rich_help_panel=BUDGET)]
GpuMemOpt = Annotated[Optional[float], read_option(
    bounds.gib, "--gpu-mem", metavar="GiB", help="GPU memory in GiB, instead of the database's.",
    rich_help_panel=BUDGET)]
WeightsGibOpt = Annotated[Optional[float], read_option(
    bounds.gib_or_zero, "--weights-gib", metavar="GiB", help="Weights per GPU in GiB (e.g. from an engine's log).",
    rich_help_panel=BUDGET)]
ActivationGibOpt = Annotated[Optional[float], read_option(
    bounds.gib_or_zero, "--activation-gib", metavar="GiB", help="Activation peak per GPU in GiB.",
    rich_help_panel=BUDGET)]
OverheadGibOpt = Annotated[Optional[float], read_option(
    bounds.gib_or_zero, "--overhead-gib", metavar="GiB",
    help="Runtime overhead per GPU (CUDA context, non-torch) in GiB.", rich_help_panel=BUDGET)]
BlockOpt = Annotated[Optional[int], read_option(
    bounds.block_size, "--block-size", metavar="TOKENS", help="Tokens per KV page (default: the engine's).",
    rich_help_panel=BUDGET)]
MaxLenOpt = Annotated[Optional[int], read_option(
    bounds.tokens, "--max-len", metavar="TOKENS", help="The engine's max_model_len (vLLM refuses to start when one "
    "request of it does not fit). Default: the model's max context.", rich_help_panel=BUDGET)]
MaxSeqsOpt = Annotated[Optional[int], read_option(
    bounds.requests, "--max-num-seqs", metavar="N", help="The engine's cap on concurrent requests (default: "
    "vLLM's for the GPU).", rich_help_panel=BUDGET)]
AllowLongOpt = Annotated[bool, typer.Option(
    "--allow-long-max-len", help="Let a --max-len past the model's context start, as the engine's environment "
    "switch does (vLLM's and SGLang's; the deploy line sets it); without it the engine refuses.",
    rich_help_panel=BUDGET)]
MaxBatchedTokensOpt = Annotated[Optional[int], read_option(
    bounds.tokens, "--max-num-batched-tokens", metavar="TOKENS", help="The engine's tokens in one step (prefill "
    "chunks and decodes; default: vLLM's for the GPU).", rich_help_panel=BUDGET)]
ChunkedOpt = Annotated[Optional[bool], typer.Option(
    "--enable-chunked-prefill/--no-enable-chunked-prefill", help="Split long prompts into chunks of a step's "
    "tokens (default: the engine's; vLLM V1 always, V0 past 32K tokens). Without it a step holds a whole "
    "prompt: the profile batch is max_model_len tokens.",
    rich_help_panel=CHUNKED)]  # a panel of its own: its --no- twin's column would squeeze every budget flag at 80 columns
SamplerOpt = Annotated[Optional[str], typer.Option(
    "--sampler", metavar="NAME", help="vLLM's top-k/top-p sampler, whose profile run sets the activation peak: "
    "flashinfer or pytorch (default: the release's; VLLM_USE_FLASHINFER_SAMPLER).", rich_help_panel=BUDGET)]
SpecTokensOpt = Annotated[int, read_option(
    bounds.tokens_or_zero, "--num-speculative-tokens", metavar="N", help="Draft tokens a step verifies (vLLM "
    "speculative_config, MTP or EAGLE): a hybrid's recurrent state keeps N more conv rows and N more pages a "
    "request.", rich_help_panel=BUDGET)]
LORA = "LoRA (vLLM)"
EnableLoraOpt = Annotated[bool, typer.Option(
    "--enable-lora", help="vLLM --enable-lora: stacked LoRA A/B buffers for --max-loras adapters of "
    "--max-lora-rank on every wrapped module, counted with the weights.", rich_help_panel=LORA)]
MaxLorasOpt = Annotated[int, read_option(
    bounds.requests, "--max-loras", metavar="N", help="Adapters in one batch (vLLM's default 1).", rich_help_panel=LORA)]
MaxLoraRankOpt = Annotated[int, read_option(
    bounds.requests, "--max-lora-rank", metavar="R", help="The largest adapter rank (vLLM's default 16; one of "
    "1, 8, 16, 32, 64, 128, 256, 320, 512).", rich_help_panel=LORA)]
MaxCpuLorasOpt = Annotated[Optional[int], read_option(
    bounds.requests, "--max-cpu-loras", metavar="N", help="Adapters cached in host memory (no GPU memory; at "
    "least --max-loras).", rich_help_panel=LORA)]
LoraGibOpt = Annotated[Optional[float], read_option(
    bounds.gib_or_zero, "--lora-gib", metavar="GiB", help="The LoRA buffers per GPU, measured (turns LoRA on).",
    rich_help_panel=LORA)]


def with_lora(inputs, enable_lora: bool, max_loras: int, max_lora_rank: int, max_cpu_loras: Optional[int],
              lora_gib: Optional[float]):
    """`inputs` with the LoRA options (kvplan/specs/engines/vllm_lora.py); unchanged without them."""
    from dataclasses import replace

    from kvplan.units import GIB

    if not enable_lora and lora_gib is None:
        return inputs
    return replace(inputs, enable_lora=True, max_loras=max_loras, max_lora_rank=max_lora_rank,
                   max_cpu_loras=max_cpu_loras, lora_bytes=None if lora_gib is None else int(round(lora_gib * GIB)))


SpecMethodOpt = Annotated[Optional[str], typer.Option(
    "--speculative-method", metavar="METHOD", help="vLLM's speculative_config method: draft_model, eagle, eagle3 or "
    "mtp (the model's own MTP layers): the drafter's weights and KV layers join the budget (default: draft_model "
    "with --speculative-model).", rich_help_panel=BUDGET)]
DraftModelOpt = Annotated[Optional[str], typer.Option(
    "--speculative-model", metavar="MODEL", help="The draft model (a database name), loaded beside the target: "
    "its weights and its KV layers in the pool.", rich_help_panel=BUDGET)]
DraftGibOpt = Annotated[Optional[float], read_option(
    bounds.gib_or_zero, "--draft-weights-gib", metavar="GiB", help="The drafter's weights per GPU in GiB, instead "
    "of the formula.", rich_help_panel=BUDGET)]
MmLimitOpt = Annotated[Optional[str], typer.Option(
    "--limit-mm-per-prompt", metavar="JSON", help="vLLM's items per prompt by modality, e.g. '{\"image\": 2, "
    "\"video\": 0}': the profile run encodes the largest allowed item first (0 for every modality skips it). "
    "Default: 999 of each.", rich_help_panel=BUDGET)]
MmTpModeOpt = Annotated[Optional[str], typer.Option(
    "--mm-encoder-tp-mode", metavar="MODE", help="vLLM's vision tower under TP: weights (sharded, the default) "
    "or data (replicated, the items split over the ranks).", rich_help_panel=BUDGET)]
DisaggModeOpt = Annotated[Optional[str], typer.Option(
    "--disaggregation-mode", metavar="ROLE", help="Size one worker of a disaggregated deployment: prefill or decode "
    "(SGLang 0.5.15 on reserves for its own phase; `plan --disaggregated` plans both).", rich_help_panel=BUDGET)]
KV_TIERS = "KV offload tiers (beside the GPU pool; they hold evicted prefixes)"
KvOffloadGibOpt = Annotated[Optional[float], read_option(
    bounds.gib, "--kv-offload-gib", metavar="GiB", help="Host memory for evicted KV blocks, every rank's together "
    "(vLLM --kv-offloading-size). The GPU pool and the concurrency are unchanged.", rich_help_panel=KV_TIERS)]
KvOffloadBackendOpt = Annotated[Optional[str], typer.Option(
    "--kv-offload-backend", metavar="NAME", help="native or lmcache (vLLM --kv-offloading-backend), hicache "
    "(SGLang --enable-hierarchical-cache). Default: the engine's.", rich_help_panel=KV_TIERS)]
KvOffloadDiskGibOpt = Annotated[Optional[float], read_option(
    bounds.gib, "--kv-offload-disk-gib", metavar="GiB", help="LMCache's local disk, GiB a rank "
    "(max_local_disk_size).", rich_help_panel=KV_TIERS)]
HicacheRatioOpt = Annotated[Optional[float], read_option(
    bounds.gib, "--hicache-ratio", metavar="R", help="SGLang: host tokens / device tokens (default 2.0).",
    rich_help_panel=KV_TIERS)]
HicacheSizeOpt = Annotated[Optional[float], read_option(
    bounds.gib, "--hicache-size", metavar="GB", help="SGLang: host pool in GB (10^9) a rank; overrides the ratio.",
    rich_help_panel=KV_TIERS)]
CpuOffloadGibOpt = Annotated[Optional[float], read_option(
    bounds.gib_or_zero, "--cpu-offload-gib", metavar="GiB", help="WEIGHTS kept on the host, GiB a GPU (vLLM "
    "--cpu-offload-gb), not KV: they leave the GPU budget.", rich_help_panel=BUDGET)]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Show each formula with the numbers plugged in.",
                                          rich_help_panel=OUTPUT)]


def budget_inputs(engine: str, tp: int, pp: int, kv_dtype: str, weights_dtype: str, util: Optional[float],
                  gpu_mem: Optional[float], weights_gib: Optional[float], activation_gib: Optional[float],
                  overhead_gib: Optional[float], block_size: Optional[int], max_num_seqs: Optional[int] = None,
                  allow_long_max_len: bool = False, *, max_len: Optional[int] = None,
                  max_num_batched_tokens: Optional[int] = None, chunked_prefill: Optional[bool] = None,
                  sampler: Optional[str] = None, num_speculative_tokens: int = 0,
                  limit_mm_per_prompt: Optional[str] = None, mm_encoder_tp_mode: Optional[str] = None, **tiers):
    from kvplan.calc.budget import BudgetInputs
    from kvplan.units import GIB

    to_bytes = lambda gib: None if gib is None else int(round(gib * GIB))  # noqa: E731
    return BudgetInputs(engine=engine, tp=tp, pp=pp, kv_dtype=kv_dtype, weights_dtype=weights_dtype, util=util,
                        gpu_mem_bytes=to_bytes(gpu_mem), weights_bytes=to_bytes(weights_gib),
                        activation_bytes=to_bytes(activation_gib), overhead_bytes=to_bytes(overhead_gib),
                        block_size=block_size, max_num_seqs=max_num_seqs, allow_long_max_len=allow_long_max_len,
                        max_model_len=max_len, max_num_batched_tokens=max_num_batched_tokens,
                        chunked_prefill=chunked_prefill, sampler=sampler, num_speculative_tokens=num_speculative_tokens,
                        limit_mm_per_prompt=bounds.mm_limits(limit_mm_per_prompt, "--limit-mm-per-prompt") if limit_mm_per_prompt
                        else None, mm_encoder_tp_mode=mm_encoder_tp_mode and bounds.mm_encoder_tp_mode(
                            mm_encoder_tp_mode, "--mm-encoder-tp-mode"),
                        **tiers)  # kv_offload_gib, kv_offload_backend, ..., cpu_offload_gib: BudgetInputs' names


def with_draft(inputs, cat, method: Optional[str], draft_model: Optional[str], draft_weights_gib: Optional[float]):
    """`inputs` with the speculative drafter asked for: --speculative-model resolved in the catalog."""
    from dataclasses import replace

    from kvplan.units import GIB

    if method is None and draft_model is None and draft_weights_gib is None:
        return inputs
    return replace(inputs, speculative_method=method, draft_model=cat.model(draft_model) if draft_model else None,
                   draft_weights_bytes=None if draft_weights_gib is None else int(round(draft_weights_gib * GIB)))


FromLogOpt = Annotated[Optional[Path], typer.Option(
    "--from-log", metavar="FILE", rich_help_panel=BUDGET,
    help="Plan on the terms a start-up log measured (GPU total, weights, the rest of the non-KV memory) "
         "and its settings; options given are the what-if.")]


def with_log(path: Optional[Path], inputs, model: Optional[str], gpu_spec, cat):
    """`inputs` on the measured terms of the log at `path` (--from-log), after checking that it is a
    log of `model`; the notes on what was rescaled go to stderr."""
    if path is None:
        return inputs
    from kvplan.calc.fromlog import plan_from_log
    from kvplan.calc.logfit import speculative_method
    from kvplan.specs.engines.registry import engine as engine_entry
    from kvplan.specs.engines.logs import load_log
    from kvplan.specs.logmatch import log_model

    startup = load_log(path)
    log_model(cat, startup, model)  # one line where the log is of another model
    total = inputs.gpu_mem_bytes  # --gpu-mem, else the GPU's total as CUDA reports it
    if total is None and gpu_spec is not None:
        total = engine_entry(inputs.engine).total_memory(gpu_spec).value
    method, draft_note = speculative_method(startup, cat.model(model)) if model else (None, "")
    # the drafter the log names, laid out; the quantization it cast to at load, where the checkpoint has none
    planned, notes = plan_from_log(startup, inputs, total, method=method, model=cat.model(model) if model else None)
    for note in notes + ((draft_note,) if draft_note else ()):
        err_console.print(f"--from-log: {note}")
    return planned
