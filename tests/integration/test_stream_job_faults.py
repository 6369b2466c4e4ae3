"""Faults on a standalone Flink cluster: while events stream in, the TaskManager is killed
with SIGKILL (at least once in the middle of a checkpoint) and restarted, and the Kafka
broker is restarted. Afterwards Redis equals ``atp replay`` of the whole log, and the
change topics, read committed, hold every change exactly once. Each recovery's duration
is printed (``pytest -s``) and written to var/fault-recovery.json."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from state.serving import SnapshotStore
from tests.integration.conftest import ROOT, _infra, _service
from tests.integration.jobs import FlinkCluster
from tests.integration.stream_checks import (
    SNAPSHOT_FIELDS,
    JobTopics,
    by_key,
    check_changes,
    check_channels,
    check_dead_letters,
    check_exceptions,
    wait_until_equal,
)
from tests.integration.test_stream_job_e2e import ATP, OUT_OF_ORDERNESS_MS, POLICY
from tests.integration.topics import new_job_topics
from transforms.timeutil import format_iso, parse_iso

pytestmark = pytest.mark.integration

# A broker and a cluster of the test's own, on other ports: restarting them disturbs no
# other test and no one's job.
KAFKA_PORT = 9192
FAULT_KAFKA = {
    "KAFKA_PORT": str(KAFKA_PORT),
    "KAFKA_CONTROLLER_PORT": "9193",
    "KAFKA_HOME_DIR": "var/kafka-faults",
}
FLINK_REST_PORT = 8191
FAULT_FLINK = {
    "FLINK_HOME_DIR": "var/flink-faults",
    "FLINK_REST_PORT": str(FLINK_REST_PORT),
    "FLINK_RPC_PORT": "6193",
    # REST answers at most 0.1 s old (3 s by default), so a checkpoint in progress is seen;
    # enough checkpoint history to look up the one a kill interrupted; heartbeats every
    # 2 s (10 s by default): a dead TaskManager is noticed after two failed heartbeats.
    "FLINK_SETTINGS": "web.refresh-interval=100ms web.checkpoints.history=200 "
    "heartbeat.interval=2000ms",
}
EVENTS = 24_000
CHUNKS = 12
CHUNK_GAP_S = 8.0  # at most, between chunks, while faults are still to come
KILLS = 3
MAX_KILLS = 6  # more kills if none of the first landed inside a checkpoint
FIGURES = ROOT / "var" / "fault-recovery.json"


@pytest.fixture(scope="module")
def fault_kafka() -> Iterator[str]:
    _infra("fetch-jars.sh")
    for _ in _service("kafka.sh", FAULT_KAFKA, ("stop", "--purge")):
        yield f"127.0.0.1:{KAFKA_PORT}"


@pytest.fixture(scope="module")
def fault_cluster() -> Iterator[FlinkCluster]:
    for _ in _service("flink.sh", FAULT_FLINK):
        yield FlinkCluster(FLINK_REST_PORT, FAULT_FLINK)


def service_args(kafka: str, registry: str) -> list[str]:
    """How the job and the producer reach their services: the one place that says it."""
    return ["--bootstrap-servers", kafka, "--registry-url", registry]


@dataclass
class Recovery:
    fault: str
    during_checkpoint: bool | None  # for a kill: a checkpoint was running and failed
    running_s: float | None  # fault -> job RUNNING again, every task running
    checkpoint_s: float  # fault -> first checkpoint completed after it
    restarted: bool  # the job failed and restarted


class ChunkedProducer(threading.Thread):
    """``atp produce`` of a log in chunks, one every CHUNK_GAP_S seconds, or at once after
    ``hurry()``."""

    def __init__(self, chunks: list[Path], topic: str, args: list[str]) -> None:
        super().__init__(daemon=True)
        self.chunks, self.topic, self.args = chunks, topic, args
        self.errors: list[str] = []
        self.produced = 0
        self._hurry = threading.Event()

    def hurry(self) -> None:
        self._hurry.set()

    def run(self) -> None:
        for chunk in self.chunks:
            result = produce(chunk, self.topic, self.args)
            if result.returncode != 0:
                self.errors.append(result.stderr)
                return
            self.produced += 1
            self._hurry.wait(CHUNK_GAP_S)


def produce(
    log: Path, topic: str, args: list[str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ATP, "produce", "--input", str(log), "--topic", topic, *args, *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def atp(*args: str) -> None:
    subprocess.run([*ATP, *args], check=True, capture_output=True)


def now_ms() -> float:
    return time.time() * 1000


def test_job_recovers_exactly_once_from_killed_taskmanagers_and_a_broker_restart(
    fault_kafka: str,
    fault_cluster: FlinkCluster,
    registry_server: str,
    redis_server: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    cluster, prefix = fault_cluster, f"faults-{uuid.uuid4().hex[:8]}."
    new_job_topics(fault_kafka, prefix)
    args = service_args(fault_kafka, registry_server)

    events, policy = tmp_path / "events.jsonl", tmp_path / "policy.json"
    policy.write_bytes(orjson.dumps(POLICY))
    atp(
        "simulate", "--events", str(EVENTS), "--skus", "80", "--seed", "31", "--output", str(events)
    )
    replayed, dead, channels, exceptions = (
        tmp_path / n for n in ("replay.jsonl", "dlq.jsonl", "ch.jsonl", "exceptions.jsonl")
    )
    atp(
        *("replay", "--input", str(events), "--output", str(replayed), "--dlq", str(dead)),
        *("--policy", str(policy), "--channel-output", str(channels)),
        *("--exceptions", str(exceptions)),
    )
    lines = events.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // CHUNKS)
    chunks = []
    for n in range(CHUNKS):
        chunks.append(tmp_path / f"chunk-{n:02d}.jsonl")
        chunks[-1].write_bytes(b"".join(lines[n * size : (n + 1) * size]))

    job_id = cluster.submit(
        [
            *args,
            "--topic-prefix",
            prefix,
            "--group-id",
            prefix,
            "--transactional-id-prefix",
            prefix,
            "--redis-url",
            redis_server,
            "--checkpoint-interval-ms",
            "2000",
            "--checkpoint-dir",
            (tmp_path / "checkpoints").as_uri(),
            "--out-of-orderness-ms",
            str(OUT_OF_ORDERNESS_MS),
            # Recoveries and the broker restart leave partitions without records for
            # longer than the default 30 s; a partition marked idle that wakes up behind
            # the others would see its events behind the watermark. Not what this tests.
            "--idleness-ms",
            "600000",
            "--policy",
            str(policy),
        ]
    )
    producer = ChunkedProducer(chunks, prefix + "events", args)
    try:
        cluster.until(job_id, "the job running", 180, lambda: cluster.running_since(job_id, 0))
        cluster.until(job_id, "a first checkpoint", 60, lambda: cluster.completed_since(job_id, 0))
        producer.start()
        recoveries = _inject_faults(cluster, job_id, producer)
        producer.hurry()
        producer.join(120)
        assert not producer.errors, producer.errors
        assert producer.produced == CHUNKS, "not every chunk was produced"
        _report(recoveries)
        assert sum(r.fault == "TaskManager kill" for r in recoveries) >= KILLS
        assert any(r.during_checkpoint for r in recoveries), "no kill inside a checkpoint"

        expected = by_key(replayed)
        # A heartbeat past the last event moves the job's watermark to the replay's clock.
        clock = parse_iso(next(iter(expected.values()))["as_of"])
        empty = tmp_path / "empty.jsonl"
        empty.write_bytes(b"")
        heartbeat = format_iso(clock + OUT_OF_ORDERNESS_MS + 1)
        result = produce(empty, prefix + "events", args, "--heartbeat-at", heartbeat)
        assert result.returncode == 0, result.stderr

        store = SnapshotStore.from_url(redis_server)
        topics = JobTopics(fault_kafka, prefix, registry_server)
        mismatched = wait_until_equal(store, expected, 240)
        actual = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
        assert not mismatched, f"{len(mismatched)} keys differ from the replay: " + _differences(
            topics, expected, actual, mismatched[:3]
        )
        assert set(actual) == set(expected)
        check_dead_letters(topics, dead)
        check_changes(topics, actual)
        check_channels(topics, channels)
        check_exceptions(topics, exceptions)
    finally:
        producer.hurry()
        with contextlib.suppress(OSError):  # a cluster that is gone has no job to cancel
            cluster.cancel(job_id)


def _inject_faults(cluster: FlinkCluster, job_id: str, producer: ChunkedProducer) -> list[Recovery]:
    """Kill the TaskManager KILLS times (more if no kill fell inside a checkpoint), and
    restart the broker after the second kill."""
    recoveries: list[Recovery] = []
    kills = 0
    while kills < KILLS or (not any(r.during_checkpoint for r in recoveries) and kills < MAX_KILLS):
        recoveries.append(_kill_taskmanager(cluster, job_id))
        kills += 1
        print(f"  {recoveries[-1]} (chunks produced: {producer.produced}/{CHUNKS})")
        if kills == 2:
            recoveries.append(_restart_broker(cluster, job_id))
            print(f"  {recoveries[-1]} (chunks produced: {producer.produced}/{CHUNKS})")
    return recoveries


def _checkpoint_in_progress(cluster: FlinkCluster, job_id: str) -> int | None:
    """The id of a checkpoint some tasks have not acknowledged yet, if one is running."""
    stats = cluster.checkpoints(job_id)
    if not stats["counts"]["in_progress"]:
        return None
    for checkpoint in stats["history"]:
        if (
            checkpoint["status"] == "IN_PROGRESS"
            and checkpoint["num_acknowledged_subtasks"] < checkpoint["num_subtasks"]
        ):
            return int(checkpoint["id"])
    return None


def _kill_taskmanager(cluster: FlinkCluster, job_id: str) -> Recovery:
    # Wait (a while) for a checkpoint in progress, then kill: during it if there was one.
    deadline = time.monotonic() + 20
    interrupted = None
    while interrupted is None and time.monotonic() < deadline:
        interrupted = _checkpoint_in_progress(cluster, job_id)
        if interrupted is None:
            time.sleep(0.02)
    killed_at = now_ms()
    cluster.infra("taskmanager", "kill")
    cluster.infra("taskmanager", "start")
    cluster.until(
        job_id, "the job running again", 240, lambda: cluster.running_since(job_id, killed_at)
    )
    running_s = (now_ms() - killed_at) / 1000
    checkpoint = cluster.until(
        job_id,
        "a checkpoint after the kill",
        120,
        lambda: cluster.completed_since(job_id, killed_at),
    )
    # The kill fell inside the checkpoint if the checkpoint never completed.
    during = None
    if interrupted is not None:
        during = cluster.checkpoint(job_id, interrupted)["status"] == "FAILED"
    return Recovery(
        "TaskManager kill",
        during,
        round(running_s, 2),
        round((checkpoint["latest_ack_timestamp"] - killed_at) / 1000, 2),
        cluster.restarted_since(job_id, killed_at),
    )


def _restart_broker(cluster: FlinkCluster, job_id: str) -> Recovery:
    stopped_at = now_ms()
    _infra("kafka.sh", "stop", env=FAULT_KAFKA)
    _infra("kafka.sh", "start", env=FAULT_KAFKA)
    checkpoint = cluster.until(
        job_id,
        "a checkpoint after the broker restart",
        180,
        lambda: cluster.completed_since(job_id, stopped_at),
    )
    # The job may ride the restart out or fail and restart: either way, its tasks run.
    cluster.until(job_id, "the job running", 120, lambda: cluster.running_since(job_id, 0))
    return Recovery(
        "Kafka broker restart",
        None,
        None,
        round((checkpoint["latest_ack_timestamp"] - stopped_at) / 1000, 2),
        cluster.restarted_since(job_id, stopped_at),
    )


def _report(recoveries: list[Recovery]) -> None:
    print("\nrecovery (seconds)        running  checkpoint  in a checkpoint  job restarted")
    for r in recoveries:
        running = "-" if r.running_s is None else f"{r.running_s:7.1f}"
        during = "-" if r.during_checkpoint is None else str(r.during_checkpoint).lower()
        restarted = str(r.restarted).lower()
        print(f"  {r.fault:22} {running:>8} {r.checkpoint_s:11.1f}  {during:15} {restarted}")
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(
        json.dumps(
            {
                "events": EVENTS,
                "checkpoint_interval_ms": 2000,
                "recoveries": [asdict(r) for r in recoveries],
            },
            indent=2,
        )
        + "\n"
    )


def _differences(
    topics: JobTopics,
    expected: dict[tuple[str, str], dict[str, Any]],
    actual: dict[tuple[str, str], dict[str, Any]],
    keys: list[tuple[str, str]],
) -> str:
    """What differs at ``keys``: replay, Redis, and the last committed change of each."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for change in topics.records("atp-changes", 10**9, 10):
        key = (change["item_id"], change["location_id"])
        if key in keys and change["revision"] > last.get(key, {}).get("revision", -1):
            last[key] = change
    fields = (*SNAPSHOT_FIELDS, "revision")
    lines = []
    for key in keys:
        lines.append(f"{key}:")
        for name, record in (("replay", expected), ("redis", actual), ("topic", last)):
            lines.append(f"  {name:6} {[record.get(key, {}).get(f) for f in fields]}")
    return f"{list(fields)}\n" + "\n".join(lines)
