"""The FastAPI application: routes, security, error answers and lifecycle."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.auth import PROMISE, READ, BearerAuth
from api.models import (
    ID_MAX,
    ID_PATTERN,
    ErrorAnswer,
    ItemAnswer,
    PromiseAnswer,
    PromiseBatchAnswer,
    PromiseBatchRequest,
    PromiseRequest,
    SnapshotAnswer,
    Status,
    ValidationErrorAnswer,
)
from api.service import (
    Decoded,
    LineError,
    item_answer,
    promise_answer,
    resolve,
    ship_complete_date,
    snapshot_answer,
)
from api.settings import Settings
from api.store import Read, ReadStore
from api.telemetry import Metrics, Telemetry, child_span, correlation_id, log, tracer_provider
from state.snapshot_json import SnapshotFormatError
from transforms.timeutil import parse_iso

# Path ids are checked here, not declared as FastAPI parameters: FastAPI's per-request
# parameter resolution cost a quarter of a GET's CPU time. The spec still lists them.
_ID_RULE = {"type": "string", "minLength": 1, "maxLength": ID_MAX, "pattern": ID_PATTERN}
_ID_RE = re.compile(ID_PATTERN)


def _path_parameters(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{n}_id",
            "in": "path",
            "required": True,
            "description": f"{n} id",
            "schema": _ID_RULE,
        }
        for n in names
    ]


def _path_id(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    if len(value) > ID_MAX or not _ID_RE.fullmatch(value):
        raise RequestValidationError(
            [
                {
                    "loc": ("path", name),
                    "msg": f"must be 1 to {ID_MAX} characters, without control characters",
                    "type": "string_pattern_mismatch",
                }
            ]
        )
    return value


# The scheme BearerAuth enforces, declared for the spec; x-scope names what a token needs.
_SECURITY_SCHEMES = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "a token from the API's tokens file, with the operation's scope",
    }
}
_READ_SCOPE = {"security": [{"HTTPBearer": []}], "x-scope": READ}
_PROMISE_SCOPE = {"security": [{"HTTPBearer": []}], "x-scope": PROMISE}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _error(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"detail": detail, "correlation_id": correlation_id.get()}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _now_ms() -> int:
    # Wall clock: a serving concern (a snapshot's age, a promise's default time), never
    # used to fold events.
    return time.time_ns() // 1_000_000


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_answer(errors: list[dict[str, str]]) -> Response:
    summary = "; ".join(f"{e['loc']}: {e['message']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    body = {
        "detail": f"invalid request: {summary}{more}",
        "errors": errors,
        "correlation_id": correlation_id.get(),
    }
    return _json(body, 422)


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "no token, or an unknown token"},
    403: {"model": ErrorAnswer, "description": "the token lacks the scope"},
    422: {"model": ValidationErrorAnswer, "description": "the request is not valid"},
    503: {"model": ErrorAnswer, "description": "the serving store is unavailable"},
}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    400: {"model": ErrorAnswer, "description": "the body cannot be read at all (not UTF-8)"},
}


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    decoded = Decoded(settings.decode_cache)
    provider = tracer_provider(settings.otlp_endpoint) if settings.otlp_endpoint else None
    tracer = None if provider is None else provider.get_tracer("atp.api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = ReadStore.connect(
            settings.redis_url,
            settings.redis_user,
            settings.redis_password,
            settings.redis_max_connections,
            settings.redis_timeout_s,
        )
        try:
            yield
        finally:
            await app.state.store.close()
            if provider is not None:
                provider.shutdown()  # flushes the spans still batched

    app = FastAPI(
        title="atp-stream read API",
        version="1.0.0",
        description="Available-to-promise snapshots and promises, read from the serving "
        "store. Every answer carries the X-Correlation-ID header (the caller's, or a new one).",
        lifespan=lifespan,
    )
    static = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(
        BearerAuth,
        tokens=settings.tokens,
        rules=(("/v1/atp/", READ), ("/v1/promise", PROMISE)),
        routes=app.router.routes,
    )
    app.add_middleware(  # outermost: it also sees the refusals of BearerAuth
        Telemetry,
        metrics=metrics,
        tracer=tracer,
        access_log=settings.access_log,
        static_paths=frozenset(p for p in static if p),
    )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> Response:
        return _error(err.status_code, str(err.detail), err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> Response:
        errors = [
            {"loc": _loc(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
            for e in err.errors()
        ]
        return _validation_answer(errors)

    @app.exception_handler(LineError)
    async def bad_line(_: Request, err: LineError) -> Response:
        return _validation_answer([{"loc": err.loc, "message": err.message, "type": "value_error"}])

    @app.exception_handler(redis.exceptions.RedisError)
    async def store_down(_: Request, err: redis.exceptions.RedisError) -> Response:
        log.error("serving store error", extra={"fields": {"error": repr(err)}})
        return _error(503, f"serving store unavailable: {type(err).__name__}")

    @app.exception_handler(SnapshotFormatError)
    async def bad_snapshot(_: Request, err: SnapshotFormatError) -> Response:
        log.error("unreadable stored snapshot", extra={"fields": {"error": str(err)}})
        return _error(500, f"a stored snapshot is unreadable: {err}")

    async def read(request: Request, reads: list[Read]) -> list[dict[str, bytes]]:
        store: ReadStore = request.app.state.store
        with child_span(tracer, "serving store read"):
            return await store.read(reads)

    @app.get(
        "/v1/atp/{item_id}/{location_id}",
        response_model=SnapshotAnswer,
        responses={**_ERRORS, 404: {"model": ErrorAnswer, "description": "no snapshot"}},
        openapi_extra={**_READ_SCOPE, "parameters": _path_parameters("item", "location")},
        tags=["atp"],
        summary="The snapshot of one item at one location, with its age",
    )
    async def get_snapshot(request: Request) -> Response:
        item_id, location_id = _path_id(request, "item_id"), _path_id(request, "location_id")
        (found,) = await read(request, [Read(item_id, (location_id,))])
        raw = found.get(location_id)
        if raw is None:
            return _error(404, f"no snapshot for item {item_id!r} at {location_id!r}")
        return _json(snapshot_answer(decoded(raw).document, _now_ms()))

    @app.get(
        "/v1/atp/{item_id}",
        response_model=ItemAnswer,
        responses={**_ERRORS, 404: {"model": ErrorAnswer, "description": "no snapshot"}},
        openapi_extra={**_READ_SCOPE, "parameters": _path_parameters("item")},
        tags=["atp"],
        summary="Every location of an item, and the network totals",
    )
    async def get_item(request: Request) -> Response:
        item_id = _path_id(request, "item_id")
        (found,) = await read(request, [Read(item_id)])
        if not found:
            return _error(404, f"no snapshot for item {item_id!r}")
        return _json(item_answer(item_id, found, decoded, _now_ms()))

    @app.post(
        "/v1/promise",
        response_model=PromiseAnswer,
        responses=_BODY_ERRORS,
        openapi_extra=_PROMISE_SCOPE,
        tags=["promise"],
        summary="Promise one line: class, date, location and the snapshots used",
    )
    async def post_promise(request: Request, body: PromiseRequest) -> Response:
        line = resolve(body, settings.policy, _now_ms(), "body")
        (found,) = await read(request, [line.read])
        answer = promise_answer(line, decoded.all(found))
        metrics.answers.labels(answer["class"]).inc()
        return _json(answer)

    @app.post(
        "/v1/promise:batch",
        response_model=PromiseBatchAnswer,
        responses=_BODY_ERRORS,
        openapi_extra=_PROMISE_SCOPE,
        tags=["promise"],
        summary="Promise the lines of a cart or an order, from one read of the store",
    )
    async def post_promise_batch(request: Request, body: PromiseBatchRequest) -> Response:
        default_at = _now_ms() if body.at is None else parse_iso(body.at)
        lines = [
            resolve(line, settings.policy, default_at, f"body.lines[{i}]")
            for i, line in enumerate(body.lines)
        ]
        found = await read(request, [line.read for line in lines])
        answers = [
            promise_answer(line, decoded.all(f)) for line, f in zip(lines, found, strict=True)
        ]
        for answer in answers:
            metrics.answers.labels(answer["class"]).inc()
        return _json({"lines": answers, "ship_complete_date": ship_complete_date(answers)})

    @app.get("/healthz", response_model=Status, tags=["operations"], summary="The process runs")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=Status,
        responses={503: {"model": Status, "description": "the serving store does not answer"}},
        tags=["operations"],
        summary="The serving store answers",
    )
    async def readyz(request: Request) -> Response:
        try:
            await request.app.state.store.ping()
        except redis.exceptions.RedisError as err:
            return _json({"status": "unavailable", "detail": type(err).__name__}, 503)
        return _json({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.state.metrics = metrics
    _complete_spec(app, [c.channel for c in settings.policy.channels])
    return app


def _complete_spec(app: FastAPI, channels: list[str]) -> None:
    """The bearer scheme, and the channels of the policy loaded at start as an enum."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            spec["components"]["securitySchemes"] = _SECURITY_SCHEMES
            field = spec["components"]["schemas"]["PromiseRequest"]["properties"]["channel"]
            branches = [b for b in field["anyOf"] if b.get("type") != "string" or channels]
            for branch in branches:
                if branch.get("type") == "string":
                    branch["enum"] = channels
            field["anyOf"] = branches
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
