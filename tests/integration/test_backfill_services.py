"""``atp backfill`` from a real Kafka topic (Avro through a real registry) and into real Redis."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from state.serving import SnapshotStore
from tests.integration.topics import new_topics, read_committed
from transforms.timeutil import format_iso

pytestmark = pytest.mark.integration

ATP = [sys.executable, "-m", "pipelines.cli"]
# What cross-partition interleaving cannot change: a key's own events stay in order.
ORDER_FREE = ("on_hand", "quarantined", "allocated", "reserved", "safety_stock", "available")


def atp(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([*ATP, *args], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("history") / "events.jsonl"
    atp("simulate", "--events", "6000", "--skus", "80", "--seed", "13", "--output", str(log))
    return log


def replay(log: Path, folder: Path) -> tuple[bytes, list[dict[str, Any]]]:
    snapshots, dead = folder / "replay.jsonl", folder / "replay-dlq.jsonl"
    atp("replay", "--input", str(log), "--output", str(snapshots), "--dlq", str(dead))
    return snapshots.read_bytes(), [orjson.loads(line) for line in dead.open("rb")]


def make_topic(servers: str, partitions: int) -> str:
    topic = f"backfill-{uuid.uuid4().hex[:8]}"
    new_topics(servers, [topic], partitions)
    return topic


def produce(log: Path, topic: str, servers: str, registry: str) -> None:
    atp(
        "produce",
        "--input",
        str(log),
        "--topic",
        topic,
        "--bootstrap-servers",
        servers,
        "--registry-url",
        registry,
    )


def backfill_topic(topic: str, servers: str, registry: str, folder: Path, *bounds: str) -> Path:
    out = folder / f"backfill-{topic}.jsonl"
    atp(
        "backfill",
        "--topic",
        topic,
        "--bootstrap-servers",
        servers,
        "--registry-url",
        registry,
        "--output",
        str(out),
        "--dlq",
        str(folder / f"dlq-{topic}.jsonl"),
        "--split-records",
        "1500",
        *bounds,
    )
    return out


def test_backfill_of_a_topic_equals_replay_of_its_log(
    history: Path, kafka_server: str, registry_server: str, tmp_path: Path
) -> None:
    """One partition holds the log in file order: the same snapshots, byte for byte, and
    the same dead letters (Avro events, JSON malformed records), by partition and offset."""
    topic = make_topic(kafka_server, 1)
    produce(history, topic, kafka_server, registry_server)
    expected, expected_dead = replay(history, tmp_path)

    out = backfill_topic(topic, kafka_server, registry_server, tmp_path)
    assert out.read_bytes() == expected

    dead = [orjson.loads(line) for line in (tmp_path / f"dlq-{topic}.jsonl").open("rb")]
    assert [(d["reason"], d["raw"]) for d in dead] == [
        (d["reason"], d["raw"]) for d in expected_dead
    ]
    # Offsets are 0-based and one record per line: the dead letter's line minus one.
    assert [d["source_offset"] for d in dead] == [d["line"] - 1 for d in expected_dead]
    assert {(d["source_topic"], d["source_partition"]) for d in dead} == {(topic, 0)}

    # Bounded by offsets: the first 2,500 records are the first 2,500 lines.
    prefix = tmp_path / "prefix.jsonl"
    prefix.write_bytes(b"".join(history.read_bytes().splitlines(keepends=True)[:2500]))
    expected_prefix, _ = replay(prefix, tmp_path)
    bounded = backfill_topic(topic, kafka_server, registry_server, tmp_path, "--to-offset", "2500")
    assert bounded.read_bytes() == expected_prefix


def test_backfill_of_a_topic_bounded_by_offset_and_by_record_times(
    history: Path, kafka_server: str, registry_server: str, tmp_path: Path
) -> None:
    """``--from-offset`` and ``--from-time``/``--to-time`` take the records the broker's
    indexes name (record times follow ``occurred_at``, late events included): the same
    snapshots as a replay of those lines."""
    topic = make_topic(kafka_server, 1)
    produce(history, topic, kafka_server, registry_server)
    lines = history.read_bytes().splitlines(keepends=True)
    times = [m.timestamp()[1] for m in read_committed(kafka_server, topic, len(lines), 60, 1)]
    assert len(times) == len(lines)

    def replay_of(start: int, end: int) -> bytes:
        part = tmp_path / f"lines-{start}-{end}.jsonl"
        part.write_bytes(b"".join(lines[start:end]))
        return replay(part, tmp_path)[0]

    tail = backfill_topic(topic, kafka_server, registry_server, tmp_path, "--from-offset", "4000")
    assert tail.read_bytes() == replay_of(4000, len(lines))

    low, high = times[2000], times[4000]
    start = next(i for i, t in enumerate(times) if t >= low)  # the broker's offsetsForTimes
    end = next((i for i, t in enumerate(times) if t > high), len(times))
    assert start > 0 and end < len(times) and start < end
    bounds = ("--from-time", format_iso(low), "--to-time", format_iso(high))
    window = backfill_topic(topic, kafka_server, registry_server, tmp_path, *bounds)
    assert window.read_bytes() == replay_of(start, end)


def test_backfill_of_a_partitioned_topic_keeps_every_keys_order(
    history: Path, kafka_server: str, registry_server: str, tmp_path: Path
) -> None:
    topic = make_topic(kafka_server, 3)
    produce(history, topic, kafka_server, registry_server)
    expected_bytes, _ = replay(history, tmp_path)
    expected = [orjson.loads(line) for line in expected_bytes.splitlines()]

    out = backfill_topic(topic, kafka_server, registry_server, tmp_path)
    got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(s["item_id"], s["location_id"]) for s in got] == [
        (s["item_id"], s["location_id"]) for s in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        fields = (*ORDER_FREE, "version", "duplicates", "as_of")
        assert {f: mine[f] for f in fields} == {f: theirs[f] for f in fields}, mine["item_id"]


def test_backfill_loads_redis_and_never_overwrites_a_newer_snapshot(
    history: Path, redis_server: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    expected_bytes, _ = replay(history, tmp_path)
    expected = {
        (s["item_id"], s["location_id"]): s
        for s in (orjson.loads(line) for line in expected_bytes.splitlines())
    }
    (newer_key, newer), (older_key, older) = list(expected.items())[:2]
    store = SnapshotStore(redis_client)
    live_newer = {**newer, "on_hand": -1, "revision": newer["revision"] + 1}
    live_older = {**older, "on_hand": -1, "revision": older["revision"] - 1}
    assert store.write([live_newer, live_older]) == 2

    result = atp("backfill", "--input", str(history), "--redis-url", redis_server)
    assert f"redis {len(expected) - 1} written 1 kept newer" in result.stderr.decode()

    loaded = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
    assert loaded[newer_key] == live_newer  # the live store was ahead: untouched
    assert loaded[older_key] == expected[older_key]
    del loaded[newer_key], expected[newer_key]
    assert loaded == expected
