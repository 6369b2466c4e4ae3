"""``atp produce`` on a real broker: order, keys, and record timestamps from event time."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from pipelines.wire import WireFormat
from state.schemas import INVENTORY_EVENT
from tests.integration.topics import new_topics
from transforms.timeutil import parse_iso
from transforms.validation import parse_event

pytestmark = pytest.mark.integration


def test_produce_keys_orders_and_stamps_records(
    kafka_server: str, registry_server: str, tmp_path: Path
) -> None:
    topic = f"produce-{uuid.uuid4().hex[:8]}"
    new_topics(kafka_server, [topic], 1)
    events = [
        {
            "event_id": f"e{i}",
            "event_type": "RECEIPT",
            "item_id": "A",
            "location_id": "DC1",
            "occurred_at": f"2026-05-11T08:00:0{i}Z",
            "quantity": i,
        }
        for i in range(1, 6)
    ]
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"{broken\n" + b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "produce",
            "--input",
            str(log),
            "--topic",
            topic,
            "--bootstrap-servers",
            kafka_server,
            "--heartbeat-at",
            "2026-05-11T09:00:00Z",
            "--registry-url",
            registry_server,
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    consumer = Consumer({"bootstrap.servers": kafka_server, "group.id": topic})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Message] = []
    deadline = time.monotonic() + 60
    while len(messages) < 7 and time.monotonic() < deadline:
        message = consumer.poll(1)
        # A fresh broker may answer with transient errors first; they are not records.
        if message is not None and message.error() is None:
            messages.append(message)
    assert len(messages) == 7, (
        f"only {len(messages)} records arrived: {[(m.value() or b'')[:20] for m in messages]}"
    )
    consumer.close()

    # The unreadable first record waits for the first event time instead of getting 0,
    # which the client would replace with the wall clock.
    assert messages[0].value() == b"{broken"
    assert messages[0].timestamp()[1] == parse_iso("2026-05-11T08:00:01Z")
    # Valid events travel as Confluent-framed Avro, registered under the topic's subject.
    wire = WireFormat(registry_server)
    decoded = [wire.decode(INVENTORY_EVENT, topic, m.value() or b"") for m in messages[1:6]]
    assert [parse_event(d) for d in decoded] == [parse_event(e) for e in events]
    assert [d["event_id"] for d in decoded] == [
        "e1",
        "e2",
        "e3",
        "e4",
        "e5",
    ]
    assert {m.key() for m in messages[1:6]} == {b"A|DC1"}
    assert [m.timestamp()[1] for m in messages[1:6]] == [
        parse_iso(str(e["occurred_at"])) for e in events
    ]
    assert orjson.loads(messages[6].value() or b"") == {"heartbeat": True}
    assert messages[6].timestamp()[1] == parse_iso("2026-05-11T09:00:00Z")
