"""``atp reconcile`` on real services: corrections published to a real broker bring the
replayed on_hand to the count, a re-run does not apply them twice, and the live serving
store gives the same report as the snapshot file."""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from pipelines.event_codec import EventCodec
from pipelines.reconcile import correction_event_id
from pipelines.simulate import SimConfig, simulate
from pipelines.wire import WireFormat
from state.serving import SnapshotStore
from tests.integration.topics import new_topics, read_committed
from transforms.events import CYCLE_COUNT, Event, Key
from transforms.timeutil import format_iso, parse_iso

pytestmark = pytest.mark.integration

ATP = [sys.executable, "-m", "pipelines.cli"]


def _atp(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([*ATP, *args], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result


def _snapshots(path: Path) -> dict[Key, dict[str, Any]]:
    snaps = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return {(s["item_id"], s["location_id"]): s for s in snaps}


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, Path, dict[Key, int], int]:
    """A simulated log, its snapshots, and a count with variances a minute after its clock."""
    log = tmp_path / "events.jsonl"
    log.write_bytes(
        b"\n".join(simulate(SimConfig(events=4_000, seed=31, skus=60, stores=3))) + b"\n"
    )
    snapshots_path = tmp_path / "snapshots.jsonl"
    _atp("replay", "--input", str(log), "--output", str(snapshots_path))
    snapshots = _snapshots(snapshots_path)
    counted_at = parse_iso(next(iter(snapshots.values()))["as_of"]) + 60_000
    rng = random.Random(7)
    counted = {
        key: max(0, snap["on_hand"] + rng.choice((0, 2, -3, 11)))
        for key, snap in sorted(snapshots.items())
        if rng.random() < 0.25
    }
    counts = tmp_path / "counts.csv"
    counts.write_text(
        "item_id,location_id,counted_quantity,counted_at\n"
        + "".join(f"{i},{loc},{q},{format_iso(counted_at)}\n" for (i, loc), q in counted.items())
    )
    return log, snapshots_path, counted, counted_at


def test_published_corrections_bring_on_hand_to_the_count(
    kafka_server: str,
    registry_server: str,
    tmp_path: Path,
    history: tuple[Path, Path, dict[Key, int], int],
) -> None:
    log, snapshots_path, counted, counted_at = history
    snapshots = _snapshots(snapshots_path)
    differing = {key for key, q in counted.items() if q != snapshots[key]["on_hand"]}
    assert differing and len(differing) < len(counted)
    topic = f"reconcile-{uuid.uuid4().hex[:8]}"
    new_topics(kafka_server, [topic], 2)

    publish = (
        "reconcile",
        "--counts",
        str(tmp_path / "counts.csv"),
        "--snapshots",
        str(snapshots_path),
        "--output",
        str(tmp_path / "report.jsonl"),
        "--publish-corrections",
        "--bootstrap-servers",
        kafka_server,
        "--topic",
        topic,
        "--registry-url",
        registry_server,
    )
    first = _atp(*publish)
    assert f"corrections: {len(differing)} published to {topic}" in first.stdout.decode()
    _atp(*publish)  # a re-run publishes the same events again

    messages = read_committed(kafka_server, topic, 2 * len(differing), 60, partitions=2)
    assert len(messages) == 2 * len(differing)
    codec = EventCodec(WireFormat(registry_server), topic)
    published: list[Event] = []
    for message in messages:
        value = message.value() or b""
        assert value[:1] == b"\x00"  # Confluent-framed Avro, like atp produce writes
        event, _ = codec.decode(value)
        assert isinstance(event, Event)
        assert message.key() == f"{event.item_id}|{event.location_id}".encode()
        assert message.timestamp()[1] == counted_at == event.occurred_at
        assert event.event_type == CYCLE_COUNT
        key = (event.item_id, event.location_id)
        assert event.quantity == counted[key]
        assert event.event_id == correction_event_id(*key, event.quantity, counted_at)
        published.append(event)
    assert {(e.item_id, e.location_id) for e in published} == differing

    # The log followed by what the topic holds, replayed: on_hand is the count.
    corrections = b"".join(
        orjson.dumps(
            {
                "event_id": e.event_id,
                "event_type": e.event_type,
                "occurred_at": format_iso(e.occurred_at),
                "item_id": e.item_id,
                "location_id": e.location_id,
                "quantity": e.quantity,
                "source_system": e.source_system,
            }
        )
        + b"\n"
        for e in published
    )
    combined = tmp_path / "combined.jsonl"
    combined.write_bytes(log.read_bytes() + corrections)
    _atp("replay", "--input", str(combined), "--output", str(tmp_path / "after.jsonl"))
    after = _snapshots(tmp_path / "after.jsonl")
    assert {key: after[key]["on_hand"] for key in counted} == counted
    for key in differing:  # applied once, the second copy is a duplicate
        assert after[key]["version"] == snapshots[key]["version"] + 1
        assert after[key]["duplicates"] == snapshots[key]["duplicates"] + 1

    # Reconciled again against the new snapshots: nothing left to correct.
    again = _atp(
        "reconcile",
        "--counts",
        str(tmp_path / "counts.csv"),
        "--snapshots",
        str(tmp_path / "after.jsonl"),
        "--output",
        str(tmp_path / "report2.jsonl"),
    )
    assert f"{len(counted)} keys counted, 0 with a variance" in again.stdout.decode()


def test_serving_store_gives_the_same_report(
    redis_client: redis.Redis,
    redis_server: str,
    tmp_path: Path,
    history: tuple[Path, Path, dict[Key, int], int],
) -> None:
    _, snapshots_path, _, _ = history
    SnapshotStore(redis_client).write(_snapshots(snapshots_path).values())
    common = ("--counts", str(tmp_path / "counts.csv"))
    _atp(
        "reconcile",
        *common,
        "--snapshots",
        str(snapshots_path),
        "--output",
        str(tmp_path / "a.csv"),
    )
    _atp("reconcile", *common, "--redis-url", redis_server, "--output", str(tmp_path / "b.csv"))
    report = (tmp_path / "a.csv").read_text()
    assert report.count("\nkey,") > 10
    assert (tmp_path / "b.csv").read_text() == report
