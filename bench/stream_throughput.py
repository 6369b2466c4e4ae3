"""Benchmark: stream job throughput and freshness on real Kafka, Redis and a schema registry.

Prints figures; asserts nothing. In the same run, on the same topic contents (events as
Confluent-framed Avro, as ``atp produce`` writes them):

- baseline: one process, confluent-kafka consume -> decode -> the same fold -> Redis
  compare-and-set writes and Avro change records produced to Kafka, committing per batch
  (no transactions: it is the cost of the work, not of the guarantees);
- the PyFlink job (``atp job``, exactly-once checkpoints every 5 s) at each
  ``--parallelism`` asked for: the clock starts when producing starts and stops when the
  last sentinel event (one per partition, after the log) has reached Redis;
- with ``--cluster-taskmanagers N``, the job on a standalone cluster of N TaskManagers with
  one slot each (one embedded interpreter per slot), at parallelism 1 to N: how it scales
  by processes, where slots in one JVM share one interpreter;
- the PyFlink floor (``bench/pyflink_floor.py``): the job's shape, source, a Python
  function, key_by, a keyed Python function with a ValueState, with no ATP work in it;
  what PyFlink itself allows here;
- freshness at half the sustained rate of the first job run (or at ``--freshness-rate``):
  the log is produced at that pace with a probe event every 20 ms on keys of their own;
  the time from producing a probe to its revision being readable in Redis, p50, p99 and
  max, over all probes and over those after the first 10 s (the interpreter's first calls
  and the first checkpoint are start-up, not the steady path).

Usage: .venv/bin/python bench/stream_throughput.py [--events 100000] [--parallelism 1 2]
       .venv/bin/python bench/stream_throughput.py --parallelism --freshness-rate 500
       .venv/bin/python bench/stream_throughput.py --parallelism --freshness-seconds 0 \
           --cluster-taskmanagers 2
       .venv/bin/python bench/stream_throughput.py --parallelism 1 --freshness-seconds 0 \
           --bundle-sizes 1 100 10000
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from confluent_kafka import Consumer, Producer

from pipelines.event_codec import EventCodec
from pipelines.event_publisher import encoded_value, record_key_and_time
from pipelines.replay import Replayer
from pipelines.simulate import SimConfig, simulate
from pipelines.stream_config import REGISTRY_URL, ROOT, Topics
from pipelines.topic_admin import RETAIN_FOREVER, TopicSpec, create_topics
from pipelines.wire import WireFormat
from state.schemas import ATP_CHANGE
from state.serving import SnapshotStore, snapshot_key
from transforms.events import Event
from transforms.snapshot import QUANTITY_FIELDS, snapshot_of

BOOTSTRAP = "127.0.0.1:9092"
PARTITIONS = 4
SENTINEL_ITEM = "__bench__"
PROBE_ITEM = "__fresh__"
ATP = [sys.executable, "-m", "pipelines.cli"]
REDIS_URL = "redis://127.0.0.1:6379/13"

Record = tuple[bytes | None, bytes, int]  # key, value, timestamp


def infra(*args: str) -> None:
    subprocess.run([str(ROOT / "infra" / args[0]), *args[1:]], check=True, capture_output=True)


def create_job_topics(prefix: str) -> None:
    """The job's topics, all kept forever: records carry their simulated event time."""
    names = vars(Topics.with_prefix(prefix)).values()
    create_topics(
        {"bootstrap.servers": BOOTSTRAP},
        [TopicSpec(name, PARTITIONS, RETAIN_FOREVER) for name in names],
    )


def encode_log(lines: list[bytes], topic: str) -> list[Record]:
    """The log as ``atp produce`` writes it: Avro values, item|location keys, event times."""
    codec = EventCodec(WireFormat(REGISTRY_URL), topic)
    records: list[Record] = []
    at = 0
    for line in lines:
        key, at = record_key_and_time(line, at)
        records.append((key, encoded_value(line, codec), at))
    return records


def probe_event(codec: EventCodec, partition: int, n: int, at: int) -> bytes:
    event = Event(
        f"probe-{partition}-{n}", "RECEIPT", PROBE_ITEM, f"P{partition}", 1, at,
        None, None, None, None, None, None, None, None,
    )  # fmt: skip
    return codec.encode(event)


