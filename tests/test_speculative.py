"""A speculative drafter's memory in vLLM's budget (kvplan/calc/draft.py): its weights inside the
weights term (gpu_model_runner.py load_model loads the drafter inside "Model loading took"), its KV
layers in the shared pool (eagle.py load_model registers them; kv_cache_utils.py get_kv_cache_groups),
and the settings read from `vllm serve --speculative-config`."""

from dataclasses import replace

import pytest

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.draft import layer_params
from kvplan.errors import InputError
from kvplan.specs.engines.registry import engine
from kvplan.units import GIB

LLAMA_1B_PARAMS = 1_235_814_400  # model_specs/models/llama3.2-1b.yaml params_total


def test_a_draft_model_adds_its_weights_and_its_kv_layers(catalog):
    """Llama-3.1-70B at TP 4 with Llama-3.2-1B drafting 5 tokens (draft_model.py: no shared embedding or
    lm_head; draft_tensor_parallel_size = the target's 4)."""
    target, draft, gpu = catalog.model("llama3.1-70b"), catalog.model("llama3.2-1b"), catalog.gpu("h100")
    alone = memory_budget(target, gpu, BudgetInputs(tp=4))
    both = memory_budget(target, gpu, BudgetInputs(tp=4, draft_model=draft, num_speculative_tokens=5))
    # 1,235,814,400 params x 2 B (bf16) / 4 GPUs = 617,907,200 B
    assert both.draft_weights_bytes == LLAMA_1B_PARAMS * 2 // 4 == 617_907_200
    assert both.weights_bytes - alone.weights_bytes == 617_907_200  # the weights term holds it, nothing else moves
    assert both.activation_bytes == alone.activation_bytes and both.overhead_bytes == alone.overhead_bytes
    assert both.kv_pool_bytes == alone.kv_pool_bytes - 617_907_200
    # target: 80 layers x 2 (K,V) x 8/4 heads x 128 x 2 B = 81,920 B a token; draft: 16 x 2 x 8/4 x 64 x 2 B = 8,192 B
    assert alone.kv_bytes_per_token == 81_920
    assert both.kv_bytes_per_token == 81_920 + 8_192 == 90_112
    # one group of every full-attention layer (UniformTypeKVCacheSpecs: the page is the sum): 16 x 90,112 B
    assert both.page_bytes == 16 * 90_112 == 1_441_792
    assert both.num_blocks == both.kv_pool_bytes // 1_441_792
    assert (both.speculative_method, both.draft_model, both.draft_kv_layers, both.lookahead_tokens) == (
        "draft_model", "llama3.2-1b", 16, 5)


def test_plan_and_fits_changes_count_the_drafters_kv_as_fit_does(catalog):
    """Llama-3.1-8B drafted by Llama-3.2-1B: a 8,192-token request pages 32 x 2 x 8 x 128 x 2 B = 131,072 B a
    token of the target and 16 x 2 x 8 x 64 x 2 B = 32,768 B of the draft, x 8,192 = 1,342,177,280 B (1.25 GiB);
    plan and fit's table of changes counted the target's 1 GiB alone."""
    from kvplan.calc.fit import fit
    from kvplan.calc.plan import plan

    target, gpu = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    inputs = BudgetInputs(draft_model=catalog.model("llama3.2-1b"), speculative_method="draft_model",
                          num_speculative_tokens=5)
    fitted = fit(target, gpu, 8192, inputs, target=100)
    assert fitted.bytes_per_request == (131_072 + 32_768) * 8_192 == 1_342_177_280
    best = plan(target, gpu, 64, 8192, inputs=inputs).best[0]
    assert best.bytes_per_request_per_gpu == 1_342_177_280 and best.concurrency_per_replica == fitted.concurrency
    tp2 = next(k for k in fitted.knobs if k.fix == {"tp": 2})
    # at TP 2 a GPU holds half of every request: 671,088,640 B
    assert tp2.concurrency == tp2.kv_pool_bytes // (1_342_177_280 // 2)


