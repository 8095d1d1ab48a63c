"""What would make a deployment fit: the single changes `fit` and `check` both try, in one order.

Each change is a label and the settings it makes, by field name (``tp``, ``kv_dtype``,
``weights_dtype``, ``max_model_len``); the caller applies it to its own inputs and measures, and the
CLI or the check file spells the fields its own way."""

from __future__ import annotations

from dataclasses import dataclass

TP_CHOICES = (2, 4, 8)
QUANTIZED_WEIGHTS = ("fp8", "int4")
SMALL_KV = ("fp8", "int4")  # KV dtypes past which fp8 KV is no saving


@dataclass(frozen=True)
class Change:
    label: str  # in words: "fp8 KV cache"
    settings: dict[str, int | str]  # field -> value: {"kv_dtype": "fp8"}


def single_changes(*, tp: int, kv_dtype: str, weights_dtype: str, largest_max_model_len: int | None) -> list[Change]:
    """The changes worth trying, cheapest first: a shorter max_model_len (when the engine refuses the
    one asked and a shorter one starts), fp8 KV, more tensor parallelism, quantized weights."""
    changes = []
    if largest_max_model_len:
        changes.append(Change(f"max_len {largest_max_model_len:,}", {"max_model_len": largest_max_model_len}))
    if kv_dtype not in SMALL_KV:
        changes.append(Change("fp8 KV cache", {"kv_dtype": "fp8"}))
    changes += [Change(f"tensor parallel {n}", {"tp": n}) for n in TP_CHOICES if n > tp]
    changes += [Change(f"{dtype} weights", {"weights_dtype": dtype}) for dtype in QUANTIZED_WEIGHTS
                if weights_dtype != dtype]
    return changes
