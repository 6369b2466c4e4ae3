"""Bearer tokens from a tokens file; each token grants scopes (``read``, ``promise``).

The file is JSON, kept outside the repository with mode 600::

    {"tokens": [
      {"name": "oms", "sha256": "<hex SHA-256 of the token>", "scopes": ["read", "promise"]},
      {"name": "dashboard", "token": "<the token itself>", "scopes": ["read"]}
    ]}

``sha256`` is preferred: the file then holds no usable secret. Only the SHA-256 of a
presented token is looked up, so the lookup's timing depends on no secret byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.telemetry import correlation_id

READ: Final = "read"
PROMISE: Final = "promise"
SCOPES: Final = frozenset({READ, PROMISE})


class TokensFileError(ValueError):
    """A tokens file that cannot be used; the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(document: Any) -> dict[str, Principal]:
    """SHA-256 hex digest -> principal, from the tokens file's JSON document."""
    if not isinstance(document, dict) or not isinstance(document.get("tokens"), list):
        raise TokensFileError('tokens file must be an object with a "tokens" list')
    table: dict[str, Principal] = {}
    for index, entry in enumerate(document["tokens"]):
        where = f"tokens[{index}]"
        if not isinstance(entry, dict):
            raise TokensFileError(f"{where} must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise TokensFileError(f"{where}.name must be a non-empty string")
        token, hashed = entry.get("token"), entry.get("sha256")
        if (token is None) == (hashed is None):
            raise TokensFileError(f"{where} needs exactly one of token and sha256")
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise TokensFileError(f"{where}.token must be a string of 16 characters or more")
        if hashed is not None and (
            not isinstance(hashed, str)
            or len(hashed) != 64
            or any(c not in "0123456789abcdef" for c in hashed.lower())
        ):
            raise TokensFileError(f"{where}.sha256 must be 64 hex digits")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
            raise TokensFileError(f"{where}.scopes must be a non-empty list of {sorted(SCOPES)}")
        key = digest(token) if token is not None else hashed.lower()  # type: ignore[union-attr]
        if key in table:
            raise TokensFileError(f"{where} repeats the token of {table[key].name!r}")
        table[key] = Principal(name, frozenset(scopes))
    return table


def load_tokens(path: Path) -> dict[str, Principal]:
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise TokensFileError(f"tokens file not found: {path}") from None
    except orjson.JSONDecodeError as err:
        raise TokensFileError(f"tokens file {path} is not valid JSON ({err})") from None
    return parse_tokens(document)


_AUTHORIZATION: Final = b"authorization"


class BearerAuth:
    """ASGI middleware: the bearer token of a request must grant its path's scope.

    In front of the app rather than a FastAPI dependency: dependency resolution was a
    third of the CPU time of a request. The OpenAPI spec still declares the scheme.
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: dict[str, Principal],
        rules: tuple[tuple[str, str], ...],
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.rules = rules  # (path prefix, scope needed), first match wins
        self.routes = routes  # to label a refused request with its route in metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            needed = next((s for prefix, s in self.rules if scope["path"].startswith(prefix)), None)
            if needed is not None:
                refusal = self._refusal(scope, needed)
                if refusal is not None:
                    await self._refuse(scope, send, *refusal)
                    return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, needed: str) -> tuple[int, str, bytes | None] | None:
        header = next((v for k, v in scope["headers"] if k == _AUTHORIZATION), None)
        if header is None or header[:7].lower() != b"bearer " or not header[7:].strip():
            return 401, "missing bearer token", b"Bearer"
        principal = self.tokens.get(hashlib.sha256(header[7:].strip()).hexdigest())
        if principal is None:
            return 401, "unknown bearer token", b'Bearer error="invalid_token"'
        if needed not in principal.scopes:
            return 403, f"token {principal.name!r} lacks scope {needed!r}", None
        scope["atp.client"] = principal.name
        return None

    async def _refuse(
        self, scope: Scope, send: Send, status: int, detail: str, challenge: bytes | None
    ) -> None:
        for route in self.routes:
            if route.matches(scope)[0] == Match.FULL:
                scope["route"] = route
                break
        body = orjson.dumps({"detail": detail, "correlation_id": correlation_id.get()})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if challenge is not None:
            headers.append((b"www-authenticate", challenge))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
