"""An upgrade that keeps state, on a standalone Flink cluster
(docs/runbooks/upgrade-with-savepoint.md): the job runs on the secured platform, half of a log
goes in, the job stops with a savepoint, and a CHANGED job (another channel policy, parallelism
2 instead of 1) starts from that savepoint and reads the other half. Redis then equals ``atp
replay`` of the whole log, the ATP change topic holds every revision of every key once, and the
channel stage's versions carry on across the upgrade under the new policy."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.jobs import FlinkCluster, wait_for
from tests.integration.secured import (
    ROOT,
    SASL_KAFKA_ENV,
    SECURED_FLINK_ENV,
    SaslKafka,
    SecureRedis,
    atp,
    job_args,
    produce,
)
from tests.integration.stream_checks import (
    JobTopics,
    Snapshots,
    by_key,
    check_changes,
    check_channels,
    wait_until_equal,
)
from tests.integration.test_stream_job_e2e import OUT_OF_ORDERNESS_MS, POLICY
from tests.integration.topics import new_job_topics
from transforms.timeutil import format_iso, parse_iso

pytestmark = pytest.mark.integration

DB = 2  # this module's database on the secure Redis
# The upgrade's policy: the web channel's share halves, and a new channel appears.
NEW_POLICY = {
    "channels": [
        {"channel": "web", "locations": ["DC1", "DC2", "DC3"], "share": 0.5, "buffer": 2},
        {"channel": "stores", "locations": ["ST001", "ST002", "ST003"], "share": 1, "buffer": 0},
        {"channel": "b2b", "locations": ["DC1", "DC2"], "share": 0.25, "buffer": 0},
    ]
}


def test_a_changed_job_restores_from_a_savepoint(
    secured_flink: FlinkCluster,
    sasl_kafka: SaslKafka,
    secure_redis: SecureRedis,
    registry_server: str,
    tmp_path: Path,
) -> None:
    cluster, prefix = secured_flink, f"upgrade-{uuid.uuid4().hex[:8]}."
    new_job_topics(sasl_kafka.client_config(), prefix)
    secure_redis.client("admin", DB).flushdb()
    events = tmp_path / "events.jsonl"
    atp("simulate", "--events", "3000", "--skus", "40", "--seed", "21", "--output", str(events))
    lines = events.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(lines[:1500]))
    second.write_bytes(b"".join(lines[1500:]))
    old_policy, new_policy = tmp_path / "policy.json", tmp_path / "new-policy.json"
    old_policy.write_bytes(orjson.dumps(POLICY))
    new_policy.write_bytes(orjson.dumps(NEW_POLICY))

    def replay(log: Path) -> Snapshots:
        out = tmp_path / f"{log.stem}.replay.jsonl"
        atp("replay", "--input", str(log), "--output", str(out))
        return by_key(out)

    def feed(log: Path, snapshots: Snapshots) -> None:
        # A heartbeat past the last event moves the job's watermark to the replay's clock.
        clock = parse_iso(next(iter(snapshots.values()))["as_of"])
        heartbeat = format_iso(clock + OUT_OF_ORDERNESS_MS + 1)
        produce(sasl_kafka, registry_server, log, prefix + "events", "--heartbeat-at", heartbeat)

    common = [
        *job_args(sasl_kafka, secure_redis, registry_server, prefix, DB, tmp_path / "checkpoints"),
        *("--out-of-orderness-ms", str(OUT_OF_ORDERNESS_MS)),
    ]
    store = secure_redis.store("api", DB)
    topics = JobTopics(sasl_kafka.bootstrap, prefix, registry_server, sasl_kafka.client_config())
    half = replay(first)
    old = cluster.submit([*common, "--policy", str(old_policy), "--parallelism", "1"])
    try:
        cluster.until(old, "the job running", 180, lambda: cluster.running_since(old, 0))
        feed(first, half)
        assert not wait_until_equal(store, half, 240), "the first half was not folded"
        # Offsets are committed when a checkpoint completes: the savepoint holds them and the
        # state of the whole first half; a job that restored nothing would lose it for good.
        assert topics.committed_to_end(60), "offsets never committed"
        savepoint = _stop_with_savepoint(cluster, old, tmp_path / "savepoints")
    except BaseException:
        cluster.cancel(old)
        raise
    assert cluster.get(f"/jobs/{old}")["state"] == "FINISHED"

    whole = replay(events)
    new = cluster.submit(
        [*common, "--policy", str(new_policy), "--parallelism", "2", "--restore-from", savepoint]
    )
    try:
        cluster.until(new, "the changed job running", 180, lambda: cluster.running_since(new, 0))
        restored = cluster.checkpoints(new)["latest"]["restored"]
        assert restored["is_savepoint"] and _path(restored["external_path"]) == _path(savepoint)
        fold = next(v for v in cluster.get(f"/jobs/{new}")["vertices"] if "fold" in v["name"])
        assert fold["parallelism"] == 2
        feed(second, whole)
        mismatched = wait_until_equal(store, whole, 240)
        assert not mismatched, f"{len(mismatched)} keys differ after the upgrade: {mismatched[:3]}"
        actual = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
        assert set(actual) == set(whole)
        check_changes(topics, actual)
        # Versions carry on across the upgrade (a restore that lost the channel state would
        # start again at 1); the new channel came with the new policy.
        assert {"web", "stores", "b2b"} <= check_channels(topics, None)
    finally:
        cluster.cancel(new)
    # The job logged in with the Kafka and Redis passwords all along: neither is in a log.
    secrets = [sasl_kafka.password(), secure_redis.password_file("writer").read_text().strip()]
    logs = [
        *(ROOT / SECURED_FLINK_ENV["FLINK_HOME_DIR"] / "log").iterdir(),
        *(ROOT / SASL_KAFKA_ENV["KAFKA_HOME_DIR"] / "logs").iterdir(),
    ]
    assert logs
    for log in logs:
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in secrets), f"a password in {log}"


def _path(uri: str) -> Path:
    return Path(uri.removeprefix("file:"))


def _stop_with_savepoint(cluster: FlinkCluster, job_id: str, directory: Path) -> str:
    """Stop the job with a savepoint (REST, as ``flink stop --savepointPath`` does); its path."""
    request = urllib.request.Request(
        f"{cluster.rest}/jobs/{job_id}/stop",
        data=json.dumps({"targetDirectory": directory.as_uri(), "drain": False}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        trigger = json.load(response)["request-id"]

    def done() -> dict[str, Any] | None:
        answer: dict[str, Any] = cluster.get(f"/jobs/{job_id}/savepoints/{trigger}")
        return answer if answer["status"]["id"] == "COMPLETED" else None

    result = cluster.until(job_id, "the savepoint", 120, done)["operation"]
    assert "location" in result, f"the savepoint failed: {result.get('failure-cause')}"
    location: str = result["location"]
    assert _path(location).is_dir()
    wait_for("the job stopped", 60, lambda: cluster.get(f"/jobs/{job_id}")["state"] == "FINISHED")
    return location
