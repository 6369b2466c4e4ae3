"""``atp status`` on a real broker and Redis: lag and events/s from a group's committed
offsets, top items from committed ATP change records, store counts, and the view of them.

No Flink job here: the test commits offsets and writes change records as the job would.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from rich.console import Console

from pipelines.cli import build_parser, main
from pipelines.commands.status import Collector
from pipelines.job_status import ChangeDecoder, ChangeFeed, ChangeWindow, ItemActivity
from pipelines.status_view import render
from pipelines.stream_config import Topics
from pipelines.wire import WireFormat
from state.schemas import ATP_CHANGE
from state.serving import SnapshotStore
from tests.integration.topics import new_topics
from transforms.snapshot import QUANTITY_FIELDS

pytestmark = pytest.mark.integration

EVENTS_PER_PARTITION = (10, 20, 30, 40)
# partition -> offset the "job" has committed; partition 2 has committed nothing.
COMMITTED = {0: 10, 1: 15, 3: 40}


@pytest.fixture
def topics(kafka_server: str) -> Iterator[Topics]:
    topics = Topics.with_prefix(f"status-{uuid.uuid4().hex[:8]}.")
    names = [topics.events, topics.atp_changes]
    new_topics(kafka_server, names)
    yield topics
    admin = AdminClient({"bootstrap.servers": kafka_server})
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


def _produce_events(servers: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": servers})
    for partition, count in enumerate(EVENTS_PER_PARTITION):
        for i in range(count):
            producer.produce(topic, value=f"event {i}".encode(), partition=partition)
    assert producer.flush(30) == 0


def _commit(servers: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group})
    consumer.commit(
        offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
    )
    consumer.close()


def _change(item: str, location: str, available: int, previous: int | None) -> dict[str, Any]:
    """An ``AtpChange`` record as the job writes it."""
    return {
        "item_id": item,
        "location_id": location,
        "version": 1,
        "revision": 1,
        "cause": "EVENT",
        "event_id": "WMS-0000000001",
        "event_type": "CYCLE_COUNT",
        "changed_at": 1_777_593_884_000,
        **dict.fromkeys(QUANTITY_FIELDS, 0),
        "available": available,
        "previous_available": previous,
        "correlation_id": None,
    }


def _produce_changes(servers: str, topic: str, registry_url: str) -> None:
    """Committed changes of SKU-A (5, two locations), SKU-B (3), SKU-C (1) and one
    unreadable record; an aborted transaction of SKU-Z, which read_committed never sees."""
    wire = WireFormat(registry_url)

    def encode(item: str, location: str, available: int, previous: int | None) -> bytes:
        return wire.encode(ATP_CHANGE, topic, _change(item, location, available, previous))

    producer = Producer({"bootstrap.servers": servers, "transactional.id": f"t-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, value=encode("SKU-Z", "DC1", i, i + 1), key=b"SKU-Z|DC1")
    producer.abort_transaction(30)
    producer.begin_transaction()
    changes = [
        ("SKU-A", "DC1", 10, None),
        ("SKU-A", "DC1", 8, 10),
        ("SKU-A", "DC2", 5, None),
        ("SKU-A", "DC1", 6, 8),
        ("SKU-A", "DC2", 1, 5),
        ("SKU-B", "DC1", 4, 3),
        ("SKU-B", "DC1", 5, 4),
        ("SKU-B", "DC1", 9, 5),
        ("SKU-C", "ST001", 2, 7),
    ]
    for item, location, available, previous in changes:
        key = f"{item}|{location}".encode()
        producer.produce(topic, value=encode(item, location, available, previous), key=key)
    producer.produce(topic, value=b"not a change record", key=b"SKU-A|DC1")
    producer.commit_transaction(30)


def _write_store(redis_url: str) -> None:
    keys = [("SKU-A", "DC1"), ("SKU-A", "DC2"), ("SKU-B", "DC1"), ("SKU-C", "ST001")]
    SnapshotStore.from_url(redis_url).write(
        {"item_id": item, "location_id": location, "revision": 1} for item, location in keys
    )


def _args(topics: Topics, group: str, redis_url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "status",
        "--topic",
        topics.events,
        "--changes-topic",
        topics.atp_changes,
        "--group-id",
        group,
        "--redis-url",
        redis_url,
        "--checkpoint-dir",
        tmp_path.as_uri(),
        "--rest-url",
        "http://127.0.0.1:9",  # nothing listens: not a running job's
        *extra,
    ]


def test_status_figures_and_view(
    topics: Topics,
    kafka_server: str,
    redis_server: str,
    registry_server: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    group = f"{topics.events}-job"
    _produce_events(kafka_server, topics.events)
    _commit(kafka_server, group, topics.events, COMMITTED)
    _produce_changes(kafka_server, topics.atp_changes, registry_server)
    _write_store(redis_server)
    (tmp_path / "0123abcd" / "chk-7").mkdir(parents=True)  # no REST API answers

    args = build_parser().parse_args(_args(topics, group, redis_server, tmp_path))
    feed = ChangeFeed(
        {"bootstrap.servers": kafka_server},
        topics.atp_changes,
        ChangeDecoder(registry_server),
        ChangeWindow(window_s=300),
        start_offset=OFFSET_BEGINNING,
    )
    clock = iter([100.0, 110.0])
    collector = Collector(args, feed, clock=lambda: next(clock))
    try:
        first = collector.collect()
        assert [p.lag for p in first.lag.partitions] == [0, 5, 30, 0]
        assert (first.lag.total, first.lag.consumed, first.lag.produced) == (35, 65, 100)
        assert first.events_per_s is None  # one sample: no rate yet

        # The job commits 30 more events; 10 s later by the collector's clock: 3 events/s.
        _commit(kafka_server, group, topics.events, {2: 30})
        deadline = time.monotonic() + 60
        while feed.received + feed.undecodable < 10 and time.monotonic() < deadline:
            feed.poll_for(0.5)
        feed.poll_for(2)  # anything beyond the committed ten would show up now
        status = collector.collect()
    finally:
        collector.close()

    assert (status.lag.total, status.lag.consumed) == (5, 95)
    assert status.events_per_s == 3.0
    assert (feed.received, feed.undecodable) == (9, 1)
    assert status.top == [
        ItemActivity("SKU-A", 5, 2, 7),  # 6 at DC1 + 1 at DC2, from nothing
        ItemActivity("SKU-B", 3, 1, 6),
        ItemActivity("SKU-C", 1, 1, -5),
    ]
    assert (status.items, status.keys) == (3, 4)
    assert status.job is not None and status.job.state == "unreachable"
    assert status.checkpoint is not None and status.checkpoint.id == 7

    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render(status))
    text = console.export_text()
    lines = {line.strip("│ ").split("  ")[0]: line for line in text.splitlines()}
    assert "5  (p0 0  p1 5  p2 0  p3 0)" in lines["lag"]
    assert "95 of 100" in lines["consumed"]
    assert "3" in lines["events/s"].split()
    assert "#7" in lines["checkpoint"]
    assert "job: unreachable" in text
    assert "3 items, 4 keys" in lines["store"]
    assert "1 change records (last: " in lines["undecodable"]
    assert "last 300s: 9 changes" in text
    rows = [line.strip("│ ").split() for line in text.splitlines() if "SKU-" in line]
    assert rows == [
        ["SKU-A", "5", "2", "+7"],
        ["SKU-B", "3", "1", "+6"],
        ["SKU-C", "1", "1", "-5"],
    ]
    assert "SKU-Z" not in text


def test_status_once_json_and_watch_until_caught_up(
    topics: Topics,
    kafka_server: str,
    redis_server: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    group = f"{topics.events}-job"
    _produce_events(kafka_server, topics.events)
    _commit(kafka_server, group, topics.events, COMMITTED)
    _write_store(redis_server)
    args = _args(topics, group, redis_server, tmp_path)

    assert main([*args, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["lag"] == {"total": 35, "partitions": {"0": 0, "1": 5, "2": 30, "3": 0}}
    assert (figures["items"], figures["keys"], figures["checkpoint"]) == (3, 4, None)

    assert main([*args, "--until-caught-up"]) == 2  # a usage error: needs --watch

    # Everything committed: --until-caught-up ends once the lag has stayed 0.
    _commit(kafka_server, group, topics.events, {1: 20, 2: 30})
    watch = ["--watch", "--until-caught-up", "--interval", "0.2", "--settle", "1"]
    assert main([*args, *watch, "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    assert f"caught up: 100 of 100 events of {topics.events} consumed" in out
    assert "store 3 items, 4 keys" in out
