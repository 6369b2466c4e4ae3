"""Publishing canonical events to the events topic, the one way every command does it:
keyed ``item|location``, the record time set to ``occurred_at`` (the job's watermarks come
from it), valid events as Confluent-framed Avro and anything else as it is (the job
dead-letters it), through an idempotent producer that reports every failed delivery."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import orjson
from confluent_kafka import KafkaError, Producer

from pipelines.event_codec import EventCodec
from pipelines.wire import WireFormat
from transforms.events import Event
from transforms.timeutil import parse_iso


def record_key_and_time(line: bytes, last_time: int) -> tuple[bytes | None, int]:
    """The record key and timestamp; unreadable records keep the previous time."""
    try:
        record = orjson.loads(line)
        item, location = record["item_id"], record["location_id"]
        occurred = record["occurred_at"]
        at = parse_iso(occurred) if isinstance(occurred, str) else int(occurred)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None, last_time
    return f"{item}|{location}".encode(), at


def encoded_value(line: bytes, codec: EventCodec) -> bytes:
    """The Avro record of a valid event; anything else as it is, for the job to dead-letter."""
    decoded, _ = codec.decode(line)
    return codec.encode(decoded) if isinstance(decoded, Event) else line


def produce_waiting(producer: Producer, topic: str, value: bytes, **options: Any) -> None:
    """``producer.produce``, waiting for room when the local queue is full."""
    while True:
        try:
            producer.produce(topic, value, **options)
            return
        except BufferError:  # local queue full: let it drain
            producer.poll(0.5)


# Errors the client would otherwise retry for ever: wrong credentials or missing rights.
_REFUSED: Final = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)


class PublishRefusedError(RuntimeError):
    """The cluster refused the client (credentials, rights): retrying cannot help."""


class EventPublisher:
    """Sends JSON-lines events to ``topic``; ``close`` flushes and returns the failures.

    A refusal by the cluster raises ``PublishRefusedError`` from ``send`` or ``close`` instead
    of leaving the client to retry until the flush times out."""

    def __init__(self, config: Mapping[str, Any], registry_url: str, topic: str) -> None:
        self.topic = topic
        self.codec = EventCodec(WireFormat(registry_url), topic)
        self.refused: str | None = None
        self.producer = Producer(
            {**config, "enable.idempotence": True, "linger.ms": 20, "error_cb": self._error}
        )
        self.failures: list[str] = []

    def _error(self, error: KafkaError) -> None:
        if error.code() in _REFUSED or error.fatal():
            self.refused = self.refused or error.str()

    def _check(self) -> None:
        if self.refused is not None:
            raise PublishRefusedError(self.refused)

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failures.append(str(error))

    def send(self, value: bytes, key: bytes | None, at: int, **options: Any) -> None:
        """One record as it is (``encoded_line`` makes the value of a JSON line)."""
        self._check()
        produce_waiting(
            self.producer,
            self.topic,
            value,
            key=key,
            timestamp=at,
            on_delivery=self._delivered,
            **options,
        )
        self.producer.poll(0)

    def encoded_line(self, line: bytes) -> bytes:
        return encoded_value(line, self.codec)

    def close(self, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while (remaining := self.producer.flush(0.5)) and time.monotonic() < deadline:
            self._check()
        self._check()
        if remaining:
            self.failures.append(f"{remaining} records still queued after {timeout:.0f} s")
        return self.failures
