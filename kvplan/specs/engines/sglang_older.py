"""SGLang before 0.5, release by release (docs/engine-rules/README.md has the table): the memory
fraction by TP size, then by GPU memory, and a multimodal model's cut, on any fraction (ModelRunner,
to 0.4.8) or on the default only (server_args, from 0.4.9); and SGLANG_PRESETS, every preset oldest
first. The pool rule is sglang.py's throughout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.sglang import SGLANG, Sglang, Sglang55, Sglang515, smi_gib
from kvplan.units import GIB, MIB

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

# server_args: mem_fraction_static by the GPUs of a replica (at least this many -> this fraction)
Table = tuple[tuple[int, float], ...]
FRACTION_BY_GPUS: Table = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))


class Sglang04(Sglang):
    """SGLang 0.4.0 to 0.4.3: mem_fraction_static by TP size, times 0.95 for a multimodal model."""

    release = "0.4"
    first: tuple[int, ...] = (0, 4)
    last: tuple[int, ...] | None = (0, 4, 3)
    encodes: tuple[str, ...] = ("python/sglang/srt/model_executor/model_runner.py ModelRunner.profile_max_num_token",
                                "python/sglang/srt/server_args.py (mem_fraction_static by tp_size)")
    changes = ("mem_fraction_static by TP size (0.88 at 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16), times 0.95 "
               "for a multimodal model, given or default")
    multimodal_factor: float | None = 0.95  # ModelRunner.__init__: "if self.is_multimodal: mem_fraction_static *= 0.95"
    multimodal_cuts_given = True
    aiter_cut = ""  # aiter's x 0.85 came with 0.4.7
    fraction_by_gpus: Table = FRACTION_BY_GPUS
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16)")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        """server_args to 0.4.6 reads the table by tp_size alone (0.4.7 by tp_size x pp_size)."""
        return next(fraction for size, fraction in self.fraction_by_gpus if tp >= size)


class Sglang044(Sglang04):
    """SGLang 0.4.4: a context_length past the model's only warns, as it does to 0.5.0."""

    release = "0.4.4"
    first: tuple[int, ...] = (0, 4, 4)
    last: tuple[int, ...] | None = (0, 4, 4)
    encodes: tuple[str, ...] = ("python/sglang/srt/configs/model_config.py "
                                "(SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN default True, 0.4.4 to 0.5.0)",)
    changes = "a context_length past the model's only warns (SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN on by default)"
    long_context_switch = ""


class Sglang045(Sglang044):
    """SGLang 0.4.5: the multimodal cut is 0.90."""

    release = "0.4.5"
    first: tuple[int, ...] = (0, 4, 5)
    last: tuple[int, ...] | None = (0, 4, 5)
    changes = "a multimodal model's fraction times 0.90, given or default (ModelRunner), not 0.95"
    multimodal_factor: float | None = 0.90


class Sglang046(Sglang045):
    """SGLang 0.4.6: on a GPU above 80 GiB the fraction leaves 13 GiB."""

    release = "0.4.6"
    first: tuple[int, ...] = (0, 4, 6)
    last: tuple[int, ...] | None = (0, 4, 6)
    changes = ("above 81,920 MiB (nvidia-smi's total) mem_fraction_static = (memory - 13 GiB) / memory, unrounded; "
               "the TP table below it")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        memory = smi_gib(gpu)
        if memory is not None and memory > 80:
            return (memory - 13) / memory
        return super().default_util(gpu, tp, pp, model=model, role=role, running=running)


