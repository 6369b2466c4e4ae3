"""The figures ``atp status`` shows about a running job, read from the services it uses.

- consumer lag and events/s: the job's committed offsets on the events topic against
  the log end (the Kafka source commits when a checkpoint completes);
- the last checkpoint: the Flink REST API, else the retained checkpoint directory;
- the serving store's counts: the Redis indexes;
- the items whose ATP changes most: the ATP change topic, read ``read_committed``.

Wall-clock times here only describe the job to a person; no ATP rule reads them.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from pipelines.wire import WireFormat
from state.schemas import ATP_CHANGE
from state.serving import ITEMS_KEY, locations_key

Clock = Callable[[], float]


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int  # the group's next offset (the log start when nothing is committed)
    end: int  # the log end
    start: int  # the log start

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class Lag:
    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def consumed(self) -> int:
        """Records the group has committed, over all partitions."""
        return sum(max(0, p.committed - p.start) for p in self.partitions)

    @property
    def produced(self) -> int:
        return sum(p.end - p.start for p in self.partitions)


class GroupOffsets:
    """The job's consumer group on the events topic. Never joins the group: it only
    reads the group's committed offsets."""

    def __init__(self, config: dict[str, Any], topic: str, group_id: str) -> None:
        self.topic = topic
        self._consumer = Consumer({**config, "group.id": group_id, "enable.auto.commit": False})

    def lag(self) -> Lag:
        metadata = self._consumer.list_topics(self.topic, timeout=10)
        topic = metadata.topics[self.topic]
        if topic.error is not None:
            raise RuntimeError(f"{self.topic}: {topic.error.str()}")
        partitions = sorted(topic.partitions)
        committed = self._consumer.committed(
            [TopicPartition(self.topic, p) for p in partitions], timeout=10
        )
        result = []
        for tp in committed:
            start, end = self._consumer.get_watermark_offsets(tp, timeout=10)
            position = tp.offset if tp.offset >= 0 else start
            result.append(PartitionLag(tp.partition, position, end, start))
        return Lag(tuple(result))

    def close(self) -> None:
        self._consumer.close()


class RateMeter:
    """Events/s of a growing count over a sliding window. The job commits offsets only
    when a checkpoint completes, so one refresh interval alone says nothing."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, count: int) -> None:
        self._samples.append((at, count))
        # Keep one sample at or before the window's start, so the rate spans the window.
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return max(0.0, (c1 - c0) / (t1 - t0)) if t1 > t0 else None


class CaughtUp:
    """True once the lag has been 0 for ``settle_s`` seconds and the group has consumed
    at least one record (a lag of 0 on an empty topic means nothing yet)."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._since: float | None = None

    def update(self, at: float, lag: Lag) -> bool:
        if lag.total > 0 or lag.consumed == 0:
            self._since = None
            return False
        if self._since is None:
            self._since = at
        return at - self._since >= self.settle_s


# ---- the last checkpoint -------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    id: int
    completed_at_ms: int  # wall-clock millis
    duration_ms: int | None
    size_bytes: int | None
    completed: int | None  # checkpoints completed so far, when the REST API says
    failed: int | None
    source: str  # "rest" or the checkpoint directory

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.completed_at_ms / 1000)


def checkpoint_from_rest(document: dict[str, Any]) -> Checkpoint | None:
    """The latest completed checkpoint of a ``/jobs/<id>/checkpoints`` response."""
    latest = (document.get("latest") or {}).get("completed")
    if not latest:
        return None
    counts = document.get("counts") or {}
    return Checkpoint(
        id=int(latest["id"]),
        completed_at_ms=int(latest["latest_ack_timestamp"]),
        duration_ms=latest.get("end_to_end_duration"),
        size_bytes=latest.get("checkpointed_size", latest.get("state_size")),
        completed=counts.get("completed"),
        failed=counts.get("failed"),
        source="rest",
    )