def test_mtp_takes_the_models_own_layers_and_pads_the_groups_as_logged(catalog):
    """Qwen3.5-27B (Qwen3.8-27B's layout) with MTP x 3, as vllm-0.25.1-qwen3.8-27b-int4-gb10-1.log runs it:
    the config's mtp_num_hidden_layers 1 (the spec's mtp_layers) is one more full-attention layer, 16 + 1
    beside 48 GDN: "Add 3 padding layers"; "Setting attention block size to 800 tokens"."""
    model = catalog.model("qwen3.5-27b")
    assert model.mtp_layers == 1
    inputs = BudgetInputs(engine="vllm==0.25.1", gpu_mem_bytes=int(119.7 * GIB), speculative_method="mtp",
                          num_speculative_tokens=3)
    b = memory_budget(model, None, inputs)
    assert (b.draft_kv_layers, b.padding_layers) == (1, 3)  # 17 full, groups of 17: 3 GDN groups of 51 -> 3 padding
    # conv 6 rows (4 - 1 + 3 speculative) x 10,240 x 2 B + 48 x 128 x 128 x 4 B = 3,268,608 B; the full page at 16
    # tokens is 16 x 2 x 4 x 256 x 2 B = 65,536 B: ceil(3,268,608 / 65,536) = 50 -> 50 x 16 = 800 tokens
    assert b.block_size == 800
    # one MTP layer: (27,353,781,248 - 2 x 248,320 x 5,120 - 457,790,976) / 64 = 380,518,648 params x 2 B,
    # + fc 2 x 5,120 x 5,120 x 2 B (ColumnParallelLinear, TP 1) = 761,037,296 + 104,857,600
    assert layer_params(model) == 380_518_648
    assert b.draft_weights_bytes == 865_894_896
    without = memory_budget(model, None, replace(inputs, speculative_method=None))
    assert b.weights_bytes - without.weights_bytes == 865_894_896
    assert without.padding_layers == 0  # 16 full, 48 GDN: groups of 16, none padded


def test_eagle_heads_are_one_layer_of_the_targets_width(catalog):
    """EAGLE (llama_eagle.py): one decoder layer, /TP, + fc 2h x h ReplicatedLinear (every GPU); EAGLE-3
    (llama_eagle3.py): qkv reads 2h, fc 3h x h replicated, its own lm_head (draft_vocab = vocab) and d2t."""
    target, gpu = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    layer = layer_params(target)
    # (8,030,261,248 - 2 x 128,256 x 4,096) / 32 = 218,112,128 params; cross-check by the layer's tensors:
    # q, o 4,096^2 each + k, v 4,096 x 1,024 each + MLP 3 x 4,096 x 14,336 + 2 norms x 4,096 = 218,112,000,
    # and the final norm's 4,096 spread over 32 layers: + 128
    assert layer == (target.params_total - 2 * 128_256 * 4_096) // 32 == 218_112_128
    assert 2 * 4_096 ** 2 + 2 * 4_096 * 1_024 + 3 * 4_096 * 14_336 + 2 * 4_096 + 4_096 // 32 == layer
    eagle = memory_budget(target, gpu, BudgetInputs(speculative_method="eagle", num_speculative_tokens=3))
    assert eagle.draft_weights_bytes == 218_112_128 * 2 + 2 * 4_096 * 4_096 * 2 == 503_333_120
    eagle3 = memory_budget(target, gpu, BudgetInputs(speculative_method="eagle3", num_speculative_tokens=3))
    qkv = 4_096 * (32 + 2 * 8) * 128  # the second h of the qkv input: 25,165,824 params
    assert eagle3.draft_weights_bytes == (218_112_128 + qkv + 128_256 * 4_096) * 2 + 3 * 4_096 ** 2 * 2 + 128_256 * 8
    # one full-attention layer more: 33 x 2 x 8 x 128 x 2 B = 135,168 B a token
    assert eagle.kv_bytes_per_token == eagle3.kv_bytes_per_token == 33 * 4_096 == 135_168


