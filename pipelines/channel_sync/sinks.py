"""Where a channel's changes go: an HTTP webhook, or a JSON-lines file (tests, demos).

A sink makes one attempt and reports what happened; deciding what to do about it is
``pacing.classify``'s job. Sinks are called from worker threads, one request at a time
per call.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

import httpx

from pipelines.channel_sync.change import Change, push_headers
from pipelines.channel_sync.config import FILE, ChannelConfig
from pipelines.channel_sync.pacing import Result, parse_retry_after

DETAIL_CHARS: Final = 500


class Sink(Protocol):
    def push(self, change: Change, attempt: int) -> Result: ...

    def close(self) -> None: ...


class WebhookSink:
    """POST the change as JSON, signed with the channel's HMAC key."""

    def __init__(self, config: ChannelConfig, wall_clock: Callable[[], float] = time.time) -> None:
        assert config.url is not None and config.secret is not None  # checked by the config
        self._url = config.url
        self._secret = config.secret
        self._clock = wall_clock
        self._client = httpx.Client(
            timeout=config.timeout,
            limits=httpx.Limits(max_connections=config.concurrency),
            follow_redirects=False,  # a redirect is the receiver's misconfiguration: a 3xx
            headers={"User-Agent": "atp-stream-channel-sync"},
        )

    def push(self, change: Change, attempt: int) -> Result:
        body = change.body()
        now = self._clock()
        headers = push_headers(change, body, self._secret, attempt, int(now))
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as err:
            return Result(None, f"{type(err).__name__}: {err}"[:DETAIL_CHARS])
        return Result(
            response.status_code,
            response.text[:DETAIL_CHARS],
            parse_retry_after(response.headers.get("Retry-After"), now),
        )

    def close(self) -> None:
        self._client.close()


class FileSink:
    """Append each push's JSON body as a line, flushed to disk before it counts."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()

    def push(self, change: Change, attempt: int) -> Result:
        line = change.body() + b"\n"
        try:
            with self._lock, self._path.open("ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            return Result(None, f"{self._path}: {err.strerror}")
        return Result(200)

    def close(self) -> None:
        pass


def make_sink(config: ChannelConfig) -> Sink:
    if config.type == FILE:
        assert config.path is not None
        return FileSink(config.path)
    return WebhookSink(config)
