"""``atp archive`` on a real broker and registry: the archive read back equals the topic,
in order per partition, with nothing lost; re-runs and crash leftovers are idempotent."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from pipelines.archive import (
    archive_schema,
    event_date,
    file_name,
    parse_file_name,
    read_archive,
    read_dead_letters,
)
from pipelines.event_codec import EventCodec
from pipelines.simulate import SimConfig, simulate
from pipelines.wire import WireFormat
from tests.integration.topics import new_topics, read_committed
from transforms.events import Event
from transforms.validation import event_to_record

pytestmark = pytest.mark.integration

ATP = [sys.executable, "-m", "pipelines.cli"]
PARTITIONS = 3


def _atp(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([*ATP, *args], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result


def _topic(servers: str, name: str) -> str:
    topic = f"{name}-{uuid.uuid4().hex[:8]}"
    new_topics(servers, [topic], PARTITIONS)
    return topic


def _produce(servers: str, registry: str, topic: str, lines: list[bytes], path: Path) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")
    _atp(
        "produce",
        "--input",
        str(path),
        "--topic",
        topic,
        "--bootstrap-servers",
        servers,
        "--registry-url",
        registry,
        "--heartbeat-at",
        "2026-06-01T00:00:00Z",
    )


def _expected(
    servers: str, registry: str, topic: str, count: int
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[tuple[int, str]]]]:
    """What the topic holds, decoded as the archiver must: events with their positions per
    partition, and (offset, reason) of every record that is not an event."""
    codec = EventCodec(WireFormat(registry), topic)
    events: dict[int, list[dict[str, Any]]] = {p: [] for p in range(PARTITIONS)}
    dead: dict[int, list[tuple[int, str]]] = {p: [] for p in range(PARTITIONS)}
    messages = read_committed(servers, topic, count, 60, PARTITIONS)
    assert len(messages) == count
    for message in messages:
        value, partition, offset = message.value() or b"", message.partition(), message.offset()
        assert partition is not None and offset is not None
        if value.startswith(b'{"heartbeat"'):
            continue
        decoded, _ = codec.decode(value)
        if isinstance(decoded, Event):
            record = event_to_record(decoded)
            record.update(
                kafka_partition=partition,
                kafka_offset=offset,
                kafka_timestamp=message.timestamp()[1],
            )
            events[partition].append(record)
        else:
            dead[partition].append((offset, decoded[0].code))
    for records in events.values():
        records.sort(key=lambda r: r["kafka_offset"])
    for letters in dead.values():
        letters.sort()
    return events, dead


def _archive(servers: str, registry: str, topic: str, out: Path, group: str, batch: int) -> str:
    result = _atp(
        "archive",
        "--topic",
        topic,
        "--output-dir",
        str(out),
        "--group-id",
        group,
        "--until-end",
        "--max-batch-records",
        str(batch),
        "--bootstrap-servers",
        servers,
        "--registry-url",
        registry,
    )
    return result.stderr.decode()


def _by_partition(out: Path) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {p: [] for p in range(PARTITIONS)}
    for record in read_archive(out):
        found[record["kafka_partition"]].append(record)
    return found


def _dead_by_partition(out: Path) -> dict[int, list[tuple[int, str]]]:
    found: dict[int, list[tuple[int, str]]] = {p: [] for p in range(PARTITIONS)}
    for letter in read_dead_letters(out):
        found[letter["source_partition"]].append((letter["source_offset"], letter["reason"]))
    return found


def _fingerprint(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def _check_layout(out: Path) -> None:
    """Every file holds one partition and one event date, in offset order, and is named
    after its partition and first offset."""
    for path in out.glob("date=*/*.avro"):
        parsed = parse_file_name(path.name)
        assert parsed is not None, path
        with path.open("rb") as handle:
            reader = fastavro.reader(handle)
            assert reader.codec == "deflate"
            records = [r for r in reader if isinstance(r, dict)]
        offsets = [r["kafka_offset"] for r in records]
        assert offsets == sorted(offsets) and offsets[0] == parsed[1], path
        assert {r["kafka_partition"] for r in records} == {parsed[0]}, path
        dates = {event_date(int(r["occurred_at"].timestamp() * 1000)) for r in records}
        assert dates == {path.parent.name.removeprefix("date=")}, path


def test_archive_equals_topic_and_reruns_are_idempotent(
    kafka_server: str, registry_server: str, tmp_path: Path
) -> None:
    topic = _topic(kafka_server, "archive")
    lines = list(simulate(SimConfig(events=2_500, seed=21, skus=50, malformed_rate=0.02)))
    _produce(kafka_server, registry_server, topic, lines, tmp_path / "events.jsonl")
    count = len(lines) + PARTITIONS  # and one heartbeat per partition
    events, dead = _expected(kafka_server, registry_server, topic, count)
    assert sum(map(len, dead.values())) > 0

    out = tmp_path / "archive"
    log = _archive(kafka_server, registry_server, topic, out, f"{topic}-a", 400)
    assert f"{count} records" in log and f"{PARTITIONS} heartbeats" in log
    assert _by_partition(out) == events
    assert _dead_by_partition(out) == dead
    _check_layout(out)
    assert len(list(out.glob("date=*"))) > 5  # two weeks of simulated history

    # The archive replaces the topic for a backfill: the same snapshots, byte for byte.
    from_archive, from_topic = tmp_path / "from-archive.jsonl", tmp_path / "from-topic.jsonl"
    archive = str(out / "date=*" / "*.avro")
    _atp("backfill", "--archive", archive, "--output", str(from_archive), "--no-progress")
    services = ("--bootstrap-servers", kafka_server, "--registry-url", registry_server)
    _atp("backfill", "--topic", topic, *services, "--output", str(from_topic), "--no-progress")
    assert from_archive.read_bytes() == from_topic.read_bytes()
    assert from_archive.stat().st_size > 0

    # The same group again: everything is committed, nothing is written.
    before = _fingerprint(out)
    log = _archive(kafka_server, registry_server, topic, out, f"{topic}-a", 400)
    assert "0 records" in log
    assert _fingerprint(out) == before

    # Another group from the start, other batch boundaries: the same history, once.
    _archive(kafka_server, registry_server, topic, out, f"{topic}-b", 777)
    assert _by_partition(out) == events
    assert _dead_by_partition(out) == dead
    _check_layout(out)


def test_archive_recovers_from_uncommitted_files(
    kafka_server: str, registry_server: str, tmp_path: Path
) -> None:
    topic = _topic(kafka_server, "archive-crash")
    first = list(simulate(SimConfig(events=1_200, seed=22, skus=30)))
    _produce(kafka_server, registry_server, topic, first, tmp_path / "first.jsonl")
    out = tmp_path / "archive"
    group = f"{topic}-a"
    _archive(kafka_server, registry_server, topic, out, group, 300)

    # A crash after writing files but before committing leaves files from the committed
    # offset on; a later run must replace them, not add to them.
    consumer = Consumer({"bootstrap.servers": kafka_server, "group.id": group})
    committed = {
        tp.partition: tp.offset
        for tp in consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 30)
    }
    leftover = out / "date=2026-05-03" / file_name(0, committed[0], "avro")
    bogus = dict(next(iter(read_archive(out))), event_id="LEFTOVER", kafka_offset=committed[0])
    with leftover.open("wb") as handle:
        fastavro.writer(handle, archive_schema(), [bogus], codec="deflate")
    (out / "date=2026-05-03" / f".{leftover.name}.tmp").write_bytes(b"half a file")

    # Later the group starts earlier than a previous batch boundary (an operator reset
    # its offsets): files spanning that offset are trimmed, later ones removed.
    rewind = max(1, committed[1] // 2)
    consumer.commit(offsets=[TopicPartition(topic, 1, rewind)], asynchronous=False)
    consumer.close()

    second = list(simulate(SimConfig(events=1_200, seed=23, skus=30)))
    _produce(kafka_server, registry_server, topic, second, tmp_path / "second.jsonl")
    count = len(first) + len(second) + 2 * PARTITIONS
    events, dead = _expected(kafka_server, registry_server, topic, count)

    log = _archive(kafka_server, registry_server, topic, out, group, 500)
    assert "partition 0: 1 files" in log
    assert "partition 1:" in log
    assert _by_partition(out) == events
    assert _dead_by_partition(out) == dead
    assert not list(out.rglob(".*.tmp"))
    _check_layout(out)
    assert all(r["event_id"] != "LEFTOVER" for r in read_archive(out))
    # The extra position fields do not stop a plain InventoryEvent reader.
    path = next(out.glob("date=*/*.avro"))
    plain = orjson.loads(
        (Path(__file__).resolve().parents[2] / "avro" / "inventory_event.avsc").read_bytes()
    )
    with path.open("rb") as handle:
        record = next(iter(fastavro.reader(handle, reader_schema=plain)))
    assert isinstance(record, dict) and "kafka_offset" not in record and record["event_id"]
