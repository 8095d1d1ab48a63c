"""What a model's layers cache: one small frozen class per attention kind (full, sliding window,
chunked local, MLA latent, Mamba state, Gated DeltaNet state, MLP-only), each answering the
questions of :class:`~kvplan.specs.layer_kind.LayerKind` under the same names, so calculators never
branch on `kind`. The kinds a YAML file may name are in :data:`KINDS`, the one registry of them;
:func:`layer_class` looks one up and refuses an unknown name. What each kind prints is in
:mod:`kvplan.specs.layer_text`, not here.

Sizes are integers; dtypes are named (``bf16``) and their widths live in :mod:`kvplan.units`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field, Strict

from kvplan.errors import SpecError
from kvplan.specs.base import Dim, Frozen, Heads, Layers, Tokens
from kvplan.specs.layer_kind import AttentionShape, LayerKind
from kvplan.units import DTYPE_BYTES, KvFormat, ceil_div

__all__ = ["KINDS", "AnyLayers", "AttentionShape", "ChunkedLocalAttention", "DecompressedAttention",
           "FullAttention", "GatedDeltaNetState", "LayerGroup", "LayerKind", "MLALatent", "MambaState",
           "MlpOnly", "SlidingWindowAttention", "layer_class"]


def _check_tp_split(what: str, n: int, tp: int) -> None:
    """Heads split evenly across ranks, or (tp a multiple of n) each head is replicated."""
    if n % tp and tp % n:
        raise SpecError(f"tensor-parallel size {tp} neither divides nor is a multiple of {n} {what}; "
                        f"use a --tp that divides {n}")


class _Kind(Frozen):
    """The answers of a layer that caches nothing and attends to nothing; each kind overrides its own.
    No fields here: each kind declares its own, in the order its YAML lists them."""

    if TYPE_CHECKING:  # every kind's fields, declared for the type checker only
        kind: str
        count: int

    @property
    def is_attention(self) -> bool:
        return False

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 0

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        return 0

    def kv_bytes_per_token(self, kv_format: KvFormat, tp: int = 1) -> int:
        return kv_format.bytes_for(self.kv_elements_per_token(tp)) + self.fixed_bytes_per_token(tp)

    def cached_tokens(self, ctx: int) -> int:
        return 0

    def state_elements(self, tp: int = 1) -> int:
        return 0

    def state_bytes(self, tp: int, dtype_bytes: int) -> int:
        return 0

    def page_size_bytes(self, *, block_size: int, kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        """A state is allocated whole, as one page (vLLM MambaSpec); else block_size tokens of KV."""
        state = self.state_bytes(tp, state_dtype_bytes)
        return state or block_size * self.kv_bytes_per_token(kv_format, tp)

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        return 0

    def max_memory_bytes(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int,
                         kv_format: KvFormat, tp: int = 1, state_dtype_bytes: int) -> int:
        """vLLM V1's ``max_memory_usage_bytes`` (vllm/v1/kv_cache_interface.py), which
        check_enough_kv_cache_memory sums over layers at start-up: max_memory_pages x page_size_bytes,
        per layer on one rank. The pages per kind are in each kind's ``max_memory_pages``."""
        pages = self.max_memory_pages(max_model_len=max_model_len, max_num_batched_tokens=max_num_batched_tokens,
                                      block_size=block_size)
        return pages * self.page_size_bytes(block_size=block_size, kv_format=kv_format, tp=tp,
                                            state_dtype_bytes=state_dtype_bytes)

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return 1

    def kv_page_layout(self, tp: int = 1) -> tuple[int, int] | None:
        return None

    def attended_pairs(self, ctx: int) -> int:
        return 0  # a scan, linear in the tokens: counted with the parameters

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        return None

    def prefill_flops_per_pair(self, num_attention_heads: int = 0) -> int:
        """QK over qk_head_dim and PV over v_head_dim, 2 FLOPs each, for every query head."""
        shape = self.prefill_attention_shape(num_attention_heads)
        return 2 * shape.q_heads * (shape.qk_head_dim + shape.v_head_dim) if shape else 0

    def mha_equivalent(self, num_attention_heads: int) -> LayerKind:
        return self


