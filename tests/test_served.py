"""A vLLM release that does not serve a model's architecture will not start it: the registry.py of
each release checked (kvplan/specs/engines/served.py), not a guess. The presets cover ranges of
releases; a preset refuses only where every release in it lacks the architecture, a release named in
full where it does."""

from __future__ import annotations

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.specs.engines.served import VLLM_SERVED, unserved


@pytest.mark.parametrize("model, engine, refused", [
    # MllamaForConditionalGeneration: served to 0.10.2 (_PREVIOUSLY_SUPPORTED_MODELS), so the 0.8 preset
    # (0.8-0.10) may start it and the 0.11 preset on cannot
    ("llama3.2-11b-vision", "vllm==0.10", ""),
    ("llama3.2-11b-vision", "vllm==0.11", "vLLM 0.11 no longer serves MllamaForConditionalGeneration (the last "
                                          "release that did: 0.10.2"),
    # MiniMaxM1ForCausalLM: served to 0.23.0; the 0.21 preset (0.21-0.33) holds releases that serve it
    ("minimax-m1", "vllm==0.21", ""),
    ("minimax-m1", "vllm", "vLLM 0.34 no longer serves MiniMaxM1ForCausalLM"),
    # DeepseekV4ForCausalLM: not in 0.19.0's nor 0.19.1's registry, in 0.20.0's
    ("deepseek-v4-flash", "vllm==0.19", "vLLM 0.19 does not serve DeepseekV4ForCausalLM yet (not in registry.py "
                                        "through 0.19.x); plan it with a later release (--engine vllm==0.20"),
    ("deepseek-v4-flash", "vllm==0.20", ""),
    # Gemma4: first in 0.19.0 (0.18.1 lacks it); the 0.19 preset (0.18-0.19) may serve it, 0.12 (0.12-0.17) not
    ("gemma-4-26b-a4b", "vllm==0.19", ""),
    ("gemma-4-26b-a4b", "vllm==0.12", "does not serve Gemma4ForConditionalGeneration yet"),
    # Qwen3: absent from 0.8.0 only: V0 (0.5-0.7) refuses it, the 0.8 preset may serve it
    ("qwen3-8b", "vllm==0.6", "vLLM 0.6 does not serve Qwen3ForCausalLM yet (not in registry.py through 0.8.0)"),
    ("qwen3-8b", "vllm==0.8", ""),
    # Kimi-Linear: absent from 0.11.0, present in 0.11.2: the 0.11 preset may serve it
    ("kimi-linear-48b-a3b", "vllm==0.11", ""),
    ("llama3-8b", "vllm==0.6", ""),  # served by every release checked: not listed
    # a release asked inside a preset is judged itself: Qwen3.5 is absent through 0.16.x, so 0.15.0 refuses it
    # though the 0.15 preset (0.15-0.17) holds 0.17, which serves it; 0.17.1 starts, 0.15 (any 0.15) does not
    ("qwen3.5-27b", "vllm==0.15.0", "vLLM 0.15.0 does not serve Qwen3_5ForConditionalGeneration yet (not in "
                                    "registry.py through 0.16.x); plan it with a later release (--engine vllm==0.17"),
    ("qwen3.5-27b", "vllm==0.15", "vLLM 0.15 does not serve Qwen3_5ForConditionalGeneration yet"),
    ("qwen3.5-27b", "vllm==0.17.1", ""),
    # Kimi-Linear is absent from 0.11.0 exactly: 0.11.0 refuses it, 0.11.2 serves it
    ("kimi-linear-48b-a3b", "vllm==0.11.0", "vLLM 0.11.0 does not serve KimiLinearForCausalLM yet"),
    ("kimi-linear-48b-a3b", "vllm==0.11.2", ""),
    # MiniMax-M1: the last release that served it is 0.23.0
    ("minimax-m1", "vllm==0.23.0", ""),
    ("minimax-m1", "vllm==0.23.1", "vLLM 0.23.1 no longer serves MiniMaxM1ForCausalLM"),
    # a post release is named as pip and the engine print it (release_text), not as its sorting tuple
    ("qwen3.5-27b", "vllm==0.15.0.post1", "vLLM 0.15.0.post1 does not serve Qwen3_5ForConditionalGeneration yet"),
])
def test_a_release_that_does_not_serve_the_architecture_will_not_start(catalog, model, engine, refused):
    budget = memory_budget(catalog.model(model), catalog.gpu("h200"), BudgetInputs(engine=engine, tp=8))
    assert (refused in budget.start_refusal) if refused else budget.start_refusal == ""


def test_every_listed_architecture_is_one_the_database_holds(catalog):
    """The table lists only architectures of kvplan's database (read off their registries)."""
    held = {spec.architecture for spec in catalog.models.specs.values()}
    assert set(VLLM_SERVED) <= held


def test_a_preset_with_some_release_serving_it_is_not_refused():
    # absent through 0.11.0 exactly: a preset ending at 0.11 also holds 0.11.1 and 0.11.2
    assert unserved("KimiLinearForCausalLM", (0, 11), (0, 11), "0.11") == ""
    assert unserved("KimiLinearForCausalLM", (0, 8), (0, 10), "0.8") != ""
    assert engine_entry("vllm==0.11.2").release == "0.11"