def sentinel_event(codec: EventCodec, partition: int, at: int) -> bytes:
    event = Event(
        f"sentinel-{partition}", "RECEIPT", SENTINEL_ITEM, f"P{partition}", 1, at,
        None, None, None, None, None, None, None, None,
    )  # fmt: skip
    return codec.encode(event)


def new_producer() -> Producer:
    return Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 5})


def send(
    producer: Producer, topic: str, value: bytes, key: bytes | None, at: int, partition: int = -1
) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key, timestamp=at, partition=partition)
            return
        except BufferError:
            producer.poll(0.1)


def produce(records: list[Record], topic: str) -> None:
    """The log, then one sentinel event per partition."""
    producer = new_producer()
    for key, value, at in records:
        send(producer, topic, value, key, at)
        producer.poll(0)
    producer.flush(120)  # the log first, then the sentinels
    codec = EventCodec(WireFormat(REGISTRY_URL), topic)
    last = records[-1][2]
    for partition in range(PARTITIONS):
        send(
            producer, topic, sentinel_event(codec, partition, last), None, last, partition=partition
        )
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
    wire = WireFormat(REGISTRY_URL)
    codec = EventCodec(wire, topic)
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
            event, _ = codec.decode(message.value() or b"")
            if not isinstance(event, Event):
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
                change = {
                    "item_id": item,
                    "location_id": location,
                    "version": snap["version"],
                    "revision": snap["revision"],
                    "cause": "EVENT",
                    "changed_at": 0,
                    **{f: snap[f] for f in QUANTITY_FIELDS},
                }
                value = wire.encode(ATP_CHANGE, changes_topic, change)
                producer.produce(changes_topic, value, key=f"{item}|{location}".encode())
        store.write(snapshots)
        producer.poll(0)
        consumer.commit(asynchronous=True)
    producer.flush(30)
    consumer.close()
    assert started is not None
    return time.perf_counter() - started


@contextmanager
def running_job(
    prefix: str, parallelism: int, extra: tuple[str, ...] = ()
) -> Iterator[SnapshotStore]:
    store = SnapshotStore.from_url(REDIS_URL)
    store.client.flushdb()
    # The job's JVM may still be writing a checkpoint as it stops.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
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
                REDIS_URL,
                "--parallelism",
                str(parallelism),
                "--checkpoint-dir",
                Path(tmp).as_uri(),
                *extra,
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped as a group: the command and its JVM
        )
        try:
            time.sleep(20)  # start-up is not part of the measurement
            if job.poll() is not None:
                raise RuntimeError(f"the job stopped: {log.read_text()[-2000:]}")
            yield store
        finally:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(60)


# A cluster of its own: one slot per TaskManager, so each subtask has an interpreter.
CLUSTER_ENV = {
    "FLINK_HOME_DIR": "var/flink-bench",
    "FLINK_SETTINGS": "taskmanager.numberOfTaskSlots=1 taskmanager.memory.process.size=1536m",
}
CLUSTER_REST = "http://127.0.0.1:8081"


def cluster(*args: str) -> str:
    result = subprocess.run(
        [str(ROOT / "infra" / "flink.sh"), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **CLUSTER_ENV},
    )
    return result.stdout


