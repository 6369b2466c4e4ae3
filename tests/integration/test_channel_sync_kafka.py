"""``atp channel-sync`` on a real broker, schema registry and HTTP receiver: committed
changes only, signed pushes, the rate limit as the receiver sees it, coalescing,
retries, dead letters, and no change lost when the sync is killed mid-batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipelines.channel_sync.change import Change
from pipelines.wire import WireFormat
from state.schemas import CHANNEL_ATP_CHANGE
from tests.integration.topics import new_topics
from tests.integration.webhook_receiver import Received, Receiver

pytestmark = pytest.mark.integration

ATP = [sys.executable, "-m", "pipelines.cli"]
PARTITIONS = 3
SECRET = b"channel-sync-test-key"
SECRET_ENV = "ATP_TEST_CHANNEL_KEY"
AS_OF = 1_778_400_000_000  # 2026-05-10T08:00:00Z
PACED_RATE, PACED_BURST = 10.0, 3


def _change(channel: str, item: str, version: int) -> Change:
    return Change(
        channel,
        item,
        100 + version,
        None if version == 1 else 99 + version,
        version,
        AS_OF + version,
        "DC1",
    )


def _topic(servers: str, name: str) -> str:
    topic = f"{name}-{uuid.uuid4().hex[:8]}"
    new_topics(servers, [topic], PARTITIONS)
    return topic


def _record(change: Change) -> dict[str, Any]:
    return {
        "channel": change.channel,
        "item_id": change.item_id,
        "available": change.available,
        "previous_available": change.previous_available,
        "version": change.version,
        "as_of": change.as_of,
        "cause_location_id": change.cause_location_id,
    }


def _produce(
    servers: str,
    registry: str,
    topic: str,
    transactions: Sequence[tuple[bool, Sequence[Change | bytes]]],
) -> None:
    """Each transaction's records keyed ``channel|item`` (raw bytes keyed ``junk|n``),
    committed or aborted as listed, in order."""
    wire = WireFormat(registry)
    producer = Producer(
        {"bootstrap.servers": servers, "transactional.id": f"test-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)
    for commit, records in transactions:
        producer.begin_transaction()
        for n, record in enumerate(records):
            if isinstance(record, Change):
                key = f"{record.channel}|{record.item_id}".encode()
                value = wire.encode(CHANNEL_ATP_CHANGE, topic, _record(record))
            else:
                key, value = f"junk|{n}".encode(), record
            producer.produce(topic, value=value, key=key)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)  # on the log, then aborted: read_committed must skip them
            producer.abort_transaction(30)


def _config(path: Path, channels: dict[str, Any], ignore: tuple[str, ...] = ()) -> Path:
    path.write_bytes(orjson.dumps({"channels": channels, "ignore": list(ignore)}))
    return path


def _command(
    servers: str, registry: str, topic: str, config: Path, group: str, *extra: str
) -> list[str]:
    return [
        *ATP,
        "channel-sync",
        "--config",
        str(config),
        "--topic",
        topic,
        "--dead-letter-topic",
        f"{topic}-dlq",
        "--group-id",
        group,
        "--commit-interval",
        "0.2",
        "--bootstrap-servers",
        servers,
        "--registry-url",
        registry,
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, SECRET_ENV: SECRET.decode()}


def _sync_to_end(command: list[str]) -> str:
    result = subprocess.run(
        [*command, "--until-end"], capture_output=True, env=_env(), check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stderr.decode()


def _read_all(servers: str, topic: str) -> list[dict[str, Any]]:
    """Every record of a JSON topic, up to its current end."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"check-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
        for p in range(PARTITIONS)
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    records: list[dict[str, Any]] = []
    positions = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + 30
    while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        positions[partition] = offset + 1
        records.append({**orjson.loads(message.value() or b""), "_key": message.key()})
    consumer.close()
    return records