class Sglang047(Sglang045):
    """SGLang 0.4.7: the TP table to 80 GiB, 0.88 above; 0.79 above 180,000 MiB on CUDA; between 96 GiB
    and that, a reserve of 18 GiB at most."""

    release = "0.4.7"
    first: tuple[int, ...] = (0, 4, 7)
    last: tuple[int, ...] | None = (0, 4, 7)
    aiter_cut = "model_runner"
    changes = ("the TP table by TP x PP to 81,920 MiB, 0.88 above it; above 180,000 MiB on CUDA 0.79; above 96 GiB "
               "min(f + 48 GiB x (1 - f) / memory, (memory - 18 GiB) / memory)")

    def default_util(self, gpu: GpuSpec | None, tp: int, pp: int, *, model: ModelSpec | None = None,
                     role: str | None = None, running: int | None = None) -> float:
        memory = smi_gib(gpu)
        if memory is None:
            return self.util
        base = Sglang04.default_util(self, gpu, tp * pp, 1) if memory <= 80 else 0.88
        mib = memory * GIB / MIB
        if mib > 180_000 and gpu is not None and gpu.vendor == "nvidia":
            return 0.79
        if memory > 96:
            return min(base + 48 * 1024 * (1 - base) / mib, (memory - 18) / memory)
        return base


class Sglang048(Sglang):
    """SGLang 0.4.8: the reserve by GPU class of 0.5 (server_args); the multimodal cut of 0.90 still in
    ModelRunner, on any fraction."""

    release = "0.4.8"
    first: tuple[int, ...] = (0, 4, 8)
    last: tuple[int, ...] | None = (0, 4, 8)
    changes = ("mem_fraction_static = (memory - reserve) / memory, the reserve by GPU class as 0.5; a multimodal "
               "model's fraction times 0.90, given or default")
    long_context_switch = ""
    multimodal_factor: float | None = 0.90
    multimodal_cuts_given = True


class Sglang049(Sglang048):
    """SGLang 0.4.9 to 0.4.9.post2: the multimodal cut moves to server_args, on the default only."""

    release = "0.4.9"
    first: tuple[int, ...] = (0, 4, 9)
    last: tuple[int, ...] | None = (0, 4, 9, 0, 2)
    changes = "a multimodal model's default fraction times 0.90 (server_args); a given one is kept"
    multimodal_cuts_given = False


class Sglang0493(Sglang049):
    """SGLang 0.4.9.post3 to 0.4.10: a multimodal model's default scaled by its vision tower's size."""

    release = "0.4.9.post3"
    first: tuple[int, ...] = (0, 4, 9, 0, 3)
    last: tuple[int, ...] | None = (0, 4, 10)
    changes = ("a multimodal model's default fraction times 0.95 x clamp(1 - 0.1 x (L x H^2 / (24 x 1,024^2) - 1), 0.8, "
               "1.05), L and H its vision_config's layers and width (adjust_mem_fraction_for_vlm); a given one is kept")
    multimodal_factor = None


class Sglang03(Sglang04):
    """SGLang 0.2.15 to 0.3.4: the TP table of 0.4 but 0.83 at TP 8 (server_args before the GPU-memory
    tiers); any context_length is taken (configs/model_config.py compares none)."""

    release = "0.3"
    first: tuple[int, ...] = (0, 2, 15)
    last: tuple[int, ...] | None = (0, 3, 4)
    changes = ("mem_fraction_static by TP size as 0.4, but 0.83 at TP 8 (0.4 lowered it to 0.81 with the "
               "GPU-memory tiers of chunked_prefill_size and cuda_graph_max_bs); any context_length is taken")
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.83 at 8, 0.79 at 16)")
    fraction_by_gpus: Table = ((16, 0.79), (8, 0.83), (4, 0.85), (2, 0.87), (1, 0.88))  # server_args 0.2.7 to 0.3.5
    long_context_switch = ""


class Sglang01(Sglang03):
    """SGLang 0.1.10 to 0.2.14: the same pool (model_runner profile_max_num_token, 'before' measured
    once NCCL is up), other TP tables, and no cut for a multimodal model."""

    release = "0.1.10"
    first: tuple[int, ...] = (0, 1, 10)
    last: tuple[int, ...] | None = (0, 1, 19)
    changes = ("mem_fraction_static by TP size: 0.90 at 1, 0.85 at 2, 0.82 at 4, 0.80 at 8 and above; no cut "
               "for a multimodal model (0.2.15 brings x 0.95)")
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.90 at TP 1, 0.85 at 2, 0.82 at 4, 0.80 at 8)")
    fraction_by_gpus: Table = ((8, 0.80), (4, 0.82), (2, 0.85), (1, 0.90))
    util = 0.90
    multimodal_factor: float | None = 1.0


