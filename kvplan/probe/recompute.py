"""Recompute, measured: a P-token prefill at the model's shapes, on random weights.

Each timed layer is a pre-norm-free decoder layer at the model's sizes: the QKV projection, causal
attention (torch's scaled_dot_product_attention, GQA as the model groups its heads), the output
projection and a gated MLP (the active experts' width for MoE, as one matmul: the FLOPs a token
does). Two layers with their own weights are timed (one where the model has one) and the rate they
reach is the model's: every layer does the same work per token. Model FLOPs count causal attention
as p(p+1)/2 query-key pairs, the count `kvplan offload` uses, so MFU compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvplan.calc.offload import DEFAULT_MFU
from kvplan.errors import InputError
from kvplan.probe.bench import median_ms
from kvplan.results.probe_offload import ProbeRecompute
from kvplan.specs.gpu import GpuSpec
from kvplan.specs.model import ModelSpec
from kvplan.units import fmt_binary

TIMED_LAYERS = 2


@dataclass(frozen=True)
class Shapes:
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int  # of queries and keys
    v_head_dim: int
    inter: int  # the gated MLP's width a token passes through (top-k + shared experts for MoE)

    def weights(self) -> list[tuple[int, int]]:
        h, q, kv = self.hidden, self.q_heads, self.kv_heads
        qkv = q * self.head_dim + kv * (self.head_dim + self.v_head_dim)
        return [(h, qkv), (q * self.v_head_dim, h), (h, 2 * self.inter), (self.inter, h)]

    def linear_flops(self, p: int) -> int:
        return 2 * p * sum(i * o for i, o in self.weights())

    def attention_flops(self, p: int) -> int:
        """QK over head_dim and PV over v_head_dim, 2 FLOPs each, for every causal pair."""
        return 2 * self.q_heads * (self.head_dim + self.v_head_dim) * (p * (p + 1) // 2) if self.q_heads else 0

    def describe(self) -> str:
        attn = (f"{self.q_heads} q / {self.kv_heads} kv heads x {self.head_dim}"
                + (f" (v {self.v_head_dim})" if self.v_head_dim != self.head_dim else "") if self.q_heads else "no attention")
        return f"hidden {self.hidden:,}, {attn}, MLP {self.inter:,}"


def model_shapes(model: ModelSpec) -> Shapes:
    """The shapes of the model's first attention layers, as a prefill runs them (MLA decompressed),
    and the MLP width a token passes through (ModelSpec.active_intermediate_size)."""
    inter = model.active_intermediate_size
    attn = next((g.prefill_attention_shape(model.num_attention_heads) for g in model.layers if g.is_attention), None)
    if attn is None:
        return Shapes(model.hidden_size, 0, 0, 0, 0, inter)
    return Shapes(model.hidden_size, attn.q_heads, attn.kv_heads, attn.qk_head_dim, attn.v_head_dim, inter)


def need_bytes(s: Shapes, p: int, layers: int, element: int, cpu: bool) -> int:
    """Weights of the timed layers and the largest activations alive at once: the layer's input
    and output, QKV, the MLP's gate and up, and on the CPU the full score matrix that torch's math
    attention builds (a fused GPU kernel keeps it in tiles; there the largest weight is first drawn
    in fp32)."""
    weights = layers * sum(i * o for i, o in s.weights()) * element
    qkv = s.weights()[0][1]
    activations = p * (2 * s.hidden + qkv + 3 * s.inter) * element
    scores = s.q_heads * p * p * 4 if cpu else 0
    staging = 0 if cpu else max(i * o for i, o in s.weights()) * 4  # a weight drawn in fp32, then cast
    return weights + activations + scores + staging


def _layer(s: Shapes, dtype: torch.dtype, device: torch.device, generator: torch.Generator) -> list[torch.Tensor]:
    return [(torch.randn((i, o), generator=generator, device=device) * i**-0.5).to(dtype) for i, o in s.weights()]


def _forward(x: torch.Tensor, layers: list[list[torch.Tensor]], s: Shapes) -> torch.Tensor:
    p = x.shape[0]
    splits = [s.q_heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.v_head_dim]
    for w_qkv, w_o, w_gu, w_down in layers:
        if s.q_heads:
            q, k, v = (x @ w_qkv).split(splits, dim=-1)
            q, k, v = (t.view(p, heads, -1).transpose(0, 1).unsqueeze(0)
                       for t, heads in ((q, s.q_heads), (k, s.kv_heads), (v, s.kv_heads)))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                 enable_gqa=s.q_heads != s.kv_heads)
            x = x + a[0].transpose(0, 1).reshape(p, -1) @ w_o
        gate, up = (x @ w_gu).chunk(2, dim=-1)
        x = x + (torch.nn.functional.silu(gate) * up) @ w_down
    return x


def measure_recompute(model: ModelSpec, prefix: int, device: torch.device, spare: int, gpu: GpuSpec | None,
                      seed: int) -> ProbeRecompute:
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32  # the CPU has no fast bf16 matmul
    s = model_shapes(model)
    layers = min(TIMED_LAYERS, model.num_layers)
    need = need_bytes(s, prefix, layers, torch.finfo(dtype).bits // 8, not cuda)
    if need > spare:
        raise InputError(f"recomputing a {prefix:,}-token prefix of {model.name} needs {fmt_binary(need)} on {device} "
                         f"({layers} layers' weights and the activations), more than the {fmt_binary(max(spare, 0))} "
                         "it can spare; lower --prefix")
    generator = torch.Generator(device=device).manual_seed(seed)
    weights: list[list[torch.Tensor]] = []
    try:
        weights += [_layer(s, dtype, device, generator) for _ in range(layers)]
        x = torch.randn((prefix, s.hidden), generator=generator, device=device).to(dtype)
        ms = median_ms(lambda: _forward(x, weights, s), device, warmup=2 if cuda else 1, runs=10 if cuda else 3)
    except RuntimeError as err:  # out of memory after all (another process took it meanwhile)
        if not isinstance(err, torch.cuda.OutOfMemoryError) and "allocate" not in str(err):
            raise
        raise InputError(f"recomputing a {prefix:,}-token prefix ran out of memory on {device}; lower --prefix") from None
    finally:
        weights.clear()
    flops = layers * (s.linear_flops(prefix) + s.attention_flops(prefix))
    achieved = flops / (ms * 1e-3) / 1e12
    peak, source = gpu.dense_tflops() if gpu else (None, None)
    return ProbeRecompute(prefix_tokens=prefix, dtype=str(dtype).removeprefix("torch."), layers_timed=layers,
                          layers_total=model.num_layers, shapes=s.describe(), flops_timed=flops, ms=ms,
                          achieved_tflops=achieved, peak_tflops=peak, peak_source=source,
                          mfu=achieved / peak if peak else None, assumed_mfu=DEFAULT_MFU)
