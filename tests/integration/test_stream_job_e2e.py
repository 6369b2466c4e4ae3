"""End to end on real services: simulated events through ``atp produce`` into a real Kafka
broker, the PyFlink job (local MiniCluster) folding them into a real Redis, compared with
``atp replay`` of the same log."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from pipelines.stream_config import REGISTRY_URL
from pipelines.wire import WireFormat
from state.schemas import INVENTORY_EVENT
from state.serving import SnapshotStore
from tests.golden.vectors import combined_log
from tests.integration.topics import decode, message_key, new_job_topics, read_committed
from transforms.channels import channel_available, parse_policy
from transforms.events import Event
from transforms.snapshot import QUANTITY_FIELDS
from transforms.timeutil import format_iso, parse_iso
from transforms.validation import event_to_record

pytestmark = pytest.mark.integration

ATP = [sys.executable, "-m", "pipelines.cli"]
OUT_OF_ORDERNESS_MS = 5_000
CONTRACT_FIELDS = (*QUANTITY_FIELDS, "version")
# The three engines are compared on a log of this many simulated events (redeliveries and
# malformed records included), after the golden vectors.
E2E_EVENTS = 100_000


@pytest.fixture
def topic_prefix(kafka_server: str, registry_server: str) -> str:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}."
    new_job_topics(kafka_server, prefix)
    return prefix


POLICY = {
    "channels": [
        {"channel": "web", "locations": ["DC1", "DC2", "DC3"], "share": 0.8, "buffer": 2},
        {"channel": "stores", "locations": ["ST001", "ST002", "ST003"], "share": 1, "buffer": 0},
    ]
}


def start_job(
    prefix: str,
    kafka: str,
    redis_url: str,
    tmp_path: Path,
    restore_from: str | None = None,
    parallelism: int = 1,
) -> subprocess.Popen[bytes]:
    (tmp_path / "policy.json").write_bytes(orjson.dumps(POLICY))
    args = [
        *ATP,
        "job",
        "--bootstrap-servers",
        kafka,
        "--topic-prefix",
        prefix,
        "--group-id",
        prefix,
        "--transactional-id-prefix",
        prefix,
        "--redis-url",
        redis_url,
        "--checkpoint-interval-ms",
        "2000",
        "--checkpoint-dir",
        (tmp_path / "checkpoints").as_uri(),
        "--out-of-orderness-ms",
        str(OUT_OF_ORDERNESS_MS),
        "--policy",
        str(tmp_path / "policy.json"),
        "--parallelism",
        str(parallelism),
    ]
    if restore_from:
        args += ["--restore-from", restore_from]
    log = (tmp_path / "job.log").open("ab")
    # A session of its own, so stopping it also stops the JVM the job runs in.
    return subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def stop_job(process: subprocess.Popen[bytes]) -> None:
    """Stop the job and the JVM under it, as a crash of its machine would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