class Sglang0120(Sglang01):
    """SGLang 0.1.20: a lower table."""

    release = "0.1.20"
    first: tuple[int, ...] = (0, 1, 20)
    last: tuple[int, ...] | None = (0, 1, 20)
    changes = "0.88 at TP 1, 0.85 at 2, 0.80 at 4, 0.78 at 8 and above"
    source = "SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size (server_args)"
    fraction_by_gpus: Table = ((8, 0.78), (4, 0.80), (2, 0.85), (1, 0.88))
    util = 0.88


class Sglang0121(Sglang0120):
    """SGLang 0.1.21 and 0.1.22: a row for 16 GPUs."""

    release = "0.1.21"
    first: tuple[int, ...] = (0, 1, 21)
    last: tuple[int, ...] | None = (0, 1, 22)
    changes = "0.88 at TP 1, 0.85 at 2, 0.82 at 4, 0.78 at 8, 0.74 at 16"
    fraction_by_gpus: Table = ((16, 0.74), (8, 0.78), (4, 0.82), (2, 0.85), (1, 0.88))


class Sglang02(Sglang0120):
    """SGLang 0.1.24 to 0.2.6 (no 0.1.23 was released): a higher table."""

    release = "0.2"
    first: tuple[int, ...] = (0, 1, 24)
    last: tuple[int, ...] | None = (0, 2, 6)
    changes = "0.89 at TP 1, 0.88 at 2, 0.86 at 4, 0.84 at 8, 0.80 at 16"
    fraction_by_gpus: Table = ((16, 0.80), (8, 0.84), (4, 0.86), (2, 0.88), (1, 0.89))
    util = 0.89


class Sglang027(Sglang0120):
    """SGLang 0.2.7 to 0.2.14: the table 0.3 keeps, still no multimodal cut."""

    release = "0.2.7"
    first: tuple[int, ...] = (0, 2, 7)
    last: tuple[int, ...] | None = (0, 2, 14)
    changes = "0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.83 at 8, 0.79 at 16 (kept to 0.3.5)"
    fraction_by_gpus: Table = Sglang03.fraction_by_gpus


class Sglang035(Sglang03):
    """SGLang 0.3.5: a context_length past the model's is refused unless the switch is set."""

    release = "0.3.5"
    first: tuple[int, ...] = (0, 3, 5)
    last: tuple[int, ...] | None = (0, 3, 5)
    changes = "a context_length past the model's is refused unless SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
    long_context_switch = Sglang.long_context_switch


class Sglang036(Sglang035):
    """SGLang 0.3.6: 0.82 at TP 8."""

    release = "0.3.6"
    first: tuple[int, ...] = (0, 3, 6)
    last: tuple[int, ...] | None = (0, 3, 6)
    changes = "0.82 at TP 8"
    source = ("SGLang ModelRunner.profile_max_num_token; page_size=1; mem_fraction_static by TP size "
              "(server_args: 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.82 at 8, 0.79 at 16)")
    fraction_by_gpus: Table = ((16, 0.79), (8, 0.82), (4, 0.85), (2, 0.87), (1, 0.88))


SGLANG_PRESETS: tuple[Sglang, ...] = (Sglang01(), Sglang0120(), Sglang0121(), Sglang02(), Sglang027(), Sglang03(),
                                      Sglang035(), Sglang036(), Sglang04(), Sglang044(), Sglang045(), Sglang046(), Sglang047(),
                                      Sglang048(), Sglang049(), Sglang0493(), SGLANG, Sglang55(), Sglang515())
