"""A real HTTP receiver for channel-sync tests: records every request it gets (time of
arrival, headers, body, whether the HMAC signature checks) and answers by path:

- ``/ok/...``: 200;
- ``/fail-twice/...``: 500 to the first two requests of each idempotency key, then 200;
- ``/always-500/...``: 500;
- ``/refuse/...``: 400;
- ``/throttle/...``: 429 with ``Retry-After: 1`` to each key's first request, then 200.

A request whose signature does not check gets 401.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when the request arrived
    path: str
    key: str  # Idempotency-Key
    attempt: int  # X-ATP-Attempt
    timestamp: str  # X-ATP-Timestamp
    body: dict[str, Any]
    signed: bool  # the signature matched the body
    status: int  # what the receiver answered

    @property
    def channel(self) -> str:
        return str(self.body["channel"])


class Receiver:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._seen: Counter[tuple[str, str]] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(expected, request.headers.get("X-ATP-Signature", ""))
        key = request.headers.get("Idempotency-Key", "")
        behaviour = request.path.split("/")[1]
        headers: dict[str, str] = {}
        with self._lock:
            self._seen[(behaviour, key)] += 1
            seen = self._seen[(behaviour, key)]
            if not signed:
                status = 401
            elif behaviour == "fail-twice":
                status = 500 if seen <= 2 else 200
            elif behaviour == "always-500":
                status = 500
            elif behaviour == "refuse":
                status = 400
            elif behaviour == "throttle" and seen == 1:
                status, headers = 429, {"Retry-After": "1"}
            else:
                status = 200
            self._received.append(
                Received(
                    arrived,
                    request.path,
                    key,
                    int(request.headers.get("X-ATP-Attempt", "0")),
                    request.headers.get("X-ATP-Timestamp", ""),
                    orjson.loads(body),
                    signed,
                    status,
                )
            )
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def received(self, channel: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if channel is None or r.channel == channel]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
