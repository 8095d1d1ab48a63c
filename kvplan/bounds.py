"""Every number a user gives, read and bounded in one place: one reader per kind of value.

The command line, check files, vLLM command lines and traces all read their numbers here, so a
token count takes the same suffixes (`8k`, `1m`) and the same limits wherever it is typed, and
nan, inf, an empty string or a value beyond physical sense is one line naming the value and the
fix. The limits are generous on purpose: they refuse what no deployment can mean (a context of
10^30 tokens, a GPU of 10^30 GiB), never an unusual but real setting.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from kvplan.errors import InputError

MAX_TOKENS = 2**30  # 1,073,741,824 tokens: 1,000x the longest context any model offers (1M)
MAX_GIB = 16_384.0  # 16 TiB: 50x the largest GPU (B300, 288 GB), or a host's offload memory
MAX_GBPS = 100_000.0  # 100 TB/s: 12x an NVL72 GPU's NVLink, 12x B200 HBM
MAX_TFLOPS = 100_000.0  # 100 PFLOPS: 20x B200 dense fp8
MAX_PARAMS = 10**14  # 100T parameters: 100x the largest open model
MAX_GPUS = 1_024  # TP, PP or GPUs per node
MAX_REQUESTS = 2**24  # 16,777,216 concurrent requests or a batch: no engine schedules more
MAX_SEED = 2**32 - 1
MAX_LATENCY_US = 10_000_000.0  # 10 s for one transfer
MIN_STEP_MS, MAX_STEP_MS = 0.001, 60_000.0  # one decode step: a microsecond (under one kernel launch) .. a minute
MIN_RATE, MAX_RATE = 1e-6, 1e6  # requests per second: one in 12 days .. a million
MAX_LIST = 10_000  # items in a comma-separated list
MAX_POINTS = 10_000  # values on a swept axis
MAX_BLOCK_SIZE = 2**16  # tokens per KV page
MAX_TIMEOUT_S = 86_400.0  # a day for one measurement


def _refuse(name: str, rest: str) -> InputError:
    """The error for a value refused under `name`: a flag or a file's key as it is ('--ctx'), or a
    calculator's keyword ('ctx'), which the error carries as a field for the caller to spell."""
    return InputError("{" + name + "}" + rest, name) if name.isidentifier() else InputError(name + rest)


def _whole(value: object) -> str:
    """An int as a message shows it: 4,096; one of thousands of digits by its length (str() refuses
    over 4,300 digits, and no line should hold them)."""
    if isinstance(value, int) and abs(value).bit_length() > 128:  # over 38 digits
        return f"(a number of {abs(value).bit_length() * 30103 // 100_000 + 1:,} digits)"
    return f"{value:,}"


_TOKENS = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_TOKEN_SCALE = {"": 1, "k": 1024, "m": 1024**2}


def tokens(text: object, name: str = "tokens", *, minimum: int = 1) -> int:
    """'4096' -> 4096; '128k' -> 131072 (k = 1024, as in '128K context'); '1m' -> 1048576.

    Bounded to minimum..MAX_TOKENS; an int is taken as it is (a YAML or JSON number)."""
    if isinstance(text, bool):
        raise _refuse(name, f" {text} is not a token count; write e.g. 4096, 32k or 1m")
    if isinstance(text, int):
        value = text
    else:
        match = _TOKENS.match(str(text))
        if not match:
            raise _refuse(name, f": cannot read {str(text)!r} as a token count; write e.g. 4096, 32k or 1m")
        if len(match.group(1)) > 40:  # beyond any bound, and beyond what int() reads from a string
            raise _refuse(name, f" {str(text)[:20]}... is out of range; use {minimum:,}..{MAX_TOKENS:,} tokens")
        scaled = Fraction(match.group(1)) * _TOKEN_SCALE[match.group(2).lower()]  # exact: 10^23 stays 10^23
        if scaled.denominator != 1:
            raise _refuse(name, f" {text} is not a whole number of tokens")
        value = int(scaled)
    if not minimum <= value <= MAX_TOKENS:
        raise _refuse(name, f" {_whole(value)} is out of range; use {minimum:,}..{MAX_TOKENS:,} tokens "
                         "(2^30; write e.g. 4096, 32k or 1m)")
    return value


