"""End to end on real services: simulated events through ``atp produce`` into a real Kafka
broker, the PyFlink job (submitted with ``flink run`` to a standalone cluster; ``atp job``'s
local MiniCluster for the restore) folding them into a real Redis, compared with
``atp replay`` of the same log."""

from __future__ import annotations

import contextlib
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
from confluent_kafka import Producer

from pipelines.stream_config import REGISTRY_URL
from pipelines.wire import WireFormat
from state.schemas import INVENTORY_EVENT
from state.serving import SnapshotStore
from tests.golden.vectors import combined_log
from tests.integration.jobs import FlinkCluster
from tests.integration.stream_checks import (
    JobTopics,
    by_key,
    check_changes,
    check_channels,
    check_dead_letters,
    check_exceptions,
    wait_until_equal,
)
from tests.integration.topics import new_job_topics
from transforms.channels import channel_available, parse_policy
from transforms.events import Event
from transforms.exceptions import KINDS
from transforms.timeutil import format_iso, parse_iso
from transforms.validation import event_to_record

pytestmark = pytest.mark.integration

ATP = [sys.executable, "-m", "pipelines.cli"]
OUT_OF_ORDERNESS_MS = 5_000
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


def job_args(
    prefix: str, kafka: str, redis_url: str, tmp_path: Path, parallelism: int = 1
) -> list[str]:
    """The stream job's flags in these tests: topics, group and transactions under
    ``prefix``, checkpoints every 2 s under ``tmp_path``, the test POLICY."""
    (tmp_path / "policy.json").write_bytes(orjson.dumps(POLICY))
    return [
        *("--bootstrap-servers", kafka, "--redis-url", redis_url),
        *("--topic-prefix", prefix, "--group-id", prefix, "--transactional-id-prefix", prefix),
        *("--checkpoint-interval-ms", "2000"),
        *("--checkpoint-dir", (tmp_path / "checkpoints").as_uri()),
        *("--out-of-orderness-ms", str(OUT_OF_ORDERNESS_MS)),
        # The job waits idle for the log; a partition marked idle would leave the watermark
        # and its alignment while the others catch up (docs/stream-job.md, Event time).
        *("--idleness-ms", "600000"),
        *("--policy", str(tmp_path / "policy.json"), "--parallelism", str(parallelism)),
    ]


def start_job(
    prefix: str,
    kafka: str,
    redis_url: str,
    tmp_path: Path,
    restore_from: str | None = None,
    state_backend: str = "hashmap",
) -> subprocess.Popen[bytes]:
    """``atp job`` (a local MiniCluster) in the background."""
    args = [*ATP, "job", *job_args(prefix, kafka, redis_url, tmp_path)]
    args += ["--state-backend", state_backend]
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
def cluster_job(
    flink_cluster: FlinkCluster,
    topic_prefix: str,
    kafka_server: str,
    redis_server: str,
    tmp_path: Path,
) -> Iterator[str]:
    """The job submitted with ``flink run`` to the standalone cluster; its id."""
    redis.Redis.from_url(redis_server).flushdb()
    # Parallelism 2: keys, channels and watermarks spread over two subtasks each.
    job_id = flink_cluster.submit(
        job_args(topic_prefix, kafka_server, redis_server, tmp_path, parallelism=2)
    )
    flink_cluster.until(
        job_id, "the job running", 180, lambda: flink_cluster.running_since(job_id, 0)
    )
    yield job_id
    flink_cluster.cancel(job_id)


def test_stream_job_equals_replay(
    cluster_job: str,
    flink_cluster: FlinkCluster,
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
    channels, exceptions = tmp_path / "channels.jsonl", tmp_path / "exceptions.jsonl"
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
            "--exceptions",
            str(exceptions),
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
            "--exceptions",
            str(backfilled / exceptions.name),
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    )
    for output in (replayed, dead, channels, exceptions):
        assert (backfilled / output.name).read_bytes() == output.read_bytes(), output.name
    expected = by_key(replayed)
    clock = parse_iso(next(iter(expected.values()))["as_of"])
    # A heartbeat past the last event moves the job's watermark to the replay's clock.
    heartbeat = format_iso(clock + OUT_OF_ORDERNESS_MS + 1)
    # Avro that only the stream sees (a file has none): each must become a dead letter too.
    broken = _broken_avro(kafka_server, topic_prefix + "events", first_time)
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
    job = cluster_job
    running = lambda: flink_cluster.get(f"/jobs/{job}")["state"] == "RUNNING"  # noqa: E731
    mismatched = wait_until_equal(store, expected, 900, running)
    assert not mismatched, f"{len(mismatched)} keys differ from the replay, e.g. {mismatched[:3]}"
    actual = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
    assert set(actual) == set(expected)

    topics = JobTopics(kafka_server, topic_prefix)
    # Dead letters: exactly the malformed records, each once, each naming the record it
    # came from: its raw bytes are that record's value.
    letters = check_dead_letters(topics, dead, broken)
    logged = {(m.partition(), m.offset()): m.value() for m in topics.messages("events", 10**9, 5)}
    for letter in letters:
        at = (letter["source_partition"], letter["source_offset"])
        assert logged.get(at) == letter["raw"], f"dead letter {letter['reason']} at {at}"
    check_changes(topics, actual)
    check_channels(topics, channels)
    # The golden vectors raise every kind; the stream's exceptions agree with the replay's.
    raised = {str(r["kind"]) for r in check_exceptions(topics, exceptions)}
    assert raised == set(KINDS), raised

    _policy_change_applies_at_run_time(topics, store)
    # Bad records, redeliveries and everything else: the job never failed once.
    assert not flink_cluster.restarted_since(job, 0), flink_cluster.failure(job)


