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
    tensors = [item for path in sorted(folder.glob("*.safetensors")) for item in _local_tensors(path)]
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


def _safetensors_header(path: Path) -> tuple[object, int]:
    """(the JSON header of a local safetensors file, the bytes of data after it)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                raise ValueError("header length is implausible")
            if length > size - 8:
                raise ValueError(f"its header length says {length:,} bytes, the file holds {size:,}; "
                                 "is it truncated?")
            return loads(handle.read(length), path), size - 8 - length
    except (OSError, ValueError, struct.error) as exc:
        raise SpecError(f"{path}: not a readable safetensors file ({exc})") from None


def _local_tensors(path: Path) -> list[tuple[str, str, int]]:
    """The tensors of one local file, refused where the header claims more data than the file holds
    (a truncated download, or a header written over the wrong file): every tensor's data_offsets
    [begin, end] must lie within the data and span its elements x the dtype's width."""
    header, data_bytes = _safetensors_header(path)
    tensors = header_tensors(header, path)
    entries = header if isinstance(header, dict) else {}
    for name, dtype, count in tensors:
        offsets = entries[name].get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(n, int) and not isinstance(n, bool) for n in offsets) and 0 <= offsets[0] <= offsets[1]):
            raise SpecError(f"{path}: tensor {str(name)[:60]!r} has no data_offsets [begin, end] "
                            f"(got {str(offsets)[:40]}); is the checkpoint complete?")
        if offsets[1] > data_bytes:
            raise SpecError(f"{path}: tensor {str(name)[:60]!r} ends at byte {offsets[1]:,} of the data, past the "
                            f"{data_bytes:,} bytes the file holds; the file is truncated, download it again")
        width = ST_WIDTHS.get(dtype)
        if width is not None and offsets[1] - offsets[0] != count * width:
            raise SpecError(f"{path}: tensor {str(name)[:60]!r} spans {offsets[1] - offsets[0]:,} bytes, but its "
                            f"shape and {dtype} need {count * width:,}; the header is corrupt, download it again")
    return tensors