@pytest.fixture
def job(
    topic_prefix: str, kafka_server: str, redis_server: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    redis.Redis.from_url(redis_server).flushdb()
    # Parallelism 2: keys, channels and watermarks spread over two subtasks each.
    process = start_job(topic_prefix, kafka_server, redis_server, tmp_path, parallelism=2)
    yield process
    stop_job(process)


def test_stream_job_equals_replay(
    job: subprocess.Popen[bytes],
    topic_prefix: str,
    kafka_server: str,
    redis_server: str,
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.jsonl"
    subprocess.run(
        [
            *ATP,
            "simulate",
            "--events",
            str(E2E_EVENTS),
            "--skus",
            "400",
            "--seed",
            "11",
            "--output",
            str(events),
        ],
        check=True,
    )
    # The golden vectors first, each scenario on items and in a time window of its own,
    # all before the simulated log: every rule and every reason code goes through the job.
    simulated = events.read_bytes()
    first_time = min(
        parse_iso(record["occurred_at"])
        for record in map(orjson.loads, simulated.splitlines()[:50])
        if isinstance(record, dict) and isinstance(record.get("occurred_at"), str)
    )
    golden = combined_log(end_before=first_time - 24 * 3600 * 1000)
    events.write_bytes(b"\n".join(golden) + b"\n" + simulated)
    replayed, dead = tmp_path / "replay.jsonl", tmp_path / "dlq.jsonl"
    channels = tmp_path / "channels.jsonl"
    subprocess.run(
        [
            *ATP,
            "replay",
            "--input",
            str(events),
            "--output",
            str(replayed),
            "--dlq",
            str(dead),
            "--policy",
            str(tmp_path / "policy.json"),
            "--channel-output",
            str(channels),
        ],
        check=True,
        capture_output=True,
    )
    # The Beam backfill writes the same files as the replay, byte for byte.
    backfilled = tmp_path / "backfill"
    backfilled.mkdir()
    subprocess.run(
        [
            *ATP,
            "backfill",
            "--input",
            str(events),
            "--output",
            str(backfilled / replayed.name),
            "--dlq",
            str(backfilled / dead.name),
            "--policy",
            str(tmp_path / "policy.json"),
            "--channel-output",
            str(backfilled / channels.name),
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    )
    for output in (replayed, dead, channels):
        assert (backfilled / output.name).read_bytes() == output.read_bytes(), output.name
    expected = {(s["item_id"], s["location_id"]): s for s in map(orjson.loads, replayed.open("rb"))}
    clock = parse_iso(next(iter(expected.values()))["as_of"])
    # A heartbeat past the last event moves the job's watermark to the replay's clock.
    heartbeat = format_iso(clock + OUT_OF_ORDERNESS_MS + 1)
    subprocess.run(
        [
            *ATP,
            "produce",
            "--input",
            str(events),
            "--topic",
            topic_prefix + "events",
            "--bootstrap-servers",
            kafka_server,
            "--heartbeat-at",
            heartbeat,
        ],
        check=True,
        capture_output=True,
    )

    store = SnapshotStore.from_url(redis_server)
    mismatched = _wait_until_equal(store, expected, 900, job)
    assert not mismatched, f"{len(mismatched)} keys differ from the replay, e.g. {mismatched[:3]}"
    actual = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
    assert set(actual) == set(expected)

    # Dead letters: exactly the malformed records, each once.
    expected_dead = sorted(orjson.loads(line)["raw"] for line in dead.open("rb"))
    letters = read_committed(kafka_server, topic_prefix + "dead-letters", len(expected_dead), 60)
    assert sorted(decode(m)["raw"].decode("utf-8", "replace") for m in letters) == expected_dead
    # Each names the record it came from: its raw bytes are that record's value.
    logged = {
        (m.partition(), m.offset()): m.value()
        for m in read_committed(kafka_server, topic_prefix + "events", 10**9, 5)
    }
    for letter in map(decode, letters):
        at = (letter["source_partition"], letter["source_offset"])
        assert logged.get(at) == letter["raw"], f"dead letter {letter['reason']} at {at}"

    # ATP changes, read committed: one record per revision per key, the last equals the snapshot.
    total_revisions = sum(s["revision"] for s in actual.values())
    changes = read_committed(kafka_server, topic_prefix + "atp-changes", total_revisions, 60)
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for message in changes:
        change = decode(message)
        assert message_key(message) == f"{change['item_id']}|{change['location_id']}"
        by_key.setdefault((change["item_id"], change["location_id"]), []).append(change)
    for key, records in by_key.items():
        revisions = [r["revision"] for r in records]
        assert len(revisions) == len(set(revisions)), f"duplicate revisions at {key}"
        assert min(records, key=lambda r: r["revision"])["previous_available"] is None, key
        last = max(records, key=lambda r: r["revision"])
        assert {f: last[f] for f in CONTRACT_FIELDS} == {f: actual[key][f] for f in CONTRACT_FIELDS}
    assert set(by_key) == set(actual)

    # Channel ATP: the last change per (channel, item) equals the replay's value, and a
    # change is only ever emitted when the number moves.
    wanted = {
        (c["channel"], c["item_id"]): c["available"] for c in map(orjson.loads, channels.open("rb"))
    }
    emitted: dict[tuple[str, str], list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        channel_messages = read_committed(kafka_server, topic_prefix + "channel-atp", 10**9, 5)
        emitted = {}
        for record in channel_messages:
            change = decode(record)
            assert message_key(record) == f"{change['channel']}|{change['item_id']}"
            emitted.setdefault((change["channel"], change["item_id"]), []).append(change)
        latest = {k: max(v, key=lambda c: c["version"])["available"] for k, v in emitted.items()}
        if latest == wanted:
            break
    assert latest == wanted
    for history in emitted.values():
        ordered = sorted(history, key=lambda c: c["version"])
        assert [c["version"] for c in ordered] == list(range(1, len(ordered) + 1))
        values = [c["available"] for c in ordered]
        assert all(a != b for a, b in itertools.pairwise(values))

    _policy_change_applies_at_run_time(kafka_server, topic_prefix, store)


def _policy_change_applies_at_run_time(servers: str, prefix: str, store: SnapshotStore) -> None:
    """A new policy on the policy topic replaces the start-up one without a restart (a bad
    one is ignored): the next change of a web location recomputes the item's web ATP."""
    policy = {"channels": [{"channel": "web", "locations": ["DC1", "DC2"], "share": 0.5}]}
    web = parse_policy(policy).channels[0]
    producer = Producer({"bootstrap.servers": servers})
    producer.produce(prefix + "policy", b"{not a policy", key=b"policy")
    producer.produce(prefix + "policy", orjson.dumps(policy), key=b"policy")
    producer.flush(30)
    wire = WireFormat(REGISTRY_URL)
    item = "SKU-POLICY"
    # The policy and the events are separate streams: touch the item until a change
    # computed with the new policy comes out (or give up).
    deadline, n, latest = time.monotonic() + 90, 0, None
    while time.monotonic() < deadline:
        n += 1
        receipt = Event(
            f"policy-{n}", "RECEIPT", item, "DC1", 10, parse_iso("2030-01-01T00:00:00Z"),
            None, None, None, None, None, None, None, None,
        )  # fmt: skip
        value = wire.encode(INVENTORY_EVENT, prefix + "events", event_to_record(receipt))
        producer.produce(prefix + "events", value, key=f"{item}|DC1".encode())
        producer.flush(30)
        time.sleep(3)
        records = [decode(m) for m in read_committed(servers, prefix + "channel-atp", 10**9, 2)]
        mine = [r for r in records if r["item_id"] == item and r["channel"] == "web"]
        latest = max(mine, key=lambda r: r["version"]) if mine else None
        available = {s["location_id"]: s["available"] for s in store.item_snapshots(item)}
        if latest is not None and latest["available"] == channel_available(web, available):
            return
    raise AssertionError(f"the new policy was not applied: last web change {latest}")


def _wait_until_equal(
    store: SnapshotStore,
    expected: dict[tuple[str, str], dict[str, Any]],
    seconds: float,
    job: subprocess.Popen[bytes] | None = None,
) -> list[Any]:
    """Keys whose snapshot in Redis still differs from ``expected`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    mismatched: list[Any] = ["not started"]
    while time.monotonic() < deadline and mismatched:
        assert job is None or job.poll() is None, "the job stopped"
        actual = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
        mismatched = [
            key
            for key, snap in expected.items()
            if key not in actual or any(actual[key][f] != snap[f] for f in CONTRACT_FIELDS)
        ]
        if mismatched:
            time.sleep(2)
    return mismatched


def committed_to_end(client: dict[str, Any], prefix: str, seconds: float) -> bool:
    """Whether the job's group (named ``prefix``) has committed every events partition
    to its end within ``seconds``; ``client``: the Kafka client settings."""
    consumer = Consumer({**client, "group.id": prefix})
    partitions = [TopicPartition(prefix + "events", p) for p in range(4)]
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            committed = consumer.committed(partitions, timeout=10)
            ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
            if [tp.offset for tp in committed] == ends:
                return True
            time.sleep(1)
        return False
    finally:
        consumer.close()


def test_job_restarts_from_its_retained_checkpoint(
    topic_prefix: str, kafka_server: str, redis_server: str, tmp_path: Path
) -> None:
    """Stop the job, start it again from its last checkpoint, keep producing: the final
    state is the replay of the whole log (an empty restart would lose the first half)."""
    events = tmp_path / "events.jsonl"
    subprocess.run(
        [
            *ATP,
            "simulate",
            "--events",
            "3000",
            "--skus",
            "40",
            "--seed",
            "12",
            "--output",
            str(events),
        ],
        check=True,
    )
    lines = events.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(lines[:1500]))
    second.write_bytes(b"".join(lines[1500:]))

    def replay(log: Path) -> dict[tuple[str, str], dict[str, Any]]:
        out = tmp_path / f"{log.stem}.replay.jsonl"
        subprocess.run(
            [*ATP, "replay", "--input", str(log), "--output", str(out)],
            check=True,
            capture_output=True,
        )
        return {(s["item_id"], s["location_id"]): s for s in map(orjson.loads, out.open("rb"))}

    def produce(log: Path, heartbeat: int) -> None:
        subprocess.run(
            [
                *ATP,
                "produce",
                "--input",
                str(log),
                "--topic",
                topic_prefix + "events",
                "--bootstrap-servers",
                kafka_server,
                "--heartbeat-at",
                format_iso(heartbeat + OUT_OF_ORDERNESS_MS + 1),
            ],
            check=True,
            capture_output=True,
        )

    redis.Redis.from_url(redis_server).flushdb()
    store = SnapshotStore.from_url(redis_server)
    half = replay(first)
    job = start_job(topic_prefix, kafka_server, redis_server, tmp_path)
    try:
        produce(first, parse_iso(next(iter(half.values()))["as_of"]))
        assert not _wait_until_equal(store, half, 240, job), "first half not folded"
        # Offsets are committed when a checkpoint completes: once they reach the end, a
        # restart without the checkpoint's state would lose the first half for good.
        assert committed_to_end({"bootstrap.servers": kafka_server}, topic_prefix, 60), (
            "offsets never committed"
        )
    finally:
        stop_job(job)
    checkpoints = sorted(
        (tmp_path / "checkpoints").glob("*/chk-*"), key=lambda p: int(p.name.split("-")[1])
    )
    assert checkpoints, "no retained checkpoint"

    whole = replay(events)
    job = start_job(topic_prefix, kafka_server, redis_server, tmp_path, str(checkpoints[-1]))
    try:
        produce(second, parse_iso(next(iter(whole.values()))["as_of"]))
        mismatched = _wait_until_equal(store, whole, 240, job)
        assert not mismatched, f"{len(mismatched)} keys differ after the restore: {mismatched[:3]}"
    finally:
        stop_job(job)


def assert_change_histories(
    by_key: dict[tuple[str, str], list[dict[str, Any]]],
    actual: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Per key: every revision once, every applied event once (versions 1..N, no gap),
    revisions moving by one per event and by the instants it drops per expiry, each
    record taking over from the one before it, the last one equal to the snapshot."""
    assert set(by_key) == set(actual)
    for key, records in by_key.items():
        revisions = [r["revision"] for r in records]
        assert len(revisions) == len(set(revisions)), f"duplicate revisions at {key}"
        ordered = sorted(records, key=lambda r: r["revision"])
        versions = [r["version"] for r in ordered if str(r["cause"]) == "EVENT"]
        assert versions == list(range(1, actual[key]["version"] + 1)), f"events at {key}"
        for before, after in itertools.pairwise(ordered):
            # An event moves the revision by one; an expiry by the expiry instants it drops.
            step = after["revision"] - before["revision"]
            assert step == 1 or (step > 1 and str(after["cause"]) == "EXPIRY"), key
            assert after["previous_available"] == before["available"], f"a gap at {key}"
        final = ordered[-1]
        assert final["revision"] == actual[key]["revision"]
        assert {f: final[f] for f in CONTRACT_FIELDS} == {
            f: actual[key][f] for f in CONTRACT_FIELDS
        }
