"""A channel ATP change as the sync carries it, and the body and headers of a push."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

import orjson

from transforms.timeutil import format_iso

SIGNATURE: Final = "X-ATP-Signature"
TIMESTAMP: Final = "X-ATP-Timestamp"
IDEMPOTENCY_KEY: Final = "Idempotency-Key"
ATTEMPT: Final = "X-ATP-Attempt"


@dataclass(frozen=True, slots=True)
class Change:
    """One ``ChannelAtpChange`` record (avro/channel_atp_change.avsc); times in epoch millis."""

    channel: str
    item_id: str
    available: int
    previous_available: int | None
    version: int
    as_of: int | None
    cause_location_id: str | None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Change:
        return cls(
            channel=record["channel"],
            item_id=record["item_id"],
            available=record["available"],
            previous_available=record.get("previous_available"),
            version=record["version"],
            as_of=record.get("as_of"),
            cause_location_id=record.get("cause_location_id"),
        )

    @property
    def idempotency_key(self) -> str:
        """``channel:item:version``: the same change pushed twice has the same key."""
        return f"{self.channel}:{self.item_id}:{self.version}"

    def body(self) -> bytes:
        """The JSON body of a push: the same bytes for every attempt of the same change."""
        return orjson.dumps(
            {
                "idempotency_key": self.idempotency_key,
                "channel": self.channel,
                "item_id": self.item_id,
                "available": self.available,
                "previous_available": self.previous_available,
                "version": self.version,
                "as_of": None if self.as_of is None else format_iso(self.as_of),
                "cause_location_id": self.cause_location_id,
            }
        )


def signature(secret: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, the value of ``X-ATP-Signature``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def push_headers(
    change: Change, body: bytes, secret: bytes, attempt: int, epoch_seconds: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE: signature(secret, body),
        TIMESTAMP: str(epoch_seconds),
        IDEMPOTENCY_KEY: change.idempotency_key,
        ATTEMPT: str(attempt),
    }
