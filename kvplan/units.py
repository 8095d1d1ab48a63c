"""Units and number formats: one place for GiB vs GB, dtype widths and KV storage formats.

Memory is counted in integer bytes and shown in binary units (GiB = 2**30 B), with the decimal
figure (GB = 10**9 B) beside it where people compare with marketing numbers. Bandwidth is always
decimal (GB/s = 10**9 B/s), as datasheets quote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.errors import InputError

KIB, MIB, GIB, TIB = 2**10, 2**20, 2**30, 2**40
KB, MB, GB, TB = 10**3, 10**6, 10**9, 10**12

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}  # the one table of element widths


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class KvFormat:
    """How cached K/V elements are stored: bits per element plus per-group scale overhead."""

    name: str
    bits: int
    group_size: int | None = None  # elements sharing one scale/zero pair; None: no per-token scales
    group_overhead_bytes: int = 0
    note: str = ""

    def bytes_for(self, elements: int) -> int:
        """Bytes to store `elements` values, scales included, rounded up to whole bytes."""
        data = ceil_div(elements * self.bits, 8)
        if self.group_size is None:
            return data
        return data + ceil_div(elements, self.group_size) * self.group_overhead_bytes

    def formula(self, elements: int) -> str:
        if self.group_size is None:
            return f"{elements:,} x {self.bits / 8:g} B ({self.name})"
        return (f"{elements:,} x {self.bits}/8 B + ceil({elements:,}/{self.group_size}) x "
                f"{self.group_overhead_bytes} B scales ({self.name})")


_GROUP_NOTE = ("asymmetric per-group quantization, one fp16 scale + one fp16 zero point per "
               "{g} elements (KIVI-style): {o} B per group")
KV_FORMATS: dict[str, KvFormat] = {
    **{name: KvFormat(name, 8 * DTYPE_BYTES[name]) for name in ("fp32", "bf16", "fp16")},
    "fp8": KvFormat("fp8", 8 * DTYPE_BYTES["fp8"], note="fp8 e4m3 with one per-tensor scale per layer "
                                   "(vLLM's k_scale/v_scale): no per-token overhead"),
    "int8": KvFormat("int8", 8, 64, 4, _GROUP_NOTE.format(g=64, o=4)),
    "int4": KvFormat("int4", 4, 64, 4, _GROUP_NOTE.format(g=64, o=4)),
}


def kv_format(name: str) -> KvFormat:
    try:
        return KV_FORMATS[name.lower()]
    except KeyError:
        raise InputError(f"unknown KV dtype '{name}'; choose one of {', '.join(KV_FORMATS)}") from None


def gib(n: int) -> float:
    return n / GIB


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_binary(n: int) -> str:
    """Largest binary unit that keeps the figure >= 1: '1.25 GiB', '64 KiB', '512 B'."""
    for unit, size in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(n) >= size:
            return f"{n / size:,.2f} {unit}".replace(".00 ", " ")
    return f"{n:,} B"


def fmt_decimal(n: int) -> str:
    for unit, size in (("TB", TB), ("GB", GB), ("MB", MB), ("kB", KB)):
        if abs(n) >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,} B"


def fmt_bytes(n: int) -> str:
    """Exact bytes first, then binary and decimal: '1,342,177,280 B (1.25 GiB, 1.34 GB)'."""
    if abs(n) < KIB:
        return f"{n:,} B"
    return f"{n:,} B ({fmt_binary(n)}, {fmt_decimal(n)})"


def parse_tokens(text: str, name: str = "context") -> int:
    """'4096' -> 4096; '128k' -> 131072 (k = 1024); bounded as every token count is (kvplan.bounds)."""
    from kvplan.bounds import tokens

    return tokens(text, name)