def _webhook(receiver: Receiver, path: str, **settings: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": receiver.url(path), "secret_env": SECRET_ENV, **settings}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver(SECRET)
    yield server
    server.close()


@dataclass
class Run:
    topic: str
    log: str
    again: str  # the log of a second run of the same group
    dead_letters: list[dict[str, Any]]
    files: Path
    receiver: Receiver


PACED = [_change("paced", f"P{i:02d}", 1) for i in range(30)]
COALESCED = [_change("coalesced", "C1", v) for v in range(1, 6)] + [_change("coalesced", "C2", 1)]
FLAKY = [_change("flaky", f"F{i}", 1) for i in range(3)]
EXHAUSTED = [_change("exhausted", "E1", 1)]
REFUSED = [_change("refusing", "R1", 1), _change("refusing", "R2", 4)]
THROTTLED = [_change("throttled", "T1", 1)]
FILED = [_change("files", "X1", 1), _change("files", "X2", 1), _change("files", "X1", 2)]
IGNORED = [_change("pos", "Z1", 1)]
UNKNOWN = [_change("unknown", "U1", 1)]
ABORTED = [_change("paced", f"ABORTED-{i}", 1) for i in range(3)] + [_change("coalesced", "C1", 99)]
UNDECODABLE = [b"not avro at all", b"\x00\x00\x0f\x42\x3f\x02"]  # the second: unknown schema id


@pytest.fixture(scope="module")
def run(
    kafka_server: str,
    registry_server: str,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    tmp = tmp_path_factory.mktemp("channel-sync")
    topic = _topic(kafka_server, "channel-sync")
    fast = {"rate": 100, "burst": 100, "coalesce_ms": 0}
    config = _config(
        tmp / "channels.json",
        {
            # One request in flight: see the bound in the rate-limit test.
            "paced": _webhook(
                receiver,
                "/ok/paced",
                rate=PACED_RATE,
                burst=PACED_BURST,
                coalesce_ms=0,
                concurrency=1,
            ),
            "coalesced": _webhook(receiver, "/ok/coalesced", coalesce_ms=2_000),
            "flaky": _webhook(receiver, "/fail-twice", backoff_ms=50, max_backoff_ms=200, **fast),
            "exhausted": _webhook(receiver, "/always-500", backoff_ms=20, max_attempts=3, **fast),
            "refusing": _webhook(receiver, "/refuse", **fast),
            "throttled": _webhook(receiver, "/throttle", **fast),
            "files": {"type": "file", "path": "pushed.jsonl", **fast},
        },
        ignore=("pos",),
    )
    _produce(
        kafka_server,
        registry_server,
        topic,
        [
            (True, [*PACED[:15], *COALESCED[:3], *FLAKY, *FILED[:2], *IGNORED]),
            (False, list(ABORTED)),
            (True, [*PACED[15:], *COALESCED[3:], *EXHAUSTED, *REFUSED, *THROTTLED, FILED[2]]),
            (True, [*UNKNOWN, *UNDECODABLE]),
        ],
    )
    command = _command(kafka_server, registry_server, topic, config, f"{topic}-sync")
    log = _sync_to_end(command)
    again = _sync_to_end(command)
    return Run(
        topic, log, again, _read_all(kafka_server, f"{topic}-dlq"), tmp / "pushed.jsonl", receiver
    )


def test_pushes_are_signed_and_keyed_by_channel_item_version(run: Run) -> None:
    received = run.receiver.received()
    assert received and all(r.signed for r in received)
    for request in received:
        body = request.body
        assert request.key == body["idempotency_key"]
        assert request.key == f"{body['channel']}:{body['item_id']}:{body['version']}"
        assert request.timestamp.isdigit()
        assert body["as_of"].startswith("2026-05-10T08:00:00.")
    # Only committed records: nothing of the aborted transaction, nothing ignored.
    items = {r.body["item_id"] for r in received}
    assert not any(item.startswith("ABORTED") for item in items)
    assert {r.body["version"] for r in received if r.body["item_id"] == "C1"} == {5}
    assert not {r.channel for r in received} & {"pos", "unknown"}


def test_the_receiver_never_sees_more_than_rate_times_time_plus_burst(run: Run) -> None:
    paced = sorted(run.receiver.received("paced"), key=lambda r: r.at)
    assert sorted(r.body["item_id"] for r in paced) == [c.item_id for c in PACED]
    times = [r.at for r in paced]
    # Over every window of arrivals, at most rate x its length + burst + 1: with one
    # request in flight, requests i+1..j were all sent after request i arrived and before
    # request j arrived, and the bucket allows rate x that time + burst of them.
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= PACED_RATE * (times[j] - first) + PACED_BURST + 1, (i, j)


def test_changes_to_one_item_within_the_window_go_as_one_push_of_the_newest(run: Run) -> None:
    pushes = {r.body["item_id"]: r for r in run.receiver.received("coalesced")}
    assert len(run.receiver.received("coalesced")) == 2
    assert pushes["C1"].key == "coalesced:C1:5" and pushes["C1"].body["available"] == 105
    assert pushes["C2"].key == "coalesced:C2:1"


def test_failed_pushes_are_retried_with_the_same_key_and_body(run: Run) -> None:
    by_key: dict[str, list[Received]] = defaultdict(list)
    for request in run.receiver.received("flaky"):
        by_key[request.key].append(request)
    assert sorted(by_key) == sorted(c.idempotency_key for c in FLAKY)
    for attempts in by_key.values():
        assert [(r.attempt, r.status) for r in attempts] == [(1, 500), (2, 500), (3, 200)]
        assert len({orjson.dumps(r.body) for r in attempts}) == 1
        assert all(b.at > a.at for a, b in pairwise(attempts))
    # A 429 holds the channel for Retry-After (1 s) at the receiver's clock.
    first, second = run.receiver.received("throttled")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.99


def test_refused_and_retried_out_pushes_and_bad_records_are_dead_letters(run: Run) -> None:
    assert len(run.dead_letters) == 6
    letters = {(d["reason"], d["idempotency_key"]): d for d in run.dead_letters}
    for change in REFUSED:
        letter = letters["HTTP_STATUS", change.idempotency_key]
        assert (letter["status"], letter["attempts"], letter["version"]) == (400, 1, change.version)
        assert letter["change"] == orjson.loads(change.body())
        assert letter["_key"] == f"refusing|{change.item_id}".encode()
        (source,) = letter["sources"]
        assert source["topic"] == run.topic and source["offset"] >= 0
    assert len(run.receiver.received("refusing")) == 2  # a 400 is never retried
    exhausted = letters["RETRIES_EXHAUSTED", "exhausted:E1:1"]
    assert (exhausted["status"], exhausted["attempts"]) == (500, 3)
    assert len(run.receiver.received("exhausted")) == 3
    assert letters["UNCONFIGURED_CHANNEL", "unknown:U1:1"]["attempts"] == 0
    undecodable = sorted(d["raw_base64"] for d in run.dead_letters if d["reason"] == "UNDECODABLE")
    assert len(undecodable) == 2


def test_file_sink_and_summary_and_a_second_run_finds_everything_committed(run: Run) -> None:
    lines = [orjson.loads(x) for x in run.files.read_bytes().splitlines()]
    newest = {x["item_id"]: x["version"] for x in lines}
    assert newest == {"X1": 2, "X2": 1}
    records = len(PACED + COALESCED + FLAKY + EXHAUSTED + REFUSED + THROTTLED + FILED)
    records += len(IGNORED + UNKNOWN + UNDECODABLE)
    assert f"{records} records," in run.log, run.log
    assert "6 dead lettered, 1 ignored" in run.log, run.log
    assert "0 records," in run.again, run.again  # every offset was committed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_sync_killed_mid_batch_loses_nothing_and_repeats_only_same_keys(
    kafka_server: str, registry_server: str, receiver: Receiver, tmp_path: Path
) -> None:
    topic = _topic(kafka_server, "channel-sync-crash")
    first = [_change("crash", f"K{i:03d}", 1) for i in range(150)]
    second = [_change("crash", f"K{i:03d}", 2) for i in range(0, 150, 5)]
    _produce(kafka_server, registry_server, topic, [(True, first), (True, second)])
    config = _config(
        tmp_path / "channels.json",
        {"crash": _webhook(receiver, "/ok/crash", rate=40, burst=5, coalesce_ms=0)},
    )
    port = _free_port()
    # The restart must not wait 45 s (the default) for the broker to drop the killed member.
    command = _command(
        kafka_server,
        registry_server,
        topic,
        config,
        f"{topic}-sync",
        "-X",
        "session.timeout.ms=6000",
    )
    process = subprocess.Popen(
        [*command, "--metrics-port", str(port)], env=_env(), stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(receiver.received("crash")) < 60 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
        assert _metric(port, 'atp_channel_sync_pushed_total{channel="crash"}') > 0
        process.kill()  # SIGKILL: no drain, no last commit
    finally:
        process.kill()
        process.wait(30)
        if process.stderr is not None:
            process.stderr.close()
    before = len(receiver.received("crash"))
    assert 60 <= before < len(first) + len(second)

    log = _sync_to_end(command)
    received = receiver.received("crash")
    # Resumed from committed offsets, not from the start.
    records = int(log.split("channel-sync: ", 1)[1].split(" records")[0])
    assert 0 < records < len(first) + len(second), log
    # Every item's newest version arrived; every earlier one arrived or was folded into it.
    newest = {c.item_id: c.version for c in first + second}
    pushed: dict[str, set[int]] = defaultdict(set)
    for request in received:
        assert request.signed and request.status == 200
        pushed[request.body["item_id"]].add(request.body["version"])
    assert {item: max(versions) for item, versions in pushed.items()} == newest
    # A repeated push is the same change: same key, same body.
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for request in received:
        bodies[request.key].add(orjson.dumps(request.body))
    assert all(len(b) == 1 for b in bodies.values())
