"""What the API runs with: built by ``atp serve`` from flags and environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from api.auth import Principal
from transforms.channels import EMPTY_POLICY, Policy


@dataclass(frozen=True, slots=True)
class Settings:
    tokens: dict[str, Principal]  # SHA-256 of a token -> who holds it
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_user: str | None = None  # None: the URL's credentials as they are
    redis_password: str | None = None
    redis_max_connections: int = 64
    redis_timeout_s: float = 1.0
    policy: Policy = field(default=EMPTY_POLICY)
    otlp_endpoint: str | None = None  # OTLP/HTTP base URL; None: no traces
    access_log: bool = True
    decode_cache: int = 20_000  # decoded snapshots kept, by their stored JSON
