"""The probe: allocate paged KV on a real device, run paged decode attention, check the plan.

The only part of kvplan that imports torch (and, on CUDA, Triton and NVML). Install with
`pip install '.[probe]'` in a checkout.
"""

from __future__ import annotations

from kvplan.errors import KvplanError


class ProbeUnavailable(KvplanError):
    """torch (the `probe` extra) is not installed."""


def require_torch():
    try:
        import torch
    except ImportError:
        raise ProbeUnavailable(
            "kvplan probe needs PyTorch: in a kvplan checkout, pip install '.[probe]' (without a GPU, first "
            "pip install torch --index-url https://download.pytorch.org/whl/cpu)") from None
    return torch