class _EveryToken(_Kind):
    """Layers that keep every token's K/V (or latent): full attention, MLA, its decompressed form."""

    @property
    def is_attention(self) -> bool:
        return True

    def cached_tokens(self, ctx: int) -> int:
        return ctx

    def attended_pairs(self, ctx: int) -> int:
        """Query-key pairs a causal prefill of `ctx` tokens computes: sum over t of tokens seen."""
        return ctx * (ctx + 1) // 2

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """FullAttentionSpec (and MLAAttentionSpec): cdiv(max_model_len, block_size) pages."""
        return ceil_div(max_model_len, block_size)


class _AttentionLayers(_Kind):
    count: Layers
    num_kv_heads: Heads
    head_dim: Dim

    @property
    def is_attention(self) -> bool:
        return True

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        """vLLM's rule: heads split across ranks; beyond num_kv_heads each rank keeps one replica."""
        _check_tp_split("KV heads", self.num_kv_heads, tp)
        return max(1, self.num_kv_heads // tp)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 2 * self.kv_heads_per_rank(tp) * self.head_dim  # K and V

    def kv_page_layout(self, tp: int = 1) -> tuple[int, int] | None:
        return self.kv_heads_per_rank(tp), self.head_dim

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        return AttentionShape(num_attention_heads, self.num_kv_heads, self.head_dim, self.head_dim)

    def mha_equivalent(self, num_attention_heads: int) -> LayerKind:
        return self.model_copy(update={"num_kv_heads": num_attention_heads})


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

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """SlidingWindowSpec: during a chunked prefill the last window - 1 computed tokens plus the
        newly scheduled ones, at most max_model_len; + 1 page because the window need not start on
        a page boundary."""
        num_tokens = min(self.window - 1 + max_num_batched_tokens, max_model_len)
        return ceil_div(num_tokens, block_size) + 1


class ChunkedLocalAttention(_AttentionLayers):
    """Chunked local attention (Llama-4): tokens attend within their chunk; at most one chunk held."""

    kind: Literal["chunked"] = "chunked"
    chunk: Tokens

    def cached_tokens(self, ctx: int) -> int:
        return min(ctx, self.chunk)

    def attended_pairs(self, ctx: int) -> int:
        full, rest = divmod(ctx, self.chunk)  # tokens attend within their own chunk
        return full * self.chunk * (self.chunk + 1) // 2 + rest * (rest + 1) // 2

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """ChunkedLocalAttentionSpec: at most a chunk of computed tokens plus the newly scheduled
        ones, at most max_model_len; no extra page."""
        return ceil_div(min(self.chunk + max_num_batched_tokens, max_model_len), block_size)


class MLALatent(_EveryToken):
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

    def kv_bytes_per_token(self, kv_format: KvFormat, tp: int = 1) -> int:
        """In fp8 a sparse-attention (DSA) model stores the latent with one fp32 scale per 128 values
        and the RoPE key in bf16 (vLLM's fp8_ds_mla, SGLang's DSATokenToKVPool): 512 + 4 x 4 + 64 x 2 =
        656 B for DeepSeek-V3.2, where a dense MLA model's fp8 latent is 576 B."""
        if self.index_head_dim and kv_format.name == "fp8":
            latent = self.kv_lora_rank + ceil_div(self.kv_lora_rank, 128) * 4 + self.qk_rope_head_dim * 2
            return latent + self.fixed_bytes_per_token(tp)
        return super().kv_bytes_per_token(kv_format, tp)

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        """Prefill runs MLA decompressed: QK over nope + rope dims (192) and PV over v (128)."""
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        return AttentionShape(self.num_heads, self.num_heads, qk, self.v_head_dim)

    def mha_equivalent(self, num_attention_heads: int) -> LayerKind:
        return DecompressedAttention(count=self.count, num_heads=self.num_heads,
                                     k_head_dim=self.qk_nope_head_dim + self.qk_rope_head_dim,
                                     v_head_dim=self.v_head_dim)


class DecompressedAttention(_EveryToken):
    """MLA decompressed: plain multi-head attention with distinct K and V head sizes, what an MLA
    layer would cache without its latent.

    Not a YAML kind (not in KINDS); only built by :meth:`MLALatent.mha_equivalent` for the
    "without GQA" comparison.
    """

    kind: Literal["mha"] = "mha"
    count: Layers
    num_heads: Heads
    k_head_dim: Dim
    v_head_dim: Dim

    def heads_per_rank(self, tp: int = 1) -> int:
        return max(1, self.num_heads // tp)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        _check_tp_split("attention heads", self.num_heads, tp)
        return self.heads_per_rank(tp) * (self.k_head_dim + self.v_head_dim)

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        return self.heads_per_rank(tp)

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        return AttentionShape(self.num_heads, self.num_heads, self.k_head_dim, self.v_head_dim)


SsmDtype = Literal["fp32", "bf16", "fp16"]


def _split_evenly(what: str, n: int, tp: int) -> int:
    if n % tp:
        raise SpecError(f"tensor-parallel size {tp} does not divide the {what} {n}; use a --tp that divides {n}")
    return n // tp


class _ConstantState(_Kind):
    """Layers that keep a fixed state per request and no per-token cache (Mamba, Gated DeltaNet)."""

    def recurrent_elements(self, tp: int = 1) -> int:
        return 0

    def state_bytes(self, tp: int, dtype_bytes: int) -> int:
        """The state's bytes: in the model's dtype, the recurrent part in ssm_dtype where it is set
        (vLLM's mamba_ssm_cache_dtype; Nemotron-3 keeps it in fp32)."""
        recurrent = self.recurrent_elements(tp)
        ssm_dtype: str | None = getattr(self, "ssm_dtype", None)  # a field of each state kind
        width = DTYPE_BYTES[ssm_dtype] if ssm_dtype else dtype_bytes
        return (self.state_elements(tp) - recurrent) * dtype_bytes + recurrent * width

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """MambaSpec (mamba_cache_mode "none", no speculative blocks): one state page, whatever the length."""
        return 1


class MambaState(_ConstantState):
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

    def groups_after_tp_replication(self, tp: int) -> int:
        """Groups after vLLM's replication for TP, all ranks together (unchanged when TP divides them)."""
        if not self.n_groups or self.n_groups % tp == 0:
            return self.n_groups
        return self.n_groups + (tp - self.n_groups)

    def conv_channels(self, tp: int = 1) -> int:
        return self.d_inner + 2 * self.groups_after_tp_replication(tp) * self.d_state

    def state_elements(self, tp: int = 1) -> int:
        if self.num_heads:
            _split_evenly("Mamba heads", self.num_heads, tp)
        conv = _split_evenly("Mamba conv channels", self.conv_channels(tp), tp) * (self.d_conv - 1)
        return conv + _split_evenly("Mamba inner size", self.d_inner, tp) * self.d_state


class GatedDeltaNetState(_ConstantState):
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


class MlpOnly(_Kind):
    """A block with no attention or SSM (Nemotron-H's MLP layers): nothing cached."""

    kind: Literal["mlp"] = "mlp"
    count: Layers


# The one registry of YAML kinds: LayerGroup's union names the same classes (tests check it), as
# pydantic and mypy need the classes spelled out.
_YAML_KINDS = (FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState,
               GatedDeltaNetState, MlpOnly)
KINDS: dict[str, type[_Kind]] = {cls.model_fields["kind"].default: cls for cls in _YAML_KINDS}
LayerGroup = Annotated[
    Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent, MambaState, GatedDeltaNetState,
          MlpOnly],
    Field(discriminator="kind"),
]
AnyLayers = Union[FullAttention, SlidingWindowAttention, ChunkedLocalAttention, MLALatent,
                  MambaState, GatedDeltaNetState, MlpOnly, DecompressedAttention]


def layer_class(kind: str) -> type[_Kind]:
    """The class of a YAML layer kind; an unknown one is one line naming the known kinds."""
    try:
        return KINDS[kind]
    except KeyError:
        raise SpecError(f"unknown layer kind {kind!r}; known kinds: {', '.join(KINDS)}") from None
