"""Benchmark: stream job throughput on real Kafka and Redis, next to a hand-written loop.

Prints figures; asserts nothing. In the same run, on the same topic contents:

- baseline: one process, confluent-kafka consume -> the same fold -> Redis
  compare-and-set writes and change records produced to Kafka, committing per batch;
- the PyFlink job (``atp job``, exactly-once checkpoints every 5 s) at each
  ``--parallelism`` asked for.

Each run starts on an idle topic; the clock starts when producing starts and stops when
the last sentinel event (one per partition, after the log) has reached Redis.

Usage: .venv/bin/python bench/stream_throughput.py [--events 200000] [--parallelism 1 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipelines.commands.produce import record_key_and_time
from pipelines.replay import Replayer
from pipelines.simulate import SimConfig, simulate
from pipelines.stream_config import ROOT, Topics
from state.serving import SnapshotStore
from transforms.snapshot import snapshot_of
from transforms.timeutil import format_iso, parse_iso
from transforms.validation import parse_event

BOOTSTRAP = "127.0.0.1:9092"
PARTITIONS = 4
SENTINEL_ITEM = "__bench__"
ATP = [sys.executable, "-m", "pipelines.cli"]


def infra(*args: str) -> None:
    subprocess.run([str(ROOT / "infra" / args[0]), *args[1:]], check=True, capture_output=True)


def create_topics(prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    names = list(vars(Topics.with_prefix(prefix)).values())
    for future in admin.create_topics(
        [NewTopic(n, PARTITIONS, 1, config={"retention.ms": "-1"}) for n in names]
    ).values():
        future.result(timeout=30)


def produce(lines: list[bytes], topic: str, last_time: int) -> None:
    """The log, then one sentinel event per partition."""
    producer = Producer(
        {"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 20}
    )
    at = 0
    for line in lines:
        key, at = record_key_and_time(line, at)
        while True:
            try:
                producer.produce(topic, line, key=key, timestamp=at)
                break
            except BufferError:
                producer.poll(0.2)
        producer.poll(0)
    producer.flush(120)  # the log first, then the sentinels
    for partition in range(PARTITIONS):
        sentinel = {
            "event_id": f"sentinel-{partition}",
            "event_type": "RECEIPT",
            "occurred_at": format_iso(last_time),
            "item_id": SENTINEL_ITEM,
            "location_id": f"P{partition}",
            "quantity": 1,
        }
        producer.produce(topic, orjson.dumps(sentinel), partition=partition, timestamp=last_time)
    producer.flush(60)


def wait_for_sentinels(store: SnapshotStore, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(store.locations(SENTINEL_ITEM)) == PARTITIONS:
            return True
        time.sleep(0.2)
    return False


def baseline(topic: str, store: SnapshotStore, changes_topic: str, total: int) -> float:
    """A single-process consume -> fold -> Redis + produce loop; returns seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"baseline-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 20})
    consumer.subscribe([topic])
    replayer = Replayer()
    seen = 0
    started: float | None = None
    while seen < total:
        batch = consumer.consume(num_messages=1000, timeout=1.0)
        if not batch:
            continue
        started = started or time.perf_counter()
        changed: dict[tuple[str, str], None] = {}
        for message in batch:
            seen += 1
            try:
                event = parse_event(orjson.loads(message.value() or b""))
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, list):
                continue
            replayer.fold(event)
            for location in (event.location_id, event.to_location_id):
                if location is not None:
                    changed[(event.item_id, location)] = None
        snapshots = []
        for item, location in changed:
            state = replayer.states.get((item, location))
            if state is not None:
                snap = snapshot_of(state, item, location, None).to_json()
                snapshots.append(snap)
                producer.produce(changes_topic, orjson.dumps(snap))
        store.write(snapshots)
        producer.poll(0)
        consumer.commit(asynchronous=True)
    producer.flush(30)
    consumer.close()
    assert started is not None
    return time.perf_counter() - started


def run_job(prefix: str, parallelism: int, lines: list[bytes], last: int, redis_url: str) -> float:
    store = SnapshotStore.from_url(redis_url)
    store.client.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "job.log"
        job = subprocess.Popen(
            [
                *ATP,
                "job",
                "--topic-prefix",
                prefix,
                "--group-id",
                prefix,
                "--transactional-id-prefix",
                prefix,
                "--redis-url",
                redis_url,
                "--parallelism",
                str(parallelism),
                "--checkpoint-dir",
                Path(tmp).as_uri(),
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(20)  # start-up is not part of the measurement
            started = time.perf_counter()
            produce(lines, prefix + "events", last)
            if not wait_for_sentinels(store, 1800):
                raise RuntimeError(f"the job did not finish; see {log}")
            return time.perf_counter() - started
        finally:
            job.terminate()
            job.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    infra("fetch-jars.sh")
    infra("kafka.sh", "start")
    infra("redis.sh", "start")
    lines = list(simulate(SimConfig(events=args.events, seed=5)))
    last = max(parse_iso(r["occurred_at"]) for r in map(_loads, lines) if r)
    redis_url = "redis://127.0.0.1:6379/13"
    store = SnapshotStore.from_url(redis_url)

    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    create_topics(prefix)
    store.client.flushdb()
    produce(lines, prefix + "events", last)
    seconds = baseline(prefix + "events", store, prefix + "atp-changes", len(lines) + PARTITIONS)
    base_rate = args.events / seconds
    print(f"events: {args.events:,} ({PARTITIONS} partitions)")
    print(f"baseline loop (1 process)   : {base_rate:>9,.0f} events/s  ({seconds:.1f}s)")

    for parallelism in args.parallelism:
        prefix = f"bench-{uuid.uuid4().hex[:6]}."
        create_topics(prefix)
        seconds = run_job(prefix, parallelism, lines, last, redis_url)
        rate = args.events / seconds
        print(
            f"stream job, parallelism {parallelism}   : {rate:>9,.0f} events/s  ({seconds:.1f}s)"
            f"  = {rate / base_rate:.2f}x baseline"
        )
    print("goals: >= 40,000 events/s and >= 0.5x the baseline")
    redis.Redis.from_url(redis_url).flushdb()


def _loads(line: bytes) -> dict[str, object] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(record, dict) and isinstance(record.get("occurred_at"), str):
        return record
    return None


if __name__ == "__main__":
    main()
