"""The sync's dead letters: JSON objects on their own topic, keyed ``channel|item``
(or the source record's key). Documented in docs/channel-sync.md.

JSON, not the ``DeadLetter`` Avro schema: that schema describes an input record that
was not applied; these are mostly deliveries a receiver refused, with the status, the
attempts and the change itself, read by people and by a replay script.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import orjson

from pipelines.channel_sync.change import Change
from pipelines.channel_sync.pending import Position

UNDECODABLE: Final = "UNDECODABLE"
UNCONFIGURED_CHANNEL: Final = "UNCONFIGURED_CHANNEL"


def _sources(topic: str, positions: list[Position]) -> list[dict[str, Any]]:
    return [{"topic": topic, "partition": p, "offset": o} for p, o in sorted(positions)]


def change_letter(
    reason: str,
    message: str,
    change: Change,
    topic: str,
    positions: list[Position],
    status: int | None = None,
    attempts: int = 0,
) -> dict[str, Any]:
    """A change that was not delivered: refused, retried out, or for no configured channel."""
    return {
        "reason": reason,
        "message": message,
        "channel": change.channel,
        "item_id": change.item_id,
        "version": change.version,
        "idempotency_key": change.idempotency_key,
        "status": status,
        "attempts": attempts,
        "change": orjson.loads(change.body()),
        "sources": _sources(topic, positions),
        "raw_base64": None,
        "key": f"{change.channel}|{change.item_id}",
    }


def undecodable_letter(
    message: str, raw: bytes, key: bytes | None, topic: str, position: Position
) -> dict[str, Any]:
    """A record that is not a ``ChannelAtpChange``, kept byte for byte."""
    return {
        "reason": UNDECODABLE,
        "message": message,
        "channel": None,
        "item_id": None,
        "version": None,
        "idempotency_key": None,
        "status": None,
        "attempts": 0,
        "change": None,
        "sources": _sources(topic, [position]),
        "raw_base64": base64.b64encode(raw).decode(),
        "key": None if key is None else key.decode("utf-8", errors="replace"),
    }


def encode(letter: dict[str, Any]) -> bytes:
    return orjson.dumps(letter)
