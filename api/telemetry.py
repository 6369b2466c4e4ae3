"""Correlation ids, structured logs, Prometheus metrics and OpenTelemetry traces.

One pure ASGI middleware does all four for every request: it reads ``X-Correlation-ID``
(or makes one), returns it, tags the logs and the span with it, and times the request
by route. Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a
stream per request.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Final

import orjson
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from transforms.timeutil import format_iso

CORRELATION_HEADER: Final = "X-Correlation-ID"
_HEADER: Final = CORRELATION_HEADER.lower().encode()
_MAX_ID: Final = 128

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")
log = logging.getLogger("atp.api")

# Request latency buckets around the 5 ms goal.
_BUCKETS: Final = (
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0
)  # fmt: skip


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def _accepted(value: bytes) -> str | None:
    """A caller's id is kept if it is short printable ASCII, so logs stay one line each."""
    if 0 < len(value) <= _MAX_ID and all(0x21 <= b <= 0x7E for b in value):
        return value.decode()
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation id, fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": format_iso(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr for the API's and the server's loggers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("atp.api", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


class Metrics:
    """The API's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "atp_api_request_duration_seconds",
            "Request latency, by route template and method",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "atp_api_errors",
            "Answers with status 400 or more, by route template and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.answers = Counter(
            "atp_api_promise_answers",
            "Promise answers (one per line), by confidence class",
            ["class"],
            registry=self.registry,
        )
        self._latency_children: dict[tuple[str, str], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        child = self._latency_children.get((route, method))
        if child is None:
            child = self._latency_children[(route, method)] = self.latency.labels(route, method)
        child.observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()


def tracer_provider(endpoint: str) -> TracerProvider:
    """Spans batched to an OTLP/HTTP collector (``endpoint`` is its base URL)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = (
        endpoint
        if endpoint.rstrip("/").endswith("/v1/traces")
        else f"{endpoint.rstrip('/')}/v1/traces"
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "atp-api"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return provider


@contextlib.contextmanager
def child_span(tracer: trace.Tracer | None, name: str) -> Iterator[None]:
    if tracer is None:
        yield
    else:
        with tracer.start_as_current_span(name):
            yield


class Telemetry:
    """ASGI middleware: correlation id, access log, latency metrics and a server span."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        tracer: trace.Tracer | None = None,
        access_log: bool = True,
        static_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.static_paths = static_paths  # routes FastAPI adds (the spec) carry no scope["route"]
        self.metrics = metrics
        self.tracer = tracer
        self.access_log = access_log

    def _route(self, scope: Scope) -> str:
        """The route template, so that metrics have one series per route, not per key."""
        route = scope.get("route")
        if route is not None:
            return str(route.path)
        return scope["path"] if scope["path"] in self.static_paths else "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                given = _accepted(value)
                break
        cid = given or new_correlation_id()
        token = correlation_id.set(cid)
        header = (_HEADER, cid.encode())
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        span_scope: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if self.tracer is not None:
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            span_scope = self.tracer.start_as_current_span(
                scope["method"], context=extract(carrier), kind=trace.SpanKind.SERVER
            )
        try:
            with span_scope as span:
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception:
                    log.exception("unhandled error", extra={"fields": {"path": scope["path"]}})
                    if response_started:
                        raise
                    await send_with_id(
                        {
                            "type": "http.response.start",
                            "status": 500,
                            "headers": [(b"content-type", b"application/json")],
                        }
                    )
                    body = orjson.dumps({"detail": "internal error", "correlation_id": cid})
                    await send({"type": "http.response.body", "body": body})
                path = self._route(scope)
                if span is not None:
                    span.update_name(f"{scope['method']} {path}")
                    span.set_attribute("http.request.method", scope["method"])
                    span.set_attribute("http.route", path)
                    span.set_attribute("http.response.status_code", status)
                    span.set_attribute("atp.correlation_id", cid)
                    if status >= 500:
                        span.set_status(trace.StatusCode.ERROR)
        finally:
            elapsed = time.perf_counter() - started
            path = self._route(scope)
            self.metrics.observe(path, scope["method"], status, elapsed)
            if self.access_log:
                log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "route": path,
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 3),
                            "client": scope.get("atp.client"),  # the token's name
                        }
                    },
                )
            correlation_id.reset(token)
