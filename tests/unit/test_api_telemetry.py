"""The API's telemetry middleware around a failing ASGI app: a 500 that still names the request."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from api.telemetry import Metrics, Telemetry


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/atp/X", "headers": headers}
    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_unhandled_error_answers_500_with_the_correlation_id(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    app = Telemetry(failing_app, metrics, access_log=False)
    cid = 'order-"7"\\x'  # printable ASCII, quotes and backslash included
    with caplog.at_level(logging.ERROR, logger="atp.api"):
        start, body = await call(app, [(b"x-correlation-id", cid.encode())])
    assert start["status"] == 500
    assert (b"x-correlation-id", cid.encode()) in start["headers"]
    assert orjson.loads(body["body"]) == {"detail": "internal error", "correlation_id": cid}
    assert "unhandled error" in caplog.text and "boom" in caplog.text
    count = metrics.registry.get_sample_value(
        "atp_api_errors_total", {"route": "unmatched", "status": "500"}
    )
    assert count == 1
