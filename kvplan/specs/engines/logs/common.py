"""Clean a pasted start-up log into (worker, message) lines, and tell which engine wrote it.

Logs arrive as users paste them: ANSI colours, carriage-return progress bars with a log line glued
after them, lines hard-wrapped at the terminal's width, docker or journald timestamps, and process
prefixes naming the worker (``(Worker_TP1 pid=..)``, ``(EngineCore_DP0 pid=..) (RayWorkerWrapper
pid=.., ip=..)``, SGLang's ``[date TP1]``). `clean_lines` peels all of that off; the engine modules
match their lines against the message alone.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

from kvplan.errors import SpecError

from .startup import Engine

# ESC [ ... m colour codes and other CSI sequences: "\x1b[1;36m(EngineCore_DP0 pid=165)\x1b[0;0m INFO"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
# Ray's de-duplication note: "Available KV cache memory: 45.32 GiB [repeated 3x across cluster]"
RAY_REPEATED = re.compile(r"\s*\[repeated \d+x across cluster\]\s*$")
# A log record glued after a progress bar whose "\r" was lost: "... 20.10it/s](VllmWorker TP1 pid=1431) INFO"
GLUED_RECORD = re.compile(r"(?<=[^\s)])(?=\([\w ]*pid=\d+[^()]*\)\s+(?:INFO|DEBUG|WARNING|ERROR)\b)")
# docker desktop's own stamp: "2025-02-04 21:21:33 [2025-02-04 05:21:33 TP0] Load weight begin."
DOCKER_STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?Z?\s+(?=\S)")
# journald: "Aug 18 14:15:02 host python3[28145]: (Worker_TP0 pid=28145) INFO ..."
JOURNALD = re.compile(r"^[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d \S+ [\w.-]+\[\d+\]:\s*")
# A process prefix: "(APIServer pid=1) ", "(Worker_TP1 pid=238) ", "(VllmWorker rank=7 pid=775165) ",
# "(RayWorkerWrapper pid=345, ip=10.42.9.225) ", "(VllmWorkerProcess pid=1786) ", "(pid=5123) "
PROCESS = re.compile(r"^\((?P<name>[\w ]*?)\s*(?P<rank>rank=\d+ )?pid=(?P<pid>\d+)(?:, ip=(?P<ip>[\d.:a-f]+))?\)\s*")
# vLLM's record head: V1 "INFO 08-16 02:01:57 [api_server.py:1755] ", V0 "INFO 12-13 19:54:18 worker.py:243] "
VLLM_HEAD = re.compile(r"^(?:INFO|DEBUG|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\s+\[?[\w./-]+:\d+\]\s*")
# SGLang's record head: "[2025-01-23 19:35:14 TP0] ", "[2026-08-27 03:45:24] ", "[2025-.. DP0 TP3 EP3] "
SGLANG_HEAD = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?P<rank>(?: (?:DP|PP|TP|EP)\d+)*)\]\s*")
# SGLang's level and source after the head: "WARNING model_config.py:1178: Casting torch.bfloat16"
SGLANG_LEVEL = re.compile(r"^(?:INFO|DEBUG|WARNING|ERROR)\s+[\w.]+:\d+:\s*")
# TensorRT-LLM's C++ head "[TensorRT-LLM][INFO] " and its Python one "[07/14/2025-05:48:43] [TRT-LLM] [I] "
TRT_HEAD = re.compile(r"^(?:\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\]\s*)?\[(?:TensorRT-LLM|TRT-LLM)\]\s*\[[A-Z]+\]\s*")


# The rank in a worker's process name: "Worker_TP1", "VllmWorker TP0", "Worker_PP1_TP0", "Worker_DP0_TP3"
TP_WORKER = re.compile(r"(?:^|[_ ])((?:DP\d+_)?(?:PP\d+_)?TP\d+)$")


class Line(NamedTuple):
    """One log record: the worker its prefix names ("" for none) and the message after every head."""

    worker: str
    text: str


def clean_lines(text: str) -> list[Line]:
    """Every record of a pasted log, unwrapped, split at carriage returns, heads peeled off."""
    plain = ANSI.sub("", text).replace("\r\n", "\n")
    records: list[Line] = []
    for physical in unwrap(plain.split("\n")):
        for piece in physical.split("\r"):
            for record in GLUED_RECORD.split(piece):
                line = peel(RAY_REPEATED.sub("", record))
                if line.text:
                    records.append(line)
    return records


def unwrap(lines: list[str]) -> list[str]:
    """Join lines a terminal hard-wrapped. The wrap widths are the lengths within 24 characters of
    the longest line (60 to 400) that three or more lines share: a line stripped of its colour codes
    is shorter than the terminal (vLLM 0.10.1.1 logs committed at 147 columns wrap the API server's
    lines at 136: "'model': 'Qwe" / "n2-7B-Instruct'"). A line of such a width continues on the next
    unless the next starts a record of its own."""
    lengths = Counter(len(line) for line in lines)
    longest = max(lengths, default=0)
    widths = {n for n, count in lengths.items() if count >= 3 and longest - 24 <= n} if 60 <= longest <= 400 else set()
    joined: list[str] = []
    previous = ""  # the physical line before, whose width says whether it was cut
    for line in lines:
        if joined and len(previous) in widths and not starts_record(line):
            joined[-1] += line
        else:
            joined.append(line)
        previous = line
    return joined


def starts_record(line: str) -> bool:
    """Whether `line` opens a log record (a stamp, process prefix or level head) rather than continuing one."""
    return any(head.match(line) for head in (DOCKER_STAMP, JOURNALD, PROCESS, VLLM_HEAD, SGLANG_HEAD, TRT_HEAD))


def peel(record: str) -> Line:
    """Strip a record's stamps, process prefixes and level head; name the worker it came from."""
    text = JOURNALD.sub("", DOCKER_STAMP.sub("", record.strip()))
    worker = ""
    while match := PROCESS.match(text):
        worker = worker_name(match) or worker
        text = text[match.end():]
    if match := SGLANG_HEAD.match(text):
        worker = match["rank"].strip() or worker
        text = SGLANG_LEVEL.sub("", text[match.end():])
    text = TRT_HEAD.sub("", VLLM_HEAD.sub("", text))
    return Line(worker, text.strip())


