"""What a model's layers cache: one small frozen class per attention kind (full, sliding window,
chunked local, MLA latent, Mamba state), each answering the same questions under the same names, so
calculators never branch on `kind`:

- ``kv_elements_per_token(tp)``: cached elements (K and V together) per token per layer on one rank;
- ``cached_tokens(ctx)``: how many tokens a layer holds at context ``ctx``;
- ``state_elements(tp)``: constant per-request state per layer on one rank (Mamba);
- ``mha_equivalent(num_attention_heads)``: the same layer without grouped/latent KV sharing.

Sizes are integers; dtypes are named (``bf16``) and their widths live in :mod:`kvplan.units`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, Strict

from kvplan.errors import SpecError
from kvplan.specs.base import Dim, Frozen, Heads, Layers, Tokens
from kvplan.units import ceil_div


def _check_tp_split(what: str, n: int, tp: int) -> None:
    """Heads split evenly across ranks, or (tp a multiple of n) each head is replicated."""
    if n % tp and tp % n:
        raise SpecError(f"tensor-parallel size {tp} neither divides nor is a multiple of {n} {what}; "
                        f"use a --tp that divides {n}")


class _EveryToken:
    """Layers that keep every token's K/V (or latent) and no other state: full attention, MLA."""

    def state_elements(self, tp: int = 1) -> int:
        return 0

    def state_bytes(self, tp: int, dtype_bytes: int) -> int:
        return 0

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        return 0

    def cached_tokens(self, ctx: int) -> int:
        return ctx

    def attended_pairs(self, ctx: int) -> int:
        """Query-key pairs a causal prefill of `ctx` tokens computes: sum over t of tokens seen."""
        return ctx * (ctx + 1) // 2

    def held_formula(self, ctx: int) -> str:
        return f"ctx {ctx:,}"


class _AttentionLayers(Frozen):
    count: Layers
    num_kv_heads: Heads
    head_dim: Dim

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        """vLLM's rule: heads split across ranks; beyond num_kv_heads each rank keeps one replica."""
        _check_tp_split("KV heads", self.num_kv_heads, tp)
        return max(1, self.num_kv_heads // tp)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 2 * self.kv_heads_per_rank(tp) * self.head_dim  # K and V

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        return 0

    def state_elements(self, tp: int = 1) -> int:
        return 0

    def state_bytes(self, tp: int, dtype_bytes: int) -> int:
        return 0

    def mha_equivalent(self, num_attention_heads: int) -> _AttentionLayers:
        return self.model_copy(update={"num_kv_heads": num_attention_heads})

    def prefill_flops_per_pair(self, num_attention_heads: int = 0) -> int:
        """QK and PV for every query head: 2 FLOPs x heads x (head_dim + head_dim) per pair."""
        return 2 * num_attention_heads * 2 * self.head_dim

    def describe(self) -> str:
        return f"{self.num_kv_heads} KV x {self.head_dim}"

    def elements_formula(self, tp: int = 1) -> str:
        shared = f" ({self.num_kv_heads} KV heads / TP {tp})" if tp > 1 else ""
        return f"2 (K,V) x {self.kv_heads_per_rank(tp)} heads{shared} x head_dim {self.head_dim}"


class FullAttention(_EveryToken, _AttentionLayers):
    """Full causal attention (MHA, GQA or MQA by num_kv_heads): caches every token."""

    kind: Literal["full"] = "full"


class SlidingWindowAttention(_AttentionLayers):
    """Sliding-window attention: a layer never holds more than its window. Attention sinks (gpt-oss:
    a learned logit per head that takes softmax mass) are weights, not cache: they add no byte."""

    kind: Literal["sliding"] = "sliding"
    window: Tokens
    sinks: Annotated[bool, Strict()] = False

    def cached_tokens(self, ctx: int) -> int:
        return min(ctx, self.window)

    def attended_pairs(self, ctx: int) -> int:
        w = min(ctx, self.window)
        return w * (w + 1) // 2 + (ctx - w) * self.window

    def describe(self) -> str:
        return f"{super().describe()}, window {self.window:,}" + (" + sinks" if self.sinks else "")

    def held_formula(self, ctx: int) -> str:
        return f"min(ctx {ctx:,}, window {self.window:,})"


class ChunkedLocalAttention(_AttentionLayers):
    """Chunked local attention (Llama-4): tokens attend within their chunk; at most one chunk held."""

    kind: Literal["chunked"] = "chunked"
    chunk: Tokens

    def cached_tokens(self, ctx: int) -> int:
        return min(ctx, self.chunk)

    def attended_pairs(self, ctx: int) -> int:
        full, rest = divmod(ctx, self.chunk)  # tokens attend within their own chunk
        return full * self.chunk * (self.chunk + 1) // 2 + rest * (rest + 1) // 2

    def describe(self) -> str:
        return f"{super().describe()}, chunk {self.chunk:,}"

    def held_formula(self, ctx: int) -> str:
        return f"min(ctx {ctx:,}, chunk {self.chunk:,})"


class MLALatent(_EveryToken, Frozen):
    """Multi-head latent attention (DeepSeek): one compressed latent plus a shared RoPE key per token.

    The latent is not split by heads, so every tensor-parallel rank keeps all of it.
    """

    kind: Literal["mla"] = "mla"
    count: Layers
    kv_lora_rank: Dim
    qk_rope_head_dim: Dim
    num_heads: Heads
    qk_nope_head_dim: Dim
    v_head_dim: Dim

    # DeepSeek sparse attention (V3.2): a lightning indexer caches one key of index_head_dim per
    # token and layer, in vLLM's fp8 format whatever the KV dtype: 1 B per value and one fp32 scale
    # per 128 values (DeepseekV32IndexerCache: 128 + 4 = 132 B), whole on every rank.
    index_head_dim: Dim | None = None

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim  # replicated on every rank

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        if not self.index_head_dim:
            return 0
        return self.index_head_dim + ceil_div(self.index_head_dim, 128) * 4

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return 1  # one latent that every query head reads

    def prefill_flops_per_pair(self, num_attention_heads: int = 0) -> int:
        """Prefill runs MLA decompressed: QK over 192 dims and PV over 128, for every head."""
        return 2 * self.num_heads * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)

    def mha_equivalent(self, num_attention_heads: int) -> FullAttentionMHA:
        return FullAttentionMHA(count=self.count, num_heads=self.num_heads,
                                k_head_dim=self.qk_nope_head_dim + self.qk_rope_head_dim,
                                v_head_dim=self.v_head_dim)

    def describe(self) -> str:
        indexer = f", indexer {self.index_head_dim}" if self.index_head_dim else ""
        return f"latent {self.kv_lora_rank} + rope {self.qk_rope_head_dim}{indexer}"

    def elements_formula(self, tp: int = 1) -> str:
        return f"(kv_lora_rank {self.kv_lora_rank} + rope {self.qk_rope_head_dim}), on every rank"


