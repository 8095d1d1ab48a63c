"""Which vLLM releases serve an architecture: a deployment on a release that does not is refused at
start-up, as vLLM refuses it ("Model architectures [...] are not supported").

Read from vllm/model_executor/models/registry.py of each release checked (0.8.0, 0.9.0, 0.9.2,
0.10.1.1, 0.10.2, 0.11.0, 0.11.2, 0.12.0 to 0.21.0 with the last patch of 0.14, 0.15, 0.18 and
0.19, 0.25.1 to 0.30.0, 0.34.0): `absent_through` is the newest release checked whose registry
lacks the architecture, as (major, minor) where the last patch of that minor was checked (every
patch lacks it) or the exact release otherwise; `until` is the last release that served it, as
0.34's _PREVIOUSLY_SUPPORTED_MODELS records it. Only the architectures of kvplan's database that some
release in 0.5-0.34 does not serve are listed; SGLang and TensorRT-LLM are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.specs.engines.releases import release_text

Version = tuple[int, ...]


@dataclass(frozen=True)
class ServedRange:
    absent_through: Version | None = None  # the newest release checked without it
    until: Version | None = None  # the last release that served it


VLLM_SERVED: dict[str, ServedRange] = {
    "FalconH1ForCausalLM": ServedRange((0, 8, 0)),
    "Llama4ForConditionalGeneration": ServedRange((0, 8, 0)),
    "MiMoForCausalLM": ServedRange((0, 8, 0)),
    "Mistral3ForConditionalGeneration": ServedRange((0, 8, 0)),
    "Qwen3ForCausalLM": ServedRange((0, 8, 0)),
    "Qwen3MoeForCausalLM": ServedRange((0, 8, 0)),
    "NemotronHForCausalLM": ServedRange((0, 9, 0)),
    "MiniMaxM1ForCausalLM": ServedRange((0, 9, 0), until=(0, 23, 0)),
    "Exaone4ForCausalLM": ServedRange((0, 9)),
    "GptOssForCausalLM": ServedRange((0, 9)),
    "Glm4MoeForCausalLM": ServedRange((0, 9)),
    "Qwen3NextForCausalLM": ServedRange((0, 10, 1, 1)),
    "MllamaForConditionalGeneration": ServedRange(until=(0, 10, 2)),
    "DeepseekV32ForCausalLM": ServedRange((0, 10)),
    "Olmo3ForCausalLM": ServedRange((0, 10)),
    "Qwen3VLForConditionalGeneration": ServedRange((0, 10)),
    "Qwen3VLMoeForConditionalGeneration": ServedRange((0, 10)),
    "KimiLinearForCausalLM": ServedRange((0, 11, 0)),
    "MiniMaxM2ForCausalLM": ServedRange((0, 11, 0)),
    "MiMoV2FlashForCausalLM": ServedRange((0, 13)),
    "Glm4MoeLiteForCausalLM": ServedRange((0, 14)),
    "KimiK25ForConditionalGeneration": ServedRange((0, 14)),
    "GlmMoeDsaForCausalLM": ServedRange((0, 15)),
    "Qwen3_5ForConditionalGeneration": ServedRange((0, 16)),
    "Qwen3_5MoeForConditionalGeneration": ServedRange((0, 16)),
    "Gemma4ForConditionalGeneration": ServedRange((0, 18)),
    "DeepseekV4ForCausalLM": ServedRange((0, 19)),
    "Exaone4_5_ForConditionalGeneration": ServedRange((0, 19)),
    "Ministral3ForCausalLM": ServedRange((0, 19)),
}


def _dotted(version: Version) -> str:
    return ".".join(map(str, version)) + (".x" if len(version) == 2 else "")


def _at_most(version: Version, bound: Version) -> bool:
    """version <= bound, where a (major, minor) bound holds every patch of that minor."""
    if len(bound) == 2:
        return version[:2] <= bound
    width = max(len(version), len(bound))
    return version + (0,) * (width - len(version)) <= bound + (0,) * (width - len(bound))


def unserved(architecture: str, first: Version, last: Version | None, release: str,
             asked: Version | None = None) -> str:
    """Why every release of a preset (first..last, as (major, minor)) refuses `architecture`, or ''
    where some release of it may serve it; where a release was `asked` (vllm==0.15.0), why that one
    refuses it, named as asked (vllm==0.15 asks for any 0.15 release)."""
    served = VLLM_SERVED.get(architecture)
    if served is None:
        return ""
    absent, until = served.absent_through, served.until
    if asked is not None:
        release = release_text(asked)
        first = last = asked[:2] + (0,) * (2 - len(asked[:2]))
    if asked is not None and len(asked) > 2:
        not_yet, no_longer = absent is not None and _at_most(asked, absent), until is not None and not _at_most(asked, until)
    else:  # the preset's newest release lacks it, or its oldest comes after the last that served it
        not_yet = absent is not None and last is not None and (
            last[:2] <= absent if len(absent) == 2 else last[:2] < absent[:2])
        no_longer = until is not None and first[:2] > until[:2]
    if not_yet and absent is not None:
        return (f"vLLM {release} does not serve {architecture} yet (not in registry.py through "
                f"{_dotted(absent)}); plan it with a later release (--engine vllm=={absent[0]}.{absent[1] + 1} "
                "or newer)")
    if no_longer and until is not None:
        return (f"vLLM {release} no longer serves {architecture} (the last release that did: "
                f"{_dotted(until)}, registry.py's _PREVIOUSLY_SUPPORTED_MODELS); plan it with "
                f"--engine vllm=={_dotted(until[:2]).removesuffix('.x')} or another engine")
    return ""