def worker_name(match: re.Match[str]) -> str:
    """A worker's name from its process prefix; "" for the API server and the engine core."""
    name = match["name"].strip()
    if match["rank"]:
        return match["rank"].strip()
    if name.startswith(("APIServer", "EngineCore", "LLMEngine")):
        return ""
    if found := TP_WORKER.search(name):
        return found[1]
    # a Ray or multiprocessing worker: its pid, and its node's address where Ray gives one
    return f"pid={match['pid']}" + (f" ip={match['ip']}" if match["ip"] else "")


# What each engine, and only it, prints; the engine with the most kinds of marker wrote the log.
MARKERS: dict[Engine, tuple[str, ...]] = {
    "vllm": ("GPU KV cache size:", "Available KV cache memory:", "Maximum concurrency for", "Model loading took",
             "Loading model weights took", "vLLM API server version", "Initializing a V1 LLM engine",
             "Memory profiling results", "# GPU blocks:", "GPU blocks:", "non-default args:", "KV cache is needed",
             "Graph capturing finished", "CUDA graph pool memory:", "Free memory on device", "vllm serve",
             "reserved for KV Cache is", "# CUDA blocks:", "Initializing an LLM engine", "Initializing a V0 LLM engine"),
    "sglang": ("server_args=ServerArgs(", "KV Cache is allocated.", "max_total_num_tokens=", "Memory pool end.",
               "Load weight end.", "Load weight begin.", "sglang.launch_server", "sglang serve"),
    "trtllm": ("[TensorRT-LLM]", "[TRT-LLM]", "paged KV cache", "TensorRT-LLM Version", "tokens per block",
               "KV cache primary pool"),
}


def detect(text: str, where: str) -> Engine:
    """The engine that wrote `text`; SpecError where no engine's start-up line is in it."""
    scores = {engine: sum(marker in text for marker in markers) for engine, markers in MARKERS.items()}
    engine, score = max(scores.items(), key=lambda item: item[1])
    if score == 0:
        raise SpecError(f"{where}: no vLLM, SGLang or TensorRT-LLM start-up line found; paste the engine's "
                        "log from its start to 'Application startup complete' (or its KV cache lines)")
    return engine
