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

from pydantic import Field, PositiveInt

from kvplan.errors import SpecError
from kvplan.specs.base import Frozen


def _check_tp_split(what: str, n: int, tp: int) -> None:
    """Heads split evenly across ranks, or (tp a multiple of n) each head is replicated."""
    if n % tp and tp % n:
        raise SpecError(f"tensor-parallel size {tp} neither divides nor is a multiple of {n} {what}; "
                        f"use a --tp that divides {n}")


class _EveryToken:
    """Layers that keep every token's K/V (or latent) and no other state: full attention, MLA."""

    def state_elements(self, tp: int = 1) -> int:
        return 0

    def cached_tokens(self, ctx: int) -> int:
        return ctx

    def attended_pairs(self, ctx: int) -> int:
        """Query-key pairs a causal prefill of `ctx` tokens computes: sum over t of tokens seen."""
        return ctx * (ctx + 1) // 2

    def held_formula(self, ctx: int) -> str:
        return f"ctx {ctx:,}"


class _AttentionLayers(Frozen):
    count: PositiveInt
    num_kv_heads: PositiveInt
    head_dim: PositiveInt

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        """vLLM's rule: heads split across ranks; beyond num_kv_heads each rank keeps one replica."""
        _check_tp_split("KV heads", self.num_kv_heads, tp)
        return max(1, self.num_kv_heads // tp)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 2 * self.kv_heads_per_rank(tp) * self.head_dim  # K and V

    def state_elements(self, tp: int = 1) -> int:
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
    """Sliding-window attention: a layer never holds more than its window."""

    kind: Literal["sliding"] = "sliding"
    window: PositiveInt

    def cached_tokens(self, ctx: int) -> int:
        return min(ctx, self.window)

    def attended_pairs(self, ctx: int) -> int:
        w = min(ctx, self.window)
        return w * (w + 1) // 2 + (ctx - w) * self.window

    def describe(self) -> str:
        return f"{super().describe()}, window {self.window:,}"

    def held_formula(self, ctx: int) -> str:
        return f"min(ctx {ctx:,}, window {self.window:,})"


class ChunkedLocalAttention(_AttentionLayers):
    """Chunked local attention (Llama-4): tokens attend within their chunk; at most one chunk held."""

    kind: Literal["chunked"] = "chunked"
    chunk: PositiveInt

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
    count: PositiveInt
    kv_lora_rank: PositiveInt
    qk_rope_head_dim: PositiveInt
    num_heads: PositiveInt
    qk_nope_head_dim: PositiveInt
    v_head_dim: PositiveInt

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim  # replicated on every rank

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
        return f"latent {self.kv_lora_rank} + rope {self.qk_rope_head_dim}"

    def elements_formula(self, tp: int = 1) -> str:
        return f"(kv_lora_rank {self.kv_lora_rank} + rope {self.qk_rope_head_dim}), on every rank"


class FullAttentionMHA(_EveryToken, Frozen):
    """Plain multi-head attention with distinct K and V head sizes: what MLA would cache decompressed.

    Not a YAML kind; only built by :meth:`MLALatent.mha_equivalent` for the comparison.
    """

    kind: Literal["mha"] = "mha"
    count: PositiveInt
    num_heads: PositiveInt
    k_head_dim: PositiveInt
    v_head_dim: PositiveInt

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


class MambaState(Frozen):
    """Mamba / SSM layers: a constant per-request state, whatever the context.

    State elements = conv_channels * (d_conv - 1) + d_inner * d_state, with
    conv_channels = d_inner + 2 * n_groups * d_state (n_groups = 0 for Mamba-1, whose
    convolution runs over d_inner only). Both split across tensor-parallel ranks.
    """

    kind: Literal["mamba"] = "mamba"
    count: PositiveInt
    d_inner: PositiveInt
    d_state: PositiveInt
    d_conv: PositiveInt
    n_groups: int = Field(default=0, ge=0)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 0

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return 1

    def cached_tokens(self, ctx: int) -> int:
        return 0

    def attended_pairs(self, ctx: int) -> int:
        return 0  # a scan, linear in the tokens: counted with the parameters

    def prefill_flops_per_pair(self, num_attention_heads: int = 0) -> int:
        return 0

    def state_elements(self, tp: int = 1) -> int:
        if self.d_inner % tp:
            raise SpecError(f"tensor-parallel size {tp} does not divide the Mamba inner size "
                            f"{self.d_inner}; use a --tp that divides {self.d_inner}")
        conv_channels = self.d_inner + 2 * self.n_groups * self.d_state
        return (conv_channels * (self.d_conv - 1) + self.d_inner * self.d_state) // tp

    def mha_equivalent(self, num_attention_heads: int) -> MambaState:
        return self

    def describe(self) -> str:
        return f"d_inner {self.d_inner}, state {self.d_state}, conv {self.d_conv}"

    def elements_formula(self, tp: int = 1) -> str:
        return "no per-token cache"

    def state_formula(self, tp: int = 1) -> str:
        conv_channels = self.d_inner + 2 * self.n_groups * self.d_state
        split = f") / TP {tp}" if tp > 1 else ")"
        return (f"(conv {conv_channels:,} x ({self.d_conv} - 1) + ssm {self.d_inner:,} x "
                f"{self.d_state}{split} = {self.state_elements(tp):,} elements")

    def held_formula(self, ctx: int) -> str:
        return "a constant state, whatever the context"


LayerGroup = Annotated[
    Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState],
    Field(discriminator="kind"),
]
AnyLayers = Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent,
                  MambaState, FullAttentionMHA]
KINDS = {cls.model_fields["kind"].default: cls
         for cls in (FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState)}
