"""The channels file: per channel, where its changes go and how fast.

```json
{"channels": {"web": {"type": "webhook", "url": "https://...", "secret_env": "WEB_KEY",
                      "rate": 5, "burst": 10, "coalesce_ms": 1000, "timeout": 10}},
 "ignore": ["store-pos"]}
```

The HMAC key is never in the file: ``secret_env`` names an environment variable,
``secret_file`` a file holding it. Unknown fields are errors, so a typo cannot silently
fall back to a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

WEBHOOK: Final = "webhook"
FILE: Final = "file"

_FIELDS: Final = {
    "type",
    "url",
    "path",
    "secret_env",
    "secret_file",
    "rate",
    "burst",
    "coalesce_ms",
    "timeout",
    "max_attempts",
    "backoff_ms",
    "max_backoff_ms",
    "concurrency",
}


class ConfigError(ValueError):
    """A channels file that cannot be used as written."""


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    channel: str
    type: str
    url: str | None = None  # webhook
    path: str | None = None  # file sink
    secret: bytes | None = None  # the HMAC key, read from the environment or a file
    rate: float = 10.0  # requests per second, retries included
    burst: int = 10
    coalesce_ms: int = 1_000
    timeout: float = 10.0  # seconds, per request
    max_attempts: int = 8
    backoff_ms: int = 500
    max_backoff_ms: int = 60_000
    concurrency: int = 2  # requests in flight at once (never two for one item)


@dataclass(frozen=True, slots=True)
class SyncConfig:
    channels: dict[str, ChannelConfig]
    ignore: frozenset[str]  # channels deliberately not synced


def _number(name: str, spec: dict[str, Any], key: str, default: float, minimum: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"channel {name!r}: {key} must be a number >= {minimum}, got {value!r}")
    return float(value)


def _integer(name: str, spec: dict[str, Any], key: str, default: int, minimum: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"channel {name!r}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _secret(name: str, spec: dict[str, Any], base: Path) -> bytes:
    env, file = spec.get("secret_env"), spec.get("secret_file")
    if (env is None) == (file is None):
        raise ConfigError(
            f"channel {name!r}: a webhook needs exactly one of secret_env, secret_file"
        )
    if env is not None:
        value = os.environ.get(str(env))
        if not value:
            raise ConfigError(f"channel {name!r}: environment variable {env} is not set")
        return value.encode()
    path = base / str(file)
    try:
        secret = path.read_bytes().strip()
    except OSError as err:
        raise ConfigError(
            f"channel {name!r}: cannot read secret_file {path}: {err.strerror}"
        ) from None
    if not secret:
        raise ConfigError(f"channel {name!r}: secret_file {path} is empty")
    return secret


def parse_channel(name: str, spec: Any, base: Path) -> ChannelConfig:
    """One channel's entry; relative file paths are relative to the channels file."""
    if not isinstance(spec, dict):
        raise ConfigError(f"channel {name!r}: expected an object")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise ConfigError(f"channel {name!r}: unknown field(s) {', '.join(unknown)}")
    kind = spec.get("type")
    url = path = None
    secret: bytes | None = None
    if kind == WEBHOOK:
        url = spec.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in {"http", "https"}:
            raise ConfigError(f"channel {name!r}: url must be an http(s) URL, got {url!r}")
        secret = _secret(name, spec, base)
    elif kind == FILE:
        raw = spec.get("path")
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"channel {name!r}: a file sink needs a path")
        path = str(base / raw)
    else:
        raise ConfigError(f"channel {name!r}: type must be {WEBHOOK!r} or {FILE!r}, got {kind!r}")
    rate = _number(name, spec, "rate", 10.0, 0.001)
    backoff_ms = _integer(name, spec, "backoff_ms", 500, 1)
    return ChannelConfig(
        channel=name,
        type=kind,
        url=url,
        path=path,
        secret=secret,
        rate=rate,
        burst=_integer(name, spec, "burst", max(1, int(rate)), 1),
        coalesce_ms=_integer(name, spec, "coalesce_ms", 1_000, 0),
        timeout=_number(name, spec, "timeout", 10.0, 0.001),
        max_attempts=_integer(name, spec, "max_attempts", 8, 1),
        backoff_ms=backoff_ms,
        max_backoff_ms=_integer(name, spec, "max_backoff_ms", max(60_000, backoff_ms), backoff_ms),
        concurrency=_integer(name, spec, "concurrency", 2, 1),
    )


def parse_config(document: Any, base: Path) -> SyncConfig:
    if not isinstance(document, dict):
        raise ConfigError("expected a JSON object with 'channels'")
    unknown = sorted(set(document) - {"channels", "ignore"})
    if unknown:
        raise ConfigError(f"unknown top-level field(s) {', '.join(unknown)}")
    channels = document.get("channels")
    if not isinstance(channels, dict) or not channels:
        raise ConfigError("'channels' must be a non-empty object: channel name -> sink")
    ignore = document.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise ConfigError("'ignore' must be a list of channel names")
    both = sorted(set(ignore) & set(channels))
    if both:
        raise ConfigError(f"channel(s) both configured and ignored: {', '.join(both)}")
    parsed = {name: parse_channel(name, spec, base) for name, spec in channels.items()}
    return SyncConfig(parsed, frozenset(ignore))


def load_config(path: str) -> SyncConfig:
    file = Path(path)
    try:
        document = orjson.loads(file.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"channels file not found: {path}") from None
    except orjson.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    return parse_config(document, file.resolve().parent)