# sgl-project/SpecForge configs/qwen3-32b-eagle3.json (b185edc): an EAGLE-3 head for Qwen3-32B whose
# attention is 64 heads of 80 (not the target's 128) and whose lm_head has 32,000 rows
QWEN3_32B_EAGLE3 = {
    "architectures": ["LlamaForCausalLMEagle3"], "attention_bias": False, "head_dim": 80, "hidden_act": "silu",
    "hidden_size": 5120, "intermediate_size": 25600, "max_position_embeddings": 40960, "model_type": "llama",
    "num_attention_heads": 64, "num_hidden_layers": 1, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 151936, "draft_vocab_size": 32000}


def test_an_eagle3_head_named_by_its_repo_is_counted_from_its_own_config(catalog, tmp_path):
    """--speculative-model naming the head (as vLLM requires for eagle3): its width, its layer and its
    draft_vocab_size, not the target's; its KV layer of 80-wide heads joins the pool; the deploy line
    names it."""
    import json

    from kvplan.calc.deployterms import term_deploy

    (tmp_path / "config.json").write_text(json.dumps(QWEN3_32B_EAGLE3))
    head, target, gpu = catalog.model(str(tmp_path)), catalog.model("qwen3-32b"), catalog.gpu("h100")
    assert head.draft_vocab_size == 32_000
    # the head's layer: q 5,120 x 64 x 80 + k,v 2 x 5,120 x 8 x 80 + o 64 x 80 x 5,120 = 58,982,400;
    # MLP 3 x 5,120 x 25,600 = 393,216,000; norms 2 x 5,120 + the final 5,120 -> 452,213,760
    assert layer_params(head) == 58_982_400 + 393_216_000 + 3 * 5_120 == 452_213_760
    named = memory_budget(target, gpu, BudgetInputs(tp=2, speculative_method="eagle3", draft_model=head,
                                                    num_speculative_tokens=3))
    # qkv reads 2h: + 5,120 x (64 + 2 x 8) x 80 = 32,768,000; lm_head 32,000 x 5,120 = 163,840,000;
    # (452,213,760 + 32,768,000 + 163,840,000) x 2 B / 2 GPUs = 648,821,760; fc 3 x 5,120^2 x 2 B =
    # 157,286,400 on every GPU; d2t 32,000 x 8 B = 256,000
    assert named.draft_weights_bytes == 648_821_760 + 157_286_400 + 256_000 == 806_364_160
    # without the repo: one layer of the target's width, the target's 151,936-row lm_head and 128-wide heads
    formula = memory_budget(target, gpu, BudgetInputs(tp=2, speculative_method="eagle3", num_speculative_tokens=3))
    # (its average layer + qkv 5,120 x 80 x 128 + lm_head 151,936 x 5,120) x 2 B / 2 + fc + d2t 151,936 x 8 B
    guess = layer_params(target) + 52_428_800 + 151_936 * 5_120 + 157_286_400 + 151_936 * 8
    assert formula.draft_weights_bytes == guess == 1_476_441_424  # 670,077,264 B over the head's own
    # the pool: 64 target layers x 2 x 8/2 heads x 128 x 2 B = 131,072 B a token; the head's layer
    # 2 x 4 x 80 x 2 B = 1,280 B (formula: another 128-wide layer, 2,048 B)
    assert (named.kv_bytes_per_token, formula.kv_bytes_per_token) == (131_072 + 1_280, 131_072 + 2_048)
    line = json.loads(term_deploy(named)["speculative_config"])
    assert line == {"method": "eagle3", "num_speculative_tokens": 3, "model": str(tmp_path)}


