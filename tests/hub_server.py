"""A local stand-in for the Hugging Face Hub, for tests: the endpoints huggingface_hub calls to
download a file and to read safetensors headers by range request, served from memory on
127.0.0.1. Point the client at it with HF_ENDPOINT. Nothing here touches the network."""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Repo:
    sha: str
    files: dict[str, bytes]
    gated: bool = False  # answers 401 GatedRepo unless the request carries TOKEN


TOKEN = "hf_test_token"
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], width: dict[str, float] | None = None) -> bytes:
    """A safetensors file: the 8-byte header length, the JSON header, then zeroed data."""
    widths = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4, "U8": 1, "I8": 1, **(width or {})}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = int(math.prod(shape) * widths[dtype])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(min(offset, 1 << 16))  # data past 64 KiB is never read


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub.serve(self, body=False)

            def do_GET(self):
                hub.serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append(f"{handler.command} {handler.path}")
        match = RESOLVE.match(handler.path.split("?")[0])
        repo = self.repos.get(match["repo"]) if match else None
        if repo is None:
            return self.reply(handler, 404, b"", {"X-Error-Code": "RepoNotFound"})
        if repo.gated and handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(handler, 401, b"", {"X-Error-Code": "GatedRepo"})
        if match["rev"] not in ("main", repo.sha):
            return self.reply(handler, 404, b"", {"X-Error-Code": "RevisionNotFound"})
        data = repo.files.get(match["path"])
        if data is None:
            return self.reply(handler, 404, b"", {"X-Error-Code": "EntryNotFound"})
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        status, data = self.ranged(handler.headers.get("Range"), data)
        self.reply(handler, status, data if body else b"", headers, length=len(data))

    @staticmethod
    def ranged(header: str | None, data: bytes) -> tuple[int, bytes]:
        match = re.match(r"bytes=(\d+)-(\d*)", header or "")
        if not match:
            return 200, data
        start, end = int(match[1]), int(match[2]) if match[2] else len(data) - 1
        return 206, data[start:end + 1]

    @staticmethod
    def reply(handler, status: int, data: bytes, headers: dict, length: int | None = None) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data) if length is None else length))
        handler.end_headers()
        if data:
            handler.wfile.write(data)
