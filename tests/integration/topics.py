"""Reading the job's output topics in tests: committed records only, decoded to dicts.

Every test that checks a topic goes through ``read_committed`` and ``decode``, so the
wire format of the topics is known in one place.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer, Message, TopicPartition


def read_committed(
    servers: str, topic: str, expected: int, timeout: float, partitions: int = 4
) -> list[Message]:
    """Committed records of ``topic`` from the start: at least ``expected`` of them if they
    arrive within ``timeout`` seconds, then whatever else arrives in the next 3 seconds
    (more than expected would be a duplicate)."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"check-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(messages) < expected:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            messages.append(message)
    drain_until = time.monotonic() + 3
    while time.monotonic() < drain_until:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            messages.append(message)
    consumer.close()
    return messages


def decode(message: Message) -> dict[str, Any]:
    """The record a message holds, as a dict."""
    value = message.value()
    assert value is not None, f"{message.topic()}: a record without a value"
    record: dict[str, Any] = orjson.loads(value)
    return record