def _broken_avro(servers: str, topic: str, timestamp: int) -> list[bytes]:
    """Publish Confluent-framed values no reader can decode, stamped with an event time
    (a wall-clock stamp would move the watermark to today); the values."""
    wire = WireFormat(REGISTRY_URL)
    record = event_to_record(
        Event("broken-1", "RECEIPT", "SKU-BROKEN", "DC1", 1, timestamp,
              None, None, None, None, None, None, None, None)
    )  # fmt: skip
    valid = wire.encode(INVENTORY_EVENT, topic, record)
    values = [
        b"\x00\x7f\xff\xff\xf0" + valid[5:],  # a schema id the registry never issued
        valid[: len(valid) // 2],  # the body cut short
        b"\x00",  # the magic byte alone
    ]
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
    for n, value in enumerate(values):
        producer.produce(topic, value, key=b"SKU-BROKEN|DC1", partition=n, timestamp=timestamp)
    assert producer.flush(30) == 0
    return values


def _policy_change_applies_at_run_time(topics: JobTopics, store: SnapshotStore) -> None:
    """A new policy on the policy topic replaces the start-up one without a restart (a bad
    one is ignored): the next change of a web location recomputes the item's web ATP."""
    policy = {"channels": [{"channel": "web", "locations": ["DC1", "DC2"], "share": 0.5}]}
    web = parse_policy(policy).channels[0]
    prefix = topics.prefix
    producer = Producer({"bootstrap.servers": topics.servers})
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
        records = topics.records("channel-atp", 10**9, 2)
        mine = [r for r in records if r["item_id"] == item and r["channel"] == "web"]
        latest = max(mine, key=lambda r: r["version"]) if mine else None
        available = {s["location_id"]: s["available"] for s in store.item_snapshots(item)}
        if latest is not None and latest["available"] == channel_available(web, available):
            return
    raise AssertionError(f"the new policy was not applied: last web change {latest}")


def test_job_restarts_from_its_retained_checkpoint(
    topic_prefix: str, kafka_server: str, redis_server: str, tmp_path: Path
) -> None:
    """Stop the job, start it again from its last checkpoint, keep producing: the final
    state is the replay of the whole log (an empty restart would lose the first half). On
    the RocksDB state backend (the other tests run on the heap's)."""
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
        return by_key(out)

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

    def alive() -> bool:  # the job started last
        return job.poll() is None

    redis.Redis.from_url(redis_server).flushdb()
    store = SnapshotStore.from_url(redis_server)
    half = replay(first)
    job = start_job(topic_prefix, kafka_server, redis_server, tmp_path, state_backend="rocksdb")
    try:
        produce(first, parse_iso(next(iter(half.values()))["as_of"]))
        assert not wait_until_equal(store, half, 240, alive), "first half not folded"
        # Offsets are committed when a checkpoint completes: once they reach the end, a
        # restart without the checkpoint's state would lose the first half for good.
        assert JobTopics(kafka_server, topic_prefix).committed_to_end(60), "offsets never committed"
    finally:
        stop_job(job)
    checkpoints = sorted(
        (tmp_path / "checkpoints").glob("*/chk-*"), key=lambda p: int(p.name.split("-")[1])
    )
    assert checkpoints, "no retained checkpoint"

    whole = replay(events)
    job = start_job(
        topic_prefix, kafka_server, redis_server, tmp_path, str(checkpoints[-1]), "rocksdb"
    )
    try:
        produce(second, parse_iso(next(iter(whole.values()))["as_of"]))
        mismatched = wait_until_equal(store, whole, 240, alive)
        assert not mismatched, f"{len(mismatched)} keys differ after the restore: {mismatched[:3]}"
        # Across the restore, every change once: the killed job's open transactions aborted.
        actual = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
        check_changes(JobTopics(kafka_server, topic_prefix), actual)
    finally:
        stop_job(job)
