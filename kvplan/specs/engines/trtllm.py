"""TensorRT-LLM: the pool is free_gpu_memory_fraction of the memory free after the engine loads.

    pool = free_gpu_memory_fraction x (total - weights - activation - overhead)

The PyTorch backend (1.x, tensorrt_llm/_torch/pyexecutor/_util.py KvCacheCreator): a profiling run of
dummy context requests that fill max_num_tokens (8,192 by default) measures the torch peak and what
grows outside torch (NCCL, CUDA graphs); available = (total - peak + the temporary KV it allocated)
x fraction (_cal_max_memory), the fraction 0.9 by default (KvCacheConfig).

Source: tensorrt_llm/llmapi/llm_args.py KvCacheConfig (free_gpu_memory_fraction 0.9,
tokens_per_block 32); trtllm-serve's options (tensorrt_llm/commands/serve.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvplan.specs.engines.base import BatchLimits, CommandLine, Engine, Replica, Term, forward_pass

if TYPE_CHECKING:
    from kvplan.specs.gpu import GpuSpec
    from kvplan.specs.model import ModelSpec

COMMAND = CommandLine(
    program="trtllm-serve",
    launchers=(("trtllm-serve", "serve"), ("trtllm-serve",)),
    model_flag=None,
    flags={"tp": "--tp_size", "pp": "--pp_size", "max_model_len": "--max_seq_len",
           "util": "--kv_cache_free_gpu_memory_fraction", "max_num_seqs": "--max_batch_size",
           "max_num_batched_tokens": "--max_num_tokens"},
    also_read={"--model": "model"},
    kv_dtypes={},  # set in the --extra_llm_api_options YAML (kv_cache_config.dtype), not by a flag
    program_words=("trtllm-serve",),
    usage="`trtllm-serve MODEL ...`",
)


class Trtllm(Engine):
    """TensorRT-LLM, one preset: its rules are not yet read release by release (docs/engine-rules)."""

    name, display_name = "trtllm", "TensorRT-LLM"
    release = "1.0"
    first: tuple[int, ...] = (1, 0)
    last: tuple[int, ...] | None = None
    encodes: tuple[str, ...] = ("tensorrt_llm/llmapi/llm_args.py KvCacheConfig", "tensorrt_llm/commands/serve.py")
    changes = ("the PyTorch backend, trtllm-serve's default: no built engine; a profiling run of max_num_tokens in "
               "context requests (KvCacheCreator) sets the peak, and the pool is the fraction of the memory free "
               "after it; 32-token blocks, max_num_tokens 8,192 and max_batch_size 2,048 by default")
    util, util_name = 0.90, "free_gpu_memory_fraction"
    logged_block_is_built = True
    disagg_join = "join them with its disaggregated serving's cache transceiver (cache_transceiver_config)"
    util_meaning = "of the memory still free once the engine, its weights and its buffers are loaded"
    block_size = 32
    formula = "util x (total - weights - activation - overhead)"
    source = ("TensorRT-LLM KvCacheConfig: free_gpu_memory_fraction=0.9 of the memory free after "
              "loading the engine and its runtime buffers; tokens_per_block=32")
    command = COMMAND

    def pool(self, total: int, util: float, weights: int, activation: int, overhead: int) -> int:
        return int(util * (total - weights - activation - overhead))

    def auto_kv_dtype(self, model: ModelSpec, dtype: str) -> str:
        """kv_cache_dtype auto takes the checkpoint's KV quantization where it has one ("KV cache
        quantization set to "auto". Using checkpoint KV quantization.": llm_args.py KvCacheConfig,
        quant_config.kv_cache_quant_algo from hf_quant_config.json or config.json)."""
        return model.kv_cache_quant or dtype

    def measured_rest(self, total: float, util: float, weights: float, kv: float) -> float:
        """The fraction is of what is free after the weights and the rest: KV = util x (total - weights - rest)."""
        return total - weights - kv / util

    def batch_limits(self, gpu: GpuSpec | None, total_bytes: int, max_model_len: int = 0,
                     chunked_prefill: bool | None = None) -> BatchLimits:
        """trtllm-serve's defaults: max_num_tokens 8,192, max_batch_size 2,048 (llmapi BaseLlmArgs)."""
        return BatchLimits(8192, 2048, chunked_prefill is not False)

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """The profiling run: context requests of max_seq_len - 1 tokens until max_num_tokens are
        submitted (_create_dummy_context_requests), each producing one row of fp32 logits."""
        tokens = limits.max_num_batched_tokens
        rows = -(-tokens // max(1, min(tokens, replica.max_model_len - 1)))
        forward, formula = forward_pass(model, replica.tp, tokens)
        logits = rows * model.vocab_size * 4
        return Term(forward + logits, f"profiling run of {tokens:,} tokens in {rows:,} requests",
                    formula + f" + {rows:,} x {model.vocab_size:,} x 4 B")


TRTLLM = Trtllm()


class Trtllm0(Trtllm):
    """TensorRT-LLM 0.14 to 0.21: built TensorRT engines (trtllm-build), the C++ runtime's KV cache manager."""

    release = "0.19"
    first: tuple[int, ...] = (0, 14)
    last: tuple[int, ...] | None = (0, 21)
    encodes: tuple[str, ...] = ("cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp (free memory x fraction)",
                                "cpp/tensorrt_llm/batch_manager/trtGptModelInflightBatching.cpp (createBuffers, "
                                "createDecoder)", "tensorrt_llm/commands/build.py (--tokens_per_block)")
    changes = ("the batched decoder (GptDecoderBatched) holds no draft logits unless a draft model is given: "
               "4 B x max_batch_size x vocabulary less before the KV cache is sized")
    # fp32 [B, V] buffers the decoder holds: the embedding bias, the penalty workspace (int32), the
    # penalty layer's runtime logits and the top-k workspace's logits; 0.9 to 0.13 also the draft logits
    decoder_vocab_rows = 4

    def activation(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """The engine's execution context (TensorRT's activations for max_num_tokens, logged as
        'Allocated X MiB for execution context memory'): a forward pass of that many tokens. There is
        no profiling run; the logits live in the runtime's buffers (overhead)."""
        tokens = limits.max_num_batched_tokens
        forward, formula = forward_pass(model, replica.tp, tokens)
        return Term(forward, f"execution context for {tokens:,} tokens", formula)

    def overhead(self, model: ModelSpec, replica: Replica, limits: BatchLimits) -> Term:
        """The C++ runtime's buffers, allocated before the KV cache is sized (batch_manager/
        trtGptModelInflightBatching.cpp: createBuffers, then createDecoder, then the KV cache manager),
        for B = max_batch_size sequences of S = max_seq_len over the vocabulary V (padded to TP),
        fp32 logits, beam 1, Triton's fused batching; what the two log lines count is the runtime's
        BufferManager (MemoryCounters, "GB" = GiB):
          runtime buffers (runtimeBuffers.cpp, transformerBuffers.cpp, decoderBuffers.cpp): the logits
            [B, V] x 4 B, cache indirection [B, S] int32 x 3, log-probs [B, S] fp32 and the slots'
            output ids and log-probs: 4BV + 24BS;
          decoder (gptDecoderBatched.cpp setup, decodingLayerWorkspace.cpp, layers/penaltyLayer.cpp,
            topKSamplingLayer.cpp): ids, parent ids, log-probs and tiled log-probs [B, S] x 4 B; the
            embedding bias, the penalty workspace (int32), the runtime logits and the top-k workspace's
            logits [B, V] x 4 B (0.9 to 0.13 also the draft logits, allocated whatever the decoding
            mode); the top-k workspace's ids and values (B x 1,024 x 8 x 8 B):
            16BS + 16BV (20BV to 0.13) + 64 KiB x B.
        Reproduced, to the logged two decimals: TensorRT-LLM issue #1188 (Qwen2.5-0.5B, 0.14-0.15,
        B 2,048, S 32,768: 2.66 and 5.76 GB) and benchmarks/Suite.md's 0.12 log (GPT-J-6B, B 4,096,
        S 4,098: 1.14 and 4.35 GB)."""
        base = super().overhead(model, replica, limits)
        b, s = limits.max_num_seqs, replica.max_model_len
        v = -(-model.vocab_size // replica.tp) * replica.tp
        rows = self.decoder_vocab_rows
        runtime = 4 * b * v + 24 * b * s
        decoder = 4 * rows * b * v + 16 * b * s + 65_536 * b
        return Term(base.value + runtime + decoder,
                    f"{base.source} + runtime and decoder buffers for {b:,} sequences",
                    f"{base.formula} + runtime 4 x {b:,} x {v:,} + 24 x {b:,} x {s:,} = {runtime:,} B"
                    f" + decoder {4 * rows} x {b:,} x {v:,} + 16 x {b:,} x {s:,} + 64 KiB x {b:,} = {decoder:,} B")


class Trtllm012(Trtllm0):
    """TensorRT-LLM 0.9 to 0.13: the batched decoder (runtime/gptDecoderBatch.cpp) also holds fp32 draft logits."""

    release = "0.12"
    first: tuple[int, ...] = (0, 9)
    last: tuple[int, ...] | None = (0, 13)
    encodes: tuple[str, ...] = (*Trtllm0.encodes, "cpp/tensorrt_llm/runtime/gptDecoderBatch.cpp (setup: mDraftLogits)")
    changes = ("the engine is built ahead (trtllm-build): its tokens per block are the build's --tokens_per_block "
               "(give --block-size); the pool is the fraction of the memory free once the engine is loaded, its "
               "runtime and decoder buffers for max_batch_size sequences allocated; the batched decoder also holds "
               "fp32 draft logits [max_batch_size, vocabulary] whatever the decoding mode (GptDecoderBatch::setup)")
    decoder_vocab_rows = 5


TRTLLM_PRESETS: tuple[Trtllm, ...] = (Trtllm012(), Trtllm0(), TRTLLM)
