"""The tests' topics: creating them, and reading them committed-only, decoded to dicts.

Every test that checks a topic goes through ``read_committed`` and ``decode``, so the
wire format of the topics is known in one place.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from pipelines.stream_config import REGISTRY_URL, Topics
from pipelines.topic_admin import RETAIN_FOREVER, TopicSpec, create_topics
from pipelines.wire import WireFormat
from state.schemas import (
    ATP_CHANGE,
    ATP_EXCEPTION,
    CHANNEL_ATP_CHANGE,
    DEAD_LETTER,
    INVENTORY_EVENT,
)


def new_topics(config: str | Mapping[str, Any], names: Iterable[str], partitions: int = 4) -> None:
    """Creates the topics (``config``: bootstrap servers or a client configuration), kept
    forever: records carry their event time, months in the past."""
    if isinstance(config, str):
        config = {"bootstrap.servers": config}
    create_topics(config, [TopicSpec(name, partitions, RETAIN_FOREVER) for name in names])


def new_job_topics(config: str | Mapping[str, Any], prefix: str, partitions: int = 4) -> None:
    """Every topic of the job under ``prefix``, ``partitions`` each."""
    new_topics(config, vars(Topics.with_prefix(prefix)).values(), partitions)


def read_committed(
    servers: str,
    topic: str,
    expected: int,
    timeout: float,
    partitions: int = 4,
    config: Mapping[str, str | int | float | bool] = {},
) -> list[Message]:
    """Committed records of ``topic`` from the start: at least ``expected`` of them if they
    arrive within ``timeout`` seconds, then whatever else arrives in the next 3 seconds
    (more than expected would be a duplicate). ``config``: more client settings (SASL)."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"check-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            **config,
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


# The Avro schema of each of the job's topics, by the topic's name after its prefix.
SCHEMAS = {
    "events": INVENTORY_EVENT,
    "dead-letters": DEAD_LETTER,
    "exceptions": ATP_EXCEPTION,
    "atp-changes": ATP_CHANGE,
    "channel-atp": CHANNEL_ATP_CHANGE,
}


@cache
def _wire(registry_url: str) -> WireFormat:
    return WireFormat(registry_url)


def decode(message: Message, registry_url: str = REGISTRY_URL) -> dict[str, Any]:
    """The record a message holds (Confluent-framed Avro), as a dict with times in millis."""
    value, topic = message.value(), message.topic()
    assert value is not None and topic is not None, f"{topic}: a record without a value"
    schema = next(name for suffix, name in SCHEMAS.items() if topic.endswith("." + suffix))
    return _wire(registry_url).decode(schema, topic, value)


def message_key(message: Message) -> str:
    raw = message.key()
    assert raw is not None, f"{message.topic()}: a record without a key"
    return raw.decode()
