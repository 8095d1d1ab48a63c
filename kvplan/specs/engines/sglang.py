"""SGLang: the pool is the memory free after loading, less what mem_fraction_static keeps back.

    pool = (total - weights - overhead - activation) - total x (1 - mem_fraction_static)

Source: python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token;
python/sglang/srt/server_args.py (page_size 1, mem_fraction_static by TP size).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, CommandLine, Engine, Replica, Term, half_from_fp32

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

# server_args: mem_fraction_static by the GPUs of a replica (at least this many -> this fraction)
FRACTION_BY_GPUS = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))

COMMAND = CommandLine(
    program="python -m sglang.launch_server",
    launchers=(("python", "-m", "sglang.launch_server"), ("python3", "-m", "sglang.launch_server"),
               ("sglang", "serve")),
    model_flag="--model-path",
    flags={"revision": "--revision", "tp": "--tp-size", "pp": "--pp-size", "max_model_len": "--context-length",
           "util": "--mem-fraction-static",
           "kv_dtype": "--kv-cache-dtype", "max_num_seqs": "--max-running-requests", "block_size": "--page-size",
           "max_num_batched_tokens": "--chunked-prefill-size", "weights_dtype": "--dtype",
           "quantization": "--quantization"},
    also_read={"--model": "model", "--tp": "tp", "--pp": "pp"},
    kv_dtypes={"fp8": "fp8_e4m3"},
    dtypes={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"},
    quantizations={"fp8": "fp8"},
    program_words=("sglang",),
    usage="`python -m sglang.launch_server --model-path MODEL ...`",
)


class Sglang(Engine):
    """SGLang 0.5, the default preset."""

    name, display_name = "sglang", "SGLang"
    release = "0.5"
    first: tuple[int, ...] = (0, 5)
    last: tuple[int, ...] | None = None
    encodes: tuple[str, ...] = ("python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token",
                                "python/sglang/srt/server_args.py (mem_fraction_static by TP)",
                                "python/sglang/srt/configs/model_config.py")
    changes = "a context_length past the model's is refused unless SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
    util, util_name = 0.88, "mem_fraction_static"
    util_meaning = ("of the device's total memory, for weights and the KV pool; the rest is headroom for "
                    "activations and CUDA graphs")
    block_size = 1
    formula = "(total - weights - overhead - activation) - total x (1 - util)"
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16)")
    command = COMMAND
    # model_config.py: a context_length above the derived one is refused unless this is set
    long_context_switch = "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"

    def default_util(self, gpus: int) -> float:
        return next(fraction for size, fraction in FRACTION_BY_GPUS if gpus >= size)

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        return Term(0, "in the (1 - mem_fraction_static) headroom")

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        return (total - weights - overhead - activation) - int(total * (1 - util))

    def auto_dtype(self, model: ModelSpec, gpu: GpuSpec | None) -> tuple[str, str]:
        """ModelConfig._get_and_verify_dtype (python/sglang/srt/configs/model_config.py): a float32
        checkpoint is served in fp16, a Gemma one in bf16."""
        return half_from_fp32(model, "SGLang", ("gemma",))


SGLANG = Sglang()


class Sglang04(Sglang):
    """SGLang 0.4: a context_length past the model's only warns (0.4.4 to 0.4.10)."""

    release = "0.4"
    first: tuple[int, ...] = (0, 4)
    last: tuple[int, ...] | None = (0, 4)
    encodes: tuple[str, ...] = ("python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token",
                                "python/sglang/srt/configs/model_config.py "
                                "(SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN default True)")
    changes = "a context_length past the model's is let through with a warning (0.4.4 to 0.4.10)"
    long_context_switch = ""


SGLANG_PRESETS: tuple[Sglang, ...] = (Sglang04(), SGLANG)