def checkpoint_from_directory(checkpoint_dir: str) -> Checkpoint | None:
    """The newest ``chk-*`` folder under the checkpoint directory (no REST API at hand)."""
    root = Path(checkpoint_dir.removeprefix("file://"))
    found = sorted(root.glob("*/chk-*"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    newest = found[-1]
    return Checkpoint(
        id=int(newest.name.removeprefix("chk-")),
        completed_at_ms=int(newest.stat().st_mtime * 1000),
        duration_ms=None,
        size_bytes=None,
        completed=None,
        failed=None,
        source=str(newest.parent),
    )


@dataclass(frozen=True)
class JobState:
    state: str  # RUNNING, RESTARTING, ..., or "unreachable"
    started_at_ms: int | None = None
    job_id: str | None = None


class FlinkRest:
    """The few REST calls status needs. The job ``atp job`` runs (make up) listens on a
    free port that ``infra/job.sh`` writes to ``var/job/rest-url``."""

    def __init__(self, url: str, timeout_s: float = 3) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=self.timeout_s) as response:
            return json.load(response)

    def job(self) -> JobState:
        try:
            jobs = self._get("/jobs/overview")["jobs"]
        except (OSError, ValueError, KeyError):
            return JobState("unreachable")
        if not jobs:
            return JobState("no job")
        # A running job first; among equals, the newest.
        job = max(jobs, key=lambda j: (j["state"] != "FINISHED", j.get("start-time", 0)))
        return JobState(job["state"], job.get("start-time"), job["jid"])

    def checkpoint(self, job_id: str) -> Checkpoint | None:
        try:
            return checkpoint_from_rest(self._get(f"/jobs/{job_id}/checkpoints"))
        except (OSError, ValueError, KeyError):
            return None


# ---- the serving store ---------------------------------------------------------------


def store_counts(client: redis.Redis) -> tuple[int, int]:
    """(items, keys) in the serving store, from its indexes, in two round trips."""
    items = cast(set[bytes], client.smembers(ITEMS_KEY))
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.scard(locations_key(item.decode()))
    return len(items), sum(int(n) for n in pipe.execute())


# ---- the ATP change topic ------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    item_id: str
    location_id: str
    available: int
    previous_available: int | None


class ChangeDecoder:
    """The one place that knows how ATP change records are encoded: Confluent-framed Avro
    ``AtpChange`` records, their schemas in the registry."""

    def __init__(self, registry_url: str) -> None:
        self._wire = WireFormat(registry_url)  # connects on the first record

    def __call__(self, topic: str, value: bytes) -> Change:
        try:
            record = self._wire.decode(ATP_CHANGE, topic, value)
            return Change(
                str(record["item_id"]),
                str(record["location_id"]),
                int(record["available"]),
                record.get("previous_available"),
            )
        except Exception as err:  # the deserializer raises its own kinds of error
            raise ValueError(f"{topic}: not an AtpChange record: {err}") from err


@dataclass(frozen=True)
class ItemActivity:
    item_id: str
    changes: int
    locations: int
    net_available: int  # the sum of (available - previous_available) over its changes


@dataclass
class ChangeWindow:
    """ATP changes per item over the last ``window_s`` seconds of arrival."""

    window_s: float
    _entries: deque[tuple[float, Change]] = field(default_factory=deque)

    def add(self, at: float, change: Change) -> None:
        self._entries.append((at, change))

    def evict(self, now: float) -> None:
        while self._entries and self._entries[0][0] <= now - self.window_s:
            self._entries.popleft()

    def __len__(self) -> int:
        return len(self._entries)

    def top(self, n: int) -> list[ItemActivity]:
        changes: Counter[str] = Counter()
        net: Counter[str] = Counter()
        locations: dict[str, set[str]] = {}
        for _, change in self._entries:
            changes[change.item_id] += 1
            net[change.item_id] += change.available - (change.previous_available or 0)
            locations.setdefault(change.item_id, set()).add(change.location_id)
        # Most changes first; ties by item id, so the view does not flicker.
        ranked = sorted(changes.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [ItemActivity(i, c, len(locations[i]), net[i]) for i, c in ranked]


class ChangeFeed:
    """A consumer of the ATP change topic in the status process: committed records only,
    from the end of the topic when it starts (the window is about now), no group
    membership and no commits."""

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        decode: ChangeDecoder,
        window: ChangeWindow,
        clock: Clock = time.monotonic,
        start_offset: int = OFFSET_END,
    ) -> None:
        self.topic = topic
        self.window = window
        self.undecodable = 0
        self.last_error: str | None = None
        self.received = 0
        self._decode = decode
        self._clock = clock
        self._consumer = Consumer(
            {
                **config,
                "group.id": f"atp-status-{uuid.uuid4().hex[:12]}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"{topic}: {metadata.error.str()}")
        self._consumer.assign([TopicPartition(topic, p, start_offset) for p in metadata.partitions])

    def poll_for(self, seconds: float) -> None:
        """Consume for ``seconds`` (the refresh interval doubles as the sleep)."""
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            for message in self._consumer.consume(500, timeout=min(left, 0.5)):
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                try:
                    change = self._decode(self.topic, value)
                except ValueError as err:
                    self.undecodable += 1  # counted and shown, never dropped silently
                    self.last_error = str(err)
                    continue
                self.received += 1
                self.window.add(self._clock(), change)
        self.window.evict(self._clock())

    def close(self) -> None:
        self._consumer.close()


# ---- everything at once --------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    topic: str
    group_id: str
    lag: Lag
    events_per_s: float | None
    job: JobState | None  # None: no REST API given
    checkpoint: Checkpoint | None
    items: int
    keys: int
    top: list[ItemActivity] | None  # None: not watching the change topic
    window_s: float | None = None
    changes_in_window: int = 0
    undecodable_changes: int = 0
    last_change_error: str | None = None
    now: float = field(default_factory=time.time)