def cluster_throughput(records: list[Record], parallelism: int) -> float:
    """Events/s of the job submitted with ``flink run`` to the benchmark's cluster."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    create_job_topics(prefix)
    store = SnapshotStore.from_url(REDIS_URL)
    store.client.flushdb()
    exports = dict(w.split("=", 1) for w in shlex.split(cluster("env")) if w != "export")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        submitted = subprocess.run(
            [f"{exports['FLINK_HOME']}/bin/flink", "run", "--detached", "--python",
             str(ROOT / "pipelines" / "stream_job.py"), "--topic-prefix", prefix,
             "--group-id", prefix, "--transactional-id-prefix", prefix, "--redis-url", REDIS_URL,
             "--parallelism", str(parallelism), "--checkpoint-dir", Path(tmp).as_uri()],
            capture_output=True, text=True, check=False, cwd=ROOT, env={**os.environ, **exports},
        )  # fmt: skip
        found = re.search(r"JobID ([0-9a-f]{32})", submitted.stdout)
        if found is None:
            raise RuntimeError(f"flink run failed: {submitted.stdout}{submitted.stderr}")
        try:
            time.sleep(20)  # start-up is not part of the measurement
            started = time.perf_counter()
            produce(records, prefix + "events")
            if not wait_for_sentinels(store, 1800):
                raise RuntimeError("the job did not finish")
            return len(records) / (time.perf_counter() - started)
        finally:
            cancel = urllib.request.Request(
                f"{CLUSTER_REST}/jobs/{found.group(1)}?mode=cancel", method="PATCH"
            )
            urllib.request.urlopen(cancel, timeout=10).close()
            time.sleep(5)  # the slots free up


def throughput(records: list[Record], parallelism: int, extra: tuple[str, ...] = ()) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    create_job_topics(prefix)
    with running_job(prefix, parallelism, extra) as store:
        started = time.perf_counter()
        produce(records, prefix + "events")
        if not wait_for_sentinels(store, 1800):
            raise RuntimeError("the job did not finish")
        return len(records) / (time.perf_counter() - started)


WARM_UP_SECONDS = 10


def freshness(records: list[Record], rate: float) -> list[tuple[float, float]]:
    """Produce at ``rate`` events/s with a probe every 20 ms; for each probe, seconds from
    the start of producing to sending it, and from sending it to its revision being
    readable in Redis."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    create_job_topics(prefix)
    topic = prefix + "events"
    codec = EventCodec(WireFormat(REGISTRY_URL), topic)
    sent: dict[tuple[int, int], float] = {}  # (partition, revision) -> produced at
    seen: dict[tuple[int, int], float] = {}
    done = threading.Event()

    def poll(client: redis.Redis) -> None:
        last = [0] * PARTITIONS
        keys = [snapshot_key(PROBE_ITEM, f"P{p}") for p in range(PARTITIONS)]
        while not done.is_set():
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "revision")
            now = time.perf_counter()
            for p, value in enumerate(pipe.execute()):
                revision = int(value or 0)
                for r in range(last[p] + 1, revision + 1):
                    seen[(p, r)] = now
                last[p] = max(last[p], revision)
            time.sleep(0.002)

    with running_job(prefix, 1) as store:
        poller = threading.Thread(target=poll, args=(store.client,), daemon=True)
        poller.start()
        producer = new_producer()
        started = time.perf_counter()
        next_probe, probes = started, [0] * PARTITIONS
        for i, (key, value, at) in enumerate(records):
            while time.perf_counter() < started + i / rate:
                producer.poll(0.001)
            send(producer, topic, value, key, at)
            now = time.perf_counter()
            if now >= next_probe:
                partition = sum(probes) % PARTITIONS
                probes[partition] += 1  # the probe key's revision once it is applied
                probe = probe_event(codec, partition, probes[partition], at)
                send(producer, topic, probe, None, at, partition=partition)
                producer.poll(0)
                sent[(partition, probes[partition])] = time.perf_counter()
                next_probe = now + 0.02
            producer.poll(0)
        producer.flush(60)
        deadline = time.monotonic() + 60
        while len(seen.keys() & sent.keys()) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        poller.join()
    lost = len(sent.keys() - seen.keys())
    if lost:
        print(f"freshness: {lost} of {len(sent)} probes never reached Redis within 60 s")
    return [(sent[k] - started, seen[k] - sent[k]) for k in sent if k in seen]