class FullAttentionMHA(_EveryToken, Frozen):
    """Plain multi-head attention with distinct K and V head sizes: what MLA would cache decompressed.

    Not a YAML kind; only built by :meth:`MLALatent.mha_equivalent` for the comparison.
    """

    kind: Literal["mha"] = "mha"
    count: Layers
    num_heads: Heads
    k_head_dim: Dim
    v_head_dim: Dim

    def kv_elements_per_token(self, tp: int = 1) -> int:
        _check_tp_split("attention heads", self.num_heads, tp)
        return max(1, self.num_heads // tp) * (self.k_head_dim + self.v_head_dim)

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return max(1, self.num_heads // tp)

    def prefill_flops_per_pair(self, num_attention_heads: int = 0) -> int:
        return 2 * self.num_heads * (self.k_head_dim + self.v_head_dim)

    def mha_equivalent(self, num_attention_heads: int) -> FullAttentionMHA:
        return self

    def describe(self) -> str:
        return f"{self.num_heads} heads x (K {self.k_head_dim} + V {self.v_head_dim})"

    def elements_formula(self, tp: int = 1) -> str:
        return f"{max(1, self.num_heads // tp)} heads x (K {self.k_head_dim} + V {self.v_head_dim})"


class _ConstantState:
    """Layers that keep a fixed state per request and no per-token cache (Mamba, Gated DeltaNet), or
    nothing at all (MLP-only blocks)."""

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 0

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        return 0

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return 1

    def cached_tokens(self, ctx: int) -> int:
        return 0

    def attended_pairs(self, ctx: int) -> int:
        return 0  # a scan, linear in the tokens: counted with the parameters

    def prefill_flops_per_pair(self, num_attention_heads: int = 0) -> int:
        return 0

    def mha_equivalent(self, num_attention_heads: int):
        return self

    def elements_formula(self, tp: int = 1) -> str:
        return "no per-token cache"

    def held_formula(self, ctx: int) -> str:
        return "a constant state, whatever the context"

    def state_bytes(self, tp: int, dtype_bytes: int) -> int:
        """The state's bytes: in the model's dtype, the recurrent part in ssm_dtype where it is set
        (vLLM's mamba_ssm_cache_dtype; Nemotron-3 keeps it in fp32)."""
        recurrent = self.recurrent_elements(tp)
        width = SSM_WIDTHS[self.ssm_dtype] if getattr(self, "ssm_dtype", None) else dtype_bytes
        return (self.state_elements(tp) - recurrent) * dtype_bytes + recurrent * width

    def recurrent_elements(self, tp: int = 1) -> int:
        return 0


SSM_WIDTHS = {"fp32": 4, "bf16": 2, "fp16": 2}
SsmDtype = Literal["fp32", "bf16", "fp16"]


def _split_evenly(what: str, n: int, tp: int) -> int:
    if n % tp:
        raise SpecError(f"tensor-parallel size {tp} does not divide the {what} {n}; use a --tp that divides {n}")
    return n // tp


class MambaState(_ConstantState, Frozen):
    """Mamba / SSM layers: a constant per-request state, whatever the context, as vLLM allocates it.

    conv state: conv_channels / TP x (d_conv - 1), conv_channels = d_inner + 2 x n_groups x d_state
                (n_groups = 0 for Mamba-1, whose convolution runs over d_inner only);
    ssm state:  d_inner / TP x d_state (Mamba-2: heads / TP x head_dim x d_state, the same number).
    Under TP, Mamba-2 groups that do not split evenly are replicated up to the TP size (vLLM's
    extra_groups_for_head_shards).
    """

    kind: Literal["mamba"] = "mamba"
    count: Layers
    d_inner: Dim
    d_state: Dim
    d_conv: Dim
    n_groups: Annotated[int, Strict(), Field(ge=0, le=65_536)] = 0
    num_heads: Heads | None = None  # Mamba-2: d_inner = num_heads x head_dim
    ssm_dtype: SsmDtype | None = None  # the ssm state's dtype when it is not the model's

    def recurrent_elements(self, tp: int = 1) -> int:
        return _split_evenly("Mamba inner size", self.d_inner, tp) * self.d_state

    def groups_per_rank_total(self, tp: int) -> int:
        """Groups after vLLM's replication for TP (unchanged when TP divides them)."""
        if not self.n_groups or self.n_groups % tp == 0:
            return self.n_groups
        return self.n_groups + (tp - self.n_groups)

    def conv_channels(self, tp: int = 1) -> int:
        return self.d_inner + 2 * self.groups_per_rank_total(tp) * self.d_state

    def state_elements(self, tp: int = 1) -> int:
        if self.num_heads:
            _split_evenly("Mamba heads", self.num_heads, tp)
        conv = _split_evenly("Mamba conv channels", self.conv_channels(tp), tp) * (self.d_conv - 1)
        return conv + _split_evenly("Mamba inner size", self.d_inner, tp) * self.d_state

    def describe(self) -> str:
        return f"d_inner {self.d_inner}, state {self.d_state}, conv {self.d_conv}" + (
            f", {self.n_groups} groups" if self.n_groups else "")

    def state_formula(self, tp: int = 1) -> str:
        split = f" / TP {tp}" if tp > 1 else ""
        return (f"conv {self.conv_channels(tp):,}{split} x ({self.d_conv} - 1) + ssm {self.d_inner:,}{split} x "
                f"{self.d_state} = {self.state_elements(tp):,} elements")


class GatedDeltaNetState(_ConstantState, Frozen):
    """Gated DeltaNet linear attention (Qwen3-Next): a constant state per request and layer, as vLLM
    allocates it (MambaStateShapeCalculator.gated_delta_net_state_shape):

    conv state:      conv_dim / TP x (conv_kernel - 1), conv_dim = 2 x k_heads x k_dim + v_heads x v_dim;
    recurrent state: v_heads / TP x v_dim x k_dim.
    """

    kind: Literal["gdn"] = "gdn"
    count: Layers
    num_k_heads: Heads
    num_v_heads: Heads
    head_k_dim: Dim
    head_v_dim: Dim
    conv_kernel: Dim
    ssm_dtype: SsmDtype | None = None  # the recurrent state's dtype when it is not the model's

    def recurrent_elements(self, tp: int = 1) -> int:
        return _split_evenly("linear-attention value heads", self.num_v_heads, tp) * self.head_v_dim * self.head_k_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.num_k_heads * self.head_k_dim + self.num_v_heads * self.head_v_dim

    def state_elements(self, tp: int = 1) -> int:
        _split_evenly("linear-attention key heads", self.num_k_heads, tp)
        conv = _split_evenly("linear-attention conv channels", self.conv_dim, tp) * (self.conv_kernel - 1)
        return conv + self.recurrent_elements(tp)

    def describe(self) -> str:
        return f"{self.num_k_heads} K / {self.num_v_heads} V heads x {self.head_k_dim}/{self.head_v_dim}"

    def state_formula(self, tp: int = 1) -> str:
        split = f" / TP {tp}" if tp > 1 else ""
        return (f"conv {self.conv_dim:,}{split} x ({self.conv_kernel} - 1) + recurrent {self.num_v_heads}{split} x "
                f"{self.head_v_dim} x {self.head_k_dim} = {self.state_elements(tp):,} elements")


class MlpOnly(_ConstantState, Frozen):
    """A block with no attention or SSM (Nemotron-H's MLP layers): nothing cached."""

    kind: Literal["mlp"] = "mlp"
    count: Layers

    def state_elements(self, tp: int = 1) -> int:
        return 0

    def describe(self) -> str:
        return "no cache"

    def held_formula(self, ctx: int) -> str:
        return "nothing"


LayerGroup = Annotated[
    Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState, GatedDeltaNetState,
          MlpOnly],
    Field(discriminator="kind"),
]
AnyLayers = Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent,
                  MambaState, GatedDeltaNetState, MlpOnly, FullAttentionMHA]
KINDS = {cls.model_fields["kind"].default: cls
         for cls in (FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState,
                     GatedDeltaNetState, MlpOnly)}