def integer(value: object, name: str, lo: int, hi: int, unit: str = "") -> int:
    """A whole number in lo..hi; a bool, a float or a string is refused by name."""
    if isinstance(value, str):
        typed, text = value, value.strip().replace("_", "")
        if re.fullmatch(r"[+-]?\d{40,}", text):  # beyond every bound, and int() reads at most 4,300 digits
            raise _refuse(name, f" {text[:20]}... is out of range; use {lo:,}..{hi:,}{' ' + unit if unit else ''}")
        try:
            value = int(text)
        except ValueError:
            raise _refuse(name, f" {typed[:40]!r} is not a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(name, f" {repr(value)[:60]} is not a whole number")
    if not lo <= value <= hi:
        raise _refuse(name, f" {_whole(value)} is out of range; use {lo:,}..{hi:,}{' ' + unit if unit else ''}")
    return value


def _fmt(value: float) -> str:
    """1000000.0 -> '1,000,000'; 1e-06 -> '0.000001'; 0.5 -> '0.5'."""
    if abs(value) >= 1e15:
        return f"{value:g}"
    if value == int(value):
        return f"{int(value):,}"
    text = f"{value:.12f}".rstrip("0")
    return text if text != "0." else f"{value:g}"


def number(value: object, name: str, lo: float, hi: float, unit: str = "", *, lo_open: bool = True) -> float:
    """A finite decimal in (lo, hi] (or [lo, hi] with lo_open=False): nan, inf and overflow refused."""
    if isinstance(value, str):
        typed = value
        try:
            value = float(typed.strip())
        except ValueError:
            raise _refuse(name, f" {typed[:40]!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _refuse(name, f" {repr(value)[:60]} is not a number")
    try:
        value = float(value)
    except OverflowError:  # an int beyond a float's 1.8e308
        raise _refuse(name, f" {_whole(value)} is outside ({_fmt(lo)}, {_fmt(hi)}]"
                            f"{' ' + unit if unit else ''}") from None
    if not math.isfinite(value):
        raise _refuse(name, f" {value} is not a number kvplan can use; give a finite one, e.g. 0.9 or 16")
    below = value <= lo if lo_open else value < lo
    if below or value > hi:
        bracket = "(" if lo_open else "["
        raise _refuse(name, f" {_fmt(value)} is outside {bracket}{_fmt(lo)}, {_fmt(hi)}]"
                         f"{' ' + unit if unit else ''}")
    return value


def names(text: str, name: str) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'); an empty item (a lone comma, 'a,,b', '') is refused, not skipped."""
    parts = [part.strip() for part in str(text).split(",")]
    if not all(parts):
        raise _refuse(name, f" {str(text)!r} has an empty item; give names separated by commas, e.g. a,b")
    if len(parts) > MAX_LIST:
        raise _refuse(name, f" has {len(parts):,} items; give at most {MAX_LIST:,}")
    return tuple(parts)


def fraction(value: object, name: str) -> float:
    return number(value, name, 0.0, 1.0)


def gib(value: object, name: str) -> float:
    return number(value, name, 0.0, MAX_GIB, "GiB")


def gib_or_zero(value: object, name: str) -> float:
    return number(value, name, 0.0, MAX_GIB, "GiB", lo_open=False)


def gbps(value: object, name: str) -> float:
    return number(value, name, 0.0, MAX_GBPS, "GB/s")


def tflops(value: object, name: str) -> float:
    return number(value, name, 0.0, MAX_TFLOPS, "TFLOPS")


def params(value: object, name: str) -> float:
    return number(value, name, 0.0, float(MAX_PARAMS), "parameters")


def rate(value: object, name: str) -> float:
    return number(value, name, MIN_RATE, MAX_RATE, "requests/s", lo_open=False)


def step_ms(value: object, name: str) -> float:
    """A decode step in ms. Bounded below: it turns seconds into steps, and --step-ms 1e-300 made an
    arrival rate of 1e-297 requests a step, runs of 10^297 steps, and figures past float precision."""
    return number(value, name, MIN_STEP_MS, MAX_STEP_MS, "ms", lo_open=False)


def latency_us(value: object, name: str) -> float:
    return number(value, name, 0.0, MAX_LATENCY_US, "us", lo_open=False)


def seconds(value: object, name: str) -> float:
    return number(value, name, 0.0, MAX_TIMEOUT_S, "s")


def gpus(value: object, name: str) -> int:
    return integer(value, name, 1, MAX_GPUS, "GPUs")


def requests(value: object, name: str) -> int:
    return integer(value, name, 1, MAX_REQUESTS, "requests")


def seed(value: object, name: str) -> int:
    return integer(value, name, 0, MAX_SEED)


def block_size(value: object, name: str) -> int:
    return integer(value, name, 1, MAX_BLOCK_SIZE, "tokens (engines use 16)")


def tokens_or_zero(value: object, name: str) -> int:
    """A token count where 0 means something (no output tokens, no shared prefix)."""
    return tokens(value, name, minimum=0)


MAX_FRAG_REQUESTS = 10_000_000  # a trace or generated workload `frag` simulates (1M takes seconds)


def frag_requests(value: object, name: str) -> int:
    return integer(value, name, 1, MAX_FRAG_REQUESTS, "requests")


def axis(text: str, name: str) -> tuple[int, ...]:
    """'1k..128k' (powers of two from lo to hi, both included) or '1k,4k,16k' (a list)."""
    def number(part: str) -> int:
        return tokens(part, "--ctx") if name == "ctx" else integer(part, f"--{name}", 1, MAX_REQUESTS)

    ranged = re.fullmatch(r"\s*([^.]+)\.\.([^.]+)\s*", text)
    if ranged:
        lo, hi = number(ranged[1]), number(ranged[2])
        if lo >= hi:
            raise InputError(f"--{name} {text}: a range goes from low to high (e.g. 1k..128k)")
        values = [lo]
        while values[-1] * 2 < hi:
            values.append(values[-1] * 2)
        values.append(hi)
    else:
        values = [number(part) for part in names(text, f"--{name}")]
    if not values or len(values) > MAX_POINTS:
        raise InputError(f"--{name} {text}: give 1..{MAX_POINTS:,} values")
    if name == "ctx" and max(values) > MAX_TOKENS:
        raise InputError(f"--ctx {text}: beyond {MAX_TOKENS:,} tokens")
    return tuple(values)


def mm_limits(text: object, name: str) -> tuple[tuple[str, int], ...]:
    """vLLM's --limit-mm-per-prompt (vllm/config/multimodal.py): JSON of modality -> count, or ->
    {"count": N, ...} (the dummy options of 0.11 on); a mapping as a check file gives it."""
    import json

    fix = "; give JSON like '{\"image\": 2, \"video\": 0}'"
    raw = text
    if isinstance(text, str):
        try:
            raw = json.loads(text)
        except ValueError:
            raise _refuse(name, f" '{text}' is not JSON{fix}") from None
    if not isinstance(raw, dict):
        raise _refuse(name, f" {text!r} is not a JSON object{fix}")
    pairs = []
    for modality, value in raw.items():
        count = value.get("count", 999) if isinstance(value, dict) else value
        pairs.append((str(modality), integer(count, name, 0, MAX_REQUESTS, f" {modality} items")))
    return tuple(pairs)


def disaggregation_mode(value: object, name: str) -> str:
    """A disaggregated worker's role, as SGLang's --disaggregation-mode names it: prefill or decode."""
    if value not in ("prefill", "decode"):
        raise _refuse(name, f" '{value}' is not a role; choose prefill or decode")
    return str(value)


def mm_encoder_tp_mode(value: object, name: str) -> str:
    """vLLM's --mm-encoder-tp-mode: weights (the vision tower sharded like the model) or data."""
    if value not in ("weights", "data"):
        raise _refuse(name, f" '{value}' is not a mode; choose weights or data")
    return str(value)