def print_freshness(label: str, latencies: list[float]) -> None:
    if not latencies:
        print(f"freshness, {label}: no probes")
        return
    latencies = sorted(latencies)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"freshness, {label}: p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms, "
        f"max {latencies[-1] * 1000:,.0f} ms ({len(latencies)} probes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--parallelism",
        type=int,
        nargs="*",
        default=[1, 2],
        help="job runs to measure throughput at; none: freshness only (needs --freshness-rate)",
    )
    parser.add_argument(
        "--cluster-taskmanagers",
        type=int,
        default=0,
        help="also run the job on a standalone cluster of N one-slot TaskManagers, at "
        "parallelism 1 to N (default 0: not)",
    )
    parser.add_argument(
        "--bundle-sizes",
        type=int,
        nargs="*",
        default=[],
        help="also run the job at parallelism 1 with each python.fn-execution.bundle.size",
    )
    parser.add_argument("--freshness-seconds", type=float, default=30)
    parser.add_argument(
        "--freshness-rate", type=float, help="events/s (default: half the first run's rate)"
    )
    args = parser.parse_args()
    if not args.parallelism and args.freshness_rate is None and args.freshness_seconds > 0:
        parser.error("with no --parallelism, give --freshness-rate (or --freshness-seconds 0)")

    infra("fetch-jars.sh")
    for service in ("kafka.sh", "redis.sh", "registry.sh"):
        infra(service, "start")
    lines = list(simulate(SimConfig(events=args.events, seed=5)))
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    create_job_topics(prefix)
    records = encode_log(lines, prefix + "events")
    store = SnapshotStore.from_url(REDIS_URL)
    store.client.flushdb()
    produce(records, prefix + "events")
    seconds = baseline(prefix + "events", store, prefix + "atp-changes", len(records) + PARTITIONS)
    base_rate = args.events / seconds
    print(f"events: {args.events:,} ({PARTITIONS} partitions, Avro)")
    print(f"baseline loop (1 process)   : {base_rate:>9,.0f} events/s  ({seconds:.1f}s)")

    rates = {}
    for parallelism in args.parallelism:
        rates[parallelism] = rate = throughput(records, parallelism)
        print(
            f"stream job, parallelism {parallelism}   : {rate:>9,.0f} events/s"
            f"  = {rate / base_rate:.2f}x baseline"
        )
    for size in args.bundle_sizes:
        setting = ("--flink-setting", f"python.fn-execution.bundle.size={size}")
        rate = throughput(records, 1, setting)
        print(
            f"parallelism 1, bundle size {size:>7,}: {rate:>9,.0f} events/s"
            f"  = {rate / base_rate:.2f}x baseline"
        )
    if args.cluster_taskmanagers > 0:
        cluster("start")
        try:
            for _ in range(args.cluster_taskmanagers - 1):
                cluster("taskmanager", "start")
            for parallelism in range(1, args.cluster_taskmanagers + 1):
                rate = cluster_throughput(records, parallelism)
                print(
                    f"cluster, {parallelism} of {args.cluster_taskmanagers} one-slot TaskManagers:"
                    f" {rate:>9,.0f} events/s  = {rate / base_rate:.2f}x baseline"
                )
        finally:
            cluster("stop", "--purge")
    if rates:
        floor = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "pyflink_floor.py"), prefix + "events"],
            capture_output=True,
            text=True,
            check=True,
        )
        floor_count, floor_seconds = next(
            line.split()[1:] for line in floor.stdout.splitlines() if line.startswith("FLOOR")
        )
        floor_rate = int(floor_count) / float(floor_seconds)
        print(
            f"PyFlink floor, no ATP work  : {floor_rate:>9,.0f} events/s"
            f"  = {floor_rate / base_rate:.2f}x baseline; the job reaches "
            f"{rates[args.parallelism[0]] / floor_rate:.2f}x the floor"
        )
    if args.freshness_seconds > 0:
        pace = args.freshness_rate or rates[args.parallelism[0]] / 2
        seconds = args.freshness_seconds
        print(f"freshness at {pace:,.0f} events/s, parallelism 1, for {seconds:.0f} s:")
        probes = freshness(records[: int(pace * seconds)], pace)
        print_freshness("all probes", [latency for _, latency in probes])
        print_freshness(
            f"after the first {WARM_UP_SECONDS} s",
            [latency for at, latency in probes if at >= WARM_UP_SECONDS],
        )
    print("goals: >= 40,000 events/s, >= 0.5x the baseline, freshness p99 <= 1 s")
    redis.Redis.from_url(REDIS_URL).flushdb()


if __name__ == "__main__":
    main()
