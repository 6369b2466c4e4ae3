"""The streaming normalizer on a real broker and registry: raw topic in, events topic and
dead letters out, committed once per raw record however often it runs."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.topics import decode, message_key, new_topics, read_committed
from transforms.adapters import ADAPTERS, Options
from transforms.timeutil import parse_iso
from transforms.validation import parse_event

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "unit" / "adapters" / "data"


class Topics:
    def __init__(self, servers: str, system: str) -> None:
        prefix = f"normalize-{uuid.uuid4().hex[:8]}"
        self.servers, self.group = servers, prefix
        self.raw = f"{prefix}.raw-{system}"
        self.events = f"{prefix}.events"
        self.dead = f"{prefix}.dead-letters"
        for name, partitions in ((self.raw, 2), (self.events, 4), (self.dead, 1)):
            new_topics(servers, [name], partitions)

    def send(self, records: list[tuple[bytes, bytes]]) -> None:
        producer = Producer({"bootstrap.servers": self.servers, "enable.idempotence": True})
        for key, value in records:
            producer.produce(self.raw, value, key=key)
        assert producer.flush(30) == 0

    def normalize(self, system: str, registry: str) -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "normalize",
                *("--system", system, "--from-topic", self.raw, "--to-topic", self.events),
                *("--dlq-topic", self.dead, "--group-id", self.group),
                *("--transactional-id", self.group, "--exit-when-idle", "5"),
                *("--bootstrap-servers", self.servers, "--registry-url", registry),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        return result.stderr.strip().splitlines()[-1]


def test_erp_documents_stream_to_events_and_dead_letters_once(
    kafka_server: str, registry_server: str
) -> None:
    topics = Topics(kafka_server, "erp")
    raw = (DATA / "erp.jsonl").read_bytes().splitlines()
    first, later = raw[:-1], raw[-1:]
    topics.send([(orjson.loads(line)["MaterialDocument"].encode(), line) for line in first])

    summary = topics.normalize("erp", registry_server)
    assert summary == (
        "atp normalize erp: 19 records, 19 events, 2 dead letters (NOT_MAPPABLE 1, "
        "UNKNOWN_CODE 1), 2 ignored (NO_ATP_EFFECT 1, SPECIAL_STOCK 1)"
    )
    # The same raw records offline give the same events.
    expected = [e for line in first for r in _offline("erp", line) for e in r]
    messages = read_committed(kafka_server, topics.events, len(expected), 60)
    assert len(messages) == len(expected) == 19
    got = {}
    for message in messages:
        event = parse_event(decode(message, registry_server))
        assert not isinstance(event, list), event
        assert message_key(message) == f"{event.item_id}|{event.location_id}"
        assert message.timestamp()[1] == event.occurred_at
        got[event.event_id] = event
    assert got == {e["event_id"]: parse_event(e) for e in expected}

    dead = read_committed(kafka_server, topics.dead, 2, 30, partitions=1)
    letters = sorted((decode(m, registry_server) for m in dead), key=lambda d: d["reason"])
    assert [(d["reason"], d["source_topic"]) for d in letters] == [
        ("NOT_MAPPABLE", topics.raw),
        ("UNKNOWN_CODE", topics.raw),
    ]
    assert letters[1]["raw"] == raw[16]
    assert letters[1]["source_partition"] in (0, 1) and letters[1]["source_offset"] is not None

    # Run again with one more document: offsets were committed with the output, so only
    # the new document is read and nothing is written twice.
    topics.send([(b"4900000120", later[0])])
    assert topics.normalize("erp", registry_server).startswith(
        "atp normalize erp: 1 records, 1 events, 0 dead letters"
    )
    again = read_committed(kafka_server, topics.events, 20, 60)
    assert len(again) == 20
    assert len({decode(m, registry_server)["event_id"] for m in again}) == 20


def test_an_x12_interchange_per_message_streams_its_ship_notices(
    kafka_server: str, registry_server: str
) -> None:
    topics = Topics(kafka_server, "edi856")
    text = (DATA / "asn.x12").read_bytes()
    second = text.index(b"ISA|")
    interchanges = [text[:second], text[second:]]
    topics.send([(b"ACMESUPPLY", interchange) for interchange in interchanges])

    assert topics.normalize("edi856", registry_server) == (
        "atp normalize edi856: 4 records, 4 events, 1 dead letters (MISSING_FIELD 1), 0 ignored"
    )
    messages = read_committed(kafka_server, topics.events, 4, 60)
    asns = sorted(
        (decode(m, registry_server) for m in messages),
        key=lambda e: (e["occurred_at"], e["item_id"]),
    )
    assert [(e["item_id"], e["location_id"], e["quantity"]) for e in asns] == [
        ("SKU-000001", "DC01", 144),
        ("SKU-000002", "DC01", 60),
        ("SKU-000003", "DC02", 30),
        ("SKU-000003", "DC02", 36),
    ]
    assert asns[0]["expected_at"] == parse_iso("2026-05-13T14:00:00Z")
    (letter,) = read_committed(kafka_server, topics.dead, 1, 30, partitions=1)
    assert decode(letter, registry_server)["raw"].startswith(b"ST|856|0002~")


def _offline(system: str, line: bytes) -> list[tuple[dict[str, object], ...]]:
    return [r.events for r in ADAPTERS[system].normalize(line, Options())]
