"""Request-length workloads for the fragmentation simulator: generated (fixed, uniform, chat) or read
from a trace file (CSV or JSONL). Generation is seeded and pure; reading a trace is the only I/O.

    fixed:IN,OUT        every request IN prompt tokens and OUT output tokens
    uniform:LO-HI,LO-HI prompt and output lengths uniform in each range (inclusive)
    chat                lognormal lengths with ShareGPT's means as the vLLM paper reports them
                        (Kwon et al., SOSP 2023, Table 1: 161.31 input, 337.99 output tokens);
                        sigma 1.0 for both is our assumption, the paper gives means only
    PATH.csv|PATH.jsonl columns input_tokens, output_tokens and optionally arrival_s
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from kvplan import bounds
from kvplan.errors import InputError
from kvplan.specs.jsonio import loads
from kvplan.specs.yamlio import read_text

CHAT_MEANS = (161.31, 337.99)  # ShareGPT input and output tokens, vLLM paper Table 1
CHAT_SIGMA = 1.0
MAX_ARRIVAL_S = 1e9  # a trace spanning 31 years


@dataclass(frozen=True, slots=True)  # slots: 64 B a request, not 104 (frag holds up to 10M)
class Request:
    inp: int  # prompt tokens (prefilled at admission)
    out: int  # output tokens (one per decode step)
    arrival: int = 0  # decode step at which it arrives

    @property
    def final(self) -> int:
        return self.inp + self.out


def _clip(inp: int, out: int, max_len: int) -> tuple[int, int]:
    inp = max(1, min(inp, max_len))
    return inp, max(0, min(out, max_len - inp))


def _lognormal(rng: random.Random, mean: float) -> int:
    mu = math.log(mean) - CHAT_SIGMA**2 / 2  # so that the lognormal's mean is `mean`
    return max(1, round(rng.lognormvariate(mu, CHAT_SIGMA)))


def generate(spec: str, n: int, seed: int, max_len: int, rate_per_step: float | None = None) -> list[Request]:
    """Requests from a workload spec (see the module doc); arrivals Poisson at `rate_per_step`, or all at 0."""
    if n < 1:
        raise InputError(f"--requests {n} must be at least 1")
    rng = random.Random(seed)
    lengths = _lengths(spec, n, rng)
    arrivals, clock = [], 0.0
    for _ in range(n):
        if rate_per_step:
            clock += rng.expovariate(rate_per_step)
        arrivals.append(int(clock))
    return [Request(*_clip(i, o, max_len), a) for (i, o), a in zip(lengths, arrivals)]


def _lengths(spec: str, n: int, rng: random.Random) -> list[tuple[int, int]]:
    if spec == "chat":
        return [(_lognormal(rng, CHAT_MEANS[0]), _lognormal(rng, CHAT_MEANS[1])) for _ in range(n)]
    fixed = re.fullmatch(r"fixed:(\d+),(\d+)", spec)
    if fixed:
        return [(int(fixed[1]), int(fixed[2]))] * n
    uniform = re.fullmatch(r"uniform:(\d+)-(\d+),(\d+)-(\d+)", spec)
    if uniform:
        a, b, c, d = map(int, uniform.groups())
        if a > b or c > d:
            raise InputError(f"workload '{spec}': each range must be LO-HI with LO <= HI")
        return [(rng.randint(a, b), rng.randint(c, d)) for _ in range(n)]
    raise InputError(f"unknown workload '{spec}'; use fixed:IN,OUT, uniform:LO-HI,LO-HI, chat, or a .csv/.jsonl trace")


def read_trace(path: Path, max_len: int, step_ms: float) -> list[Request]:
    """A trace of input_tokens, output_tokens[, arrival_s]; a bad row is rejected with its line number."""
    if step_ms <= 0:
        raise InputError("--step-ms must be positive (ms per decode step)")
    text = read_text(path, "trace", InputError)
    rows = _jsonl_rows(path, text) if path.suffix == ".jsonl" else _csv_rows(path, text)
    if len(rows) > bounds.MAX_FRAG_REQUESTS:
        raise InputError(f"{path}: {len(rows):,} requests; frag simulates at most {bounds.MAX_FRAG_REQUESTS:,}, "
                         "sample the trace")
    requests = [_request(path, line, row, max_len, step_ms) for line, row in rows]
    if not requests:
        raise InputError(f"{path}: the trace holds no requests")
    return sorted(requests, key=lambda r: r.arrival)


def _csv_rows(path: Path, text: str):
    reader = csv.DictReader(text.splitlines())
    try:
        missing = {"input_tokens", "output_tokens"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}:1: missing column(s) {', '.join(sorted(missing))}; the header needs "
                             "input_tokens,output_tokens[,arrival_s]")
        return [(i + 2, row) for i, row in enumerate(reader)]
    except csv.Error as exc:  # a field over the csv module's limit (131,072 characters); line_num: lines read before it
        problem = (f"a field over {csv.field_size_limit():,} characters" if "field limit" in str(exc)
                   else f"not CSV ({exc})")
        raise InputError(f"{path}:{reader.line_num + 1}: {problem}; a trace row holds token counts "
                         "(input_tokens,output_tokens[,arrival_s])") from None


def _jsonl_rows(path: Path, text: str):
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = loads(line, f"{path}:{i}", InputError)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{i}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{i}: expected an object with input_tokens and output_tokens")
        rows.append((i, row))
    return rows


def _request(path: Path, line: int, row: dict, max_len: int, step_ms: float) -> Request:
    try:
        inp = bounds.tokens(row["input_tokens"], "input_tokens")
        out = bounds.tokens_or_zero(row["output_tokens"], "output_tokens")
        arrival = bounds.number(row.get("arrival_s") or 0, "arrival_s", 0.0, MAX_ARRIVAL_S, "s", lo_open=False)
    except KeyError as exc:
        raise InputError(f"{path}:{line}: missing {exc.args[0]}") from None
    except InputError as err:
        raise InputError(f"{path}:{line}: {err}") from None
    return Request(*_clip(inp, out, max_len), int(arrival * 1000 / step_ms))
