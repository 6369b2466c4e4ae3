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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

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