# yuhuili/EAGLE3-LLaMA3.1-Instruct-8B's config.json (SpecForge's Llama-3-8B EAGLE-3 config and its
# tests carry the same keys): one layer of Llama-3.1-8B's shape, 32,000 LM-head rows
LLAMA31_8B_EAGLE3 = {
    "architectures": ["LlamaForCausalLMEagle3"], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32,
    "num_key_value_heads": 8, "num_hidden_layers": 1, "rms_norm_eps": 1e-05, "tie_word_embeddings": False,
    "torch_dtype": "float16", "vocab_size": 128256, "draft_vocab_size": 32000}


def test_the_llama_3_1_8b_eagle3_head_against_a_logged_load(catalog, tmp_path):
    """vllm-ascend issue #2667 (https://github.com/vllm-project/vllm-ascend/issues/2667, vLLM 0.9.1 on
    an Ascend 910B): Llama-3.1-8B-Instruct with this head, "Loading model weights took 15.7847 GB"
    (the drafter loads inside it, "The EAGLE head shares the same vocab embedding with the target
    model"); the same checkpoint alone logs 14.9889 GiB on CUDA (vllm-0.11.0-llama3.1-8b-l4-1.log):
    the head is 0.7958 GiB. kvplan: 0.7913 GiB, -0.6% (an NPU's allocator, the head's own RoPE table
    and norms not counted)."""
    import json

    from kvplan.units import GIB

    (tmp_path / "config.json").write_text(json.dumps(LLAMA31_8B_EAGLE3))
    head, target = catalog.model(str(tmp_path)), catalog.model("llama3.1-8b")
    budget = memory_budget(target, catalog.gpu("h100"), BudgetInputs(
        speculative_method="eagle3", draft_model=head, num_speculative_tokens=1))
    # layer: attention 2 x 4,096^2 + 2 x 4,096 x 1,024 = 41,943,040; MLP 3 x 4,096 x 14,336 = 176,160,768;
    # norms 3 x 4,096 -> 218,116,096; qkv from 2h: + 4,096 x 48 x 128 = 25,165,824; lm_head 32,000 x 4,096
    # = 131,072,000: 374,353,920 params x 2 B = 748,707,840; fc 3 x 4,096^2 x 2 B = 100,663,296; d2t 256,000
    assert budget.draft_weights_bytes == 748_707_840 + 100_663_296 + 256_000 == 849_627_136
    assert abs(budget.draft_weights_bytes / GIB / (15.7847 - 14.9889) - 1) < 0.01  # 0.79128 / 0.7958: -0.57%
    # named without a method, the head is an EAGLE-3 one, as vLLM infers it from the architecture (it was
    # planned as a whole draft model: 1.3B params and "method": "draft_model" on the deploy line)
    unnamed = memory_budget(target, catalog.gpu("h100"), BudgetInputs(draft_model=head, num_speculative_tokens=1))
    assert (unnamed.speculative_method, unnamed.draft_weights_bytes) == ("eagle3", 849_627_136)


def test_given_draft_weights_replace_the_formula_and_measured_weights_hold_the_drafter(catalog):
    target, gpu = catalog.model("llama3.1-8b"), catalog.gpu("h100")
    given = memory_budget(target, gpu, BudgetInputs(speculative_method="eagle", num_speculative_tokens=3,
                                                    draft_weights_bytes=GIB))
    assert given.draft_weights_bytes == GIB and given.draft_weights_source == "draft_weights_bytes"
    measured = memory_budget(target, gpu, BudgetInputs(speculative_method="eagle", num_speculative_tokens=3,
                                                       weights_bytes=16 * GIB))
    assert measured.weights_bytes == 16 * GIB  # "Model loading took" already holds the drafter


def test_a_drafter_is_refused_where_it_cannot_be(catalog):
    gpu = catalog.gpu("h100")
    with pytest.raises(InputError, match="ships no MTP layers"):
        memory_budget(catalog.model("llama3.1-8b"), gpu, BudgetInputs(speculative_method="mtp"))
    with pytest.raises(InputError, match="needs a draft"):
        memory_budget(catalog.model("llama3.1-8b"), gpu, BudgetInputs(speculative_method="draft_model",
                                                                       num_speculative_tokens=3))
    with pytest.raises(InputError, match="num_speculative_tokens"):
        memory_budget(catalog.model("llama3.1-8b"), gpu, BudgetInputs(speculative_method="eagle"))
    # MTP without a count takes the model's MTP layers (speculative.py: n_predict)
    assert memory_budget(catalog.model("deepseek-v3"), catalog.gpu("h200"), BudgetInputs(
        tp=8, speculative_method="mtp")).lookahead_tokens == 1


