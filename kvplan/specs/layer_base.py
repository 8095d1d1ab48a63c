"""The shared bases of the layer kinds: what a layer that caches nothing answers (:class:`_Kind`),
layers that keep every token, attention layers with KV heads, and layers that keep a constant state
per request. Each kind (in :mod:`kvplan.specs.layers` and :mod:`kvplan.specs.kinds`) derives from
these and overrides its own answers to :class:`~kvplan.specs.layer_kind.LayerKind`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from kvplan.errors import SpecError
from kvplan.specs.base import Dim, Frozen, Heads, Layers
from kvplan.specs.layer_kind import AttentionShape, BlockCache, LayerKind
from kvplan.units import DTYPE_BYTES, KvFormat, ceil_div


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

    @property
    def block_multiple(self) -> int:
        """The tokens a page's size must be a multiple of for its entries to fill it (1: any)."""
        return 1

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return 0

    def fixed_bytes_per_token(self, tp: int = 1) -> int:
        return 0

    def kv_bytes_per_token(self, kv_format: KvFormat, tp: int = 1) -> int:
        return kv_format.bytes_for(self.kv_elements_per_token(tp)) + self.fixed_bytes_per_token(tp)

    def cached_tokens(self, ctx: int) -> int:
        return 0

    def held_bytes(self, ctx: int, kv_format: KvFormat, tp: int = 1) -> int:
        return self.cached_tokens(ctx) * self.kv_bytes_per_token(kv_format, tp)

    def held_pages(self, ctx: int, block_size: int) -> int:
        return ceil_div(self.cached_tokens(ctx), block_size)

    def state_elements(self, tp: int = 1) -> int:
        return 0

    def state_bytes(self, tp: int, dtype_bytes: int, num_spec: int = 0) -> int:
        return 0

    def conv_row_elements(self, tp: int = 1) -> int:
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

    def block_caches(self, block_size: int) -> tuple[BlockCache, ...]:
        return ()

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
    """Attention with KV heads. head_dim is K's (and the queries'); v_head_dim is V's where it differs
    (MiMo-V2-Flash: K 192, V 128), None meaning equal to head_dim. vLLM's AttentionSpec carries the
    same pair (head_size, head_size_v; vllm/v1/kv_cache_interface.py) and sizes a token of a layer as
    kv_heads x (head_size + head_size_v) x dtype bytes."""

    count: Layers
    num_kv_heads: Heads
    head_dim: Dim
    v_head_dim: Dim | None = None

    @property
    def is_attention(self) -> bool:
        return True

    @property
    def value_dim(self) -> int:
        """V's head size: v_head_dim where it is given, else head_dim."""
        return self.v_head_dim or self.head_dim

    def kv_heads_per_rank(self, tp: int = 1) -> int:
        """vLLM's rule: heads split across ranks; beyond num_kv_heads each rank keeps one replica."""
        _check_tp_split("KV heads", self.num_kv_heads, tp)
        return max(1, self.num_kv_heads // tp)

    def kv_elements_per_token(self, tp: int = 1) -> int:
        return self.kv_heads_per_rank(tp) * (self.head_dim + self.value_dim)  # K and V

    def kv_page_layout(self, tp: int = 1) -> tuple[int, int] | None:
        """FlashInfer's [pages, 2, page_size, kv_heads, head_dim] holds one head size for K and V; with
        two (vLLM 0.34's FlashAttentionDiffKVBackend lays a page [blocks, block_size, kv_heads,
        head_size + head_size_v]) the page is raw bytes here."""
        if self.value_dim != self.head_dim:
            return None
        return self.kv_heads_per_rank(tp), self.head_dim

    def prefill_attention_shape(self, num_attention_heads: int) -> AttentionShape | None:
        return AttentionShape(num_attention_heads, self.num_kv_heads, self.head_dim, self.value_dim)

    def mha_equivalent(self, num_attention_heads: int) -> LayerKind:
        return self.model_copy(update={"num_kv_heads": num_attention_heads})


SsmDtype = Literal["fp32", "bf16", "fp16"]


def _split_evenly(what: str, n: int, tp: int) -> int:
    if n % tp:
        raise SpecError(f"tensor-parallel size {tp} does not divide the {what} {n}; use a --tp that divides {n}")
    return n // tp


class _ConstantState(_Kind):
    """Layers that keep a fixed state per request and no per-token cache (Mamba, Gated DeltaNet)."""

    def recurrent_elements(self, tp: int = 1) -> int:
        return 0

    def state_bytes(self, tp: int, dtype_bytes: int, num_spec: int = 0) -> int:
        """The state's bytes: in the model's dtype, the recurrent part in ssm_dtype where it is set
        (vLLM's mamba_ssm_cache_dtype; Nemotron-3 keeps it in fp32). With speculative decoding the
        convolution state keeps num_spec rows more, in the model's dtype (MambaStateShapeCalculator
        mamba2_state_shape / gated_delta_net_state_shape: conv_kernel - 1 + num_spec rows, 0.10.2 on)."""
        recurrent = self.recurrent_elements(tp)
        ssm_dtype: str | None = getattr(self, "ssm_dtype", None)  # a field of each state kind
        width = DTYPE_BYTES[ssm_dtype] if ssm_dtype else dtype_bytes
        conv = self.state_elements(tp) - recurrent + num_spec * self.conv_row_elements(tp)
        return conv * dtype_bytes + recurrent * width

    def max_memory_pages(self, *, max_model_len: int, max_num_batched_tokens: int, block_size: int) -> int:
        """MambaSpec (mamba_cache_mode "none", no speculative blocks): one state page, whatever the length."""
        return 1


