"""What a checkpoint's files say about its weights: every tensor's dtype and element count from the
safetensors headers (read without the weights), and the index's total_size."""

from __future__ import annotations

import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kvplan.errors import SpecError
from kvplan.specs.jsonio import loads

_ST_DTYPES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F8_E4M3": "fp8"}
# Tensor names of the towers that run on images or audio, not on every token (transformers' names).
TOWER = re.compile(r"(^|\.)(vision_tower|vision_model|visual|vision_encoder|audio_tower|audio_model|"
                   r"multi_modal_projector|mm_projector|vision_projector)\.")


# bytes per element of each safetensors dtype (packed 4-bit formats are stored as U8 or I32)
ST_WIDTHS = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
             "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint's files say about its weights: every tensor's (name, dtype, element count)
    from the safetensors headers, and the index's total_size, where either is known."""

    tensors: tuple[tuple[str, str, int], ...] = ()
    total_size: int | None = None

    def tower_params(self) -> int | None:
        """Elements of the vision / audio towers and their projectors, told apart by tensor name."""
        if not self.tensors:
            return None
        return sum(count for name, _, count in self.tensors if TOWER.search(name))

    @property
    def bytes(self) -> int | None:
        """The weights' bytes, exactly: elements x width per tensor (else the index's total_size)."""
        if self.tensors:
            return sum(count * ST_WIDTHS.get(dtype, 2) for _, dtype, count in self.tensors)
        return self.total_size

    def params(self) -> tuple[int, str] | None:
        """(tensor elements, the dtype holding most of them), or None without headers."""
        if not self.tensors:
            return None
        by_dtype: Counter[str] = Counter()
        for _, dtype, count in self.tensors:
            by_dtype[dtype] += count
        return sum(by_dtype.values()), _ST_DTYPES.get(by_dtype.most_common(1)[0][0], "bf16")


def header_tensors(header: object, where: object = "safetensors header") -> list[tuple[str, str, int]]:
    """(name, dtype, element count) of every tensor a safetensors header describes; a header whose
    entries are not {dtype: str, shape: [ints]} is one SpecError naming the file and tensor."""
    if not isinstance(header, dict):
        raise SpecError(f"{where}: not a safetensors header (a JSON object of tensors)")
    tensors = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        shape = t.get("shape") if isinstance(t, dict) else None
        if not (isinstance(t, dict) and isinstance(t.get("dtype"), str) and isinstance(shape, list) and all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 2**40 for n in shape)):
            raise SpecError(f"{where}: tensor {str(name)[:60]!r} is not {{dtype, shape: [whole numbers]}}; "
                            "is the checkpoint complete?")
        tensors.append((name, t["dtype"], math.prod(shape)))
    return tensors


def local_checkpoint(folder: Path) -> Checkpoint:
    """The headers of every *.safetensors file in a folder, and its index's total_size."""
    tensors = [item for path in sorted(folder.glob("*.safetensors"))
               for item in header_tensors(_safetensors_header(path), path)]
    return Checkpoint(tuple(tensors), index_total_size(folder / "model.safetensors.index.json"))


def index_total_size(path: Path) -> int | None:
    try:
        total = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("total_size")
    except (OSError, ValueError, AttributeError, RecursionError):  # no usable index: the headers alone
        return None
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None


def safetensors_params(folder: Path) -> tuple[int, str] | None:
    """(parameter count, dominant dtype) from the headers of every *.safetensors file, or None."""
    return local_checkpoint(folder).params()


def _safetensors_header(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                raise ValueError("header length is implausible")
            return loads(handle.read(length), path)
    except (OSError, ValueError, struct.error) as exc:
        raise SpecError(f"{path}: not a readable safetensors file ({exc})") from None