def test_vllm_serve_speculative_config_is_read():
    vllm = engine("vllm==0.19")
    fields, ignored = vllm.read_command("vllm serve meta-llama/Llama-3.1-70B -tp 4 --speculative-config "
                                        "'{\"model\": \"llama3.2-1b\", \"num_speculative_tokens\": 5}'")
    assert (fields["speculative_method"], fields["draft_model"], fields["num_speculative_tokens"]) == (
        "draft_model", "llama3.2-1b", 5)
    assert ignored == []
    fields, _ = vllm.read_command("vllm serve Qwen/Qwen3.5-27B --speculative-config="
                                  "'{\"method\": \"mtp\", \"num_speculative_tokens\": 3}'")
    assert (fields["speculative_method"], fields["num_speculative_tokens"]) == ("mtp", 3) and "draft_model" not in fields
    fields, _ = vllm.read_command("vllm serve m --speculative-model llama3.2-1b --num-speculative-tokens 4")
    assert (fields["draft_model"], fields["num_speculative_tokens"]) == ("llama3.2-1b", 4)
    with pytest.raises(InputError, match="not JSON"):
        vllm.read_command("vllm serve m --speculative-config '{model: x}'")


def test_a_check_scenario_carries_the_drafter(catalog):
    """Check-file fields speculative_method / draft_model / draft_weights_gib reach the budget
    (kvplan/calc/check.py scenario_inputs; kvplan check resolves draft_model in the catalog)."""
    from kvplan.calc.check import figures, scenario_inputs
    from kvplan.specs.checkfile import Scenario

    s = Scenario(name="mtp", model="qwen3.5-27b", gpu="h200", speculative_method="mtp", num_speculative_tokens=3,
                 draft_weights_gib=1.0)
    inputs = scenario_inputs(s)
    assert (inputs.speculative_method, inputs.draft_weights_bytes) == ("mtp", GIB)
    model, gpu = catalog.model("qwen3.5-27b"), catalog.gpu("h200")
    plain = s.model_copy(update={"speculative_method": None, "draft_weights_gib": None})
    drafted = memory_budget(model, gpu, inputs)
    assert drafted.weights_bytes - memory_budget(model, gpu, scenario_inputs(plain)).weights_bytes == GIB
    assert drafted.draft_kv_layers == 1
    # the per-request figures hold the MTP layer: one full layer more, 2 x 4 x 256 x 2 B = 4,096 B a token
    assert figures(model, gpu, s).kv_gib_per_request > figures(model, gpu, plain).kv_gib_per_request


def test_an_eagle_head_without_its_repo_says_the_line_needs_it(catalog):
    """kvplan sizes an EAGLE-3 head of the target's shape when none is named, but the engine loads the head
    from the speculative config's "model": the deploy line says what to add."""
    from kvplan.calc.fit import fit

    inputs = BudgetInputs(speculative_method="eagle3", num_speculative_tokens=3)
    r = fit(catalog.model("llama3.1-8b"), catalog.gpu("h100"), 4096, inputs)
    assert r.command.endswith("""--speculative-config '{"method": "eagle3", "num_speculative_tokens": 3}'""")
    assert r.command_note.startswith('add the EAGLE-3 head\'s repo as "model" in the speculative config: vLLM loads')
    mtp = fit(catalog.model("qwen3.5-27b"), catalog.gpu("h100"), 4096, BudgetInputs(
        speculative_method="mtp", num_speculative_tokens=3, tp=2))
    assert mtp.command_note == ""  # MTP layers are the model's own
