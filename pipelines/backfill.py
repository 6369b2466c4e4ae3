"""The Beam backfill: fold a history of events into snapshots, as ``atp replay`` does, in parallel.

::

    splits ─► ReadSplits ──► (item, that split's admitted events of the item) ─► GroupByKey
                 │  └────► dead letters, each with its log position
                 └───────► latest occurred_at of the split ─► max ─► the clock (side input)
    GroupByKey ─► FoldItems: log order, Replayer.fold_admitted, Replayer.finish(clock)
                 ─► snapshots, channel values, exceptions (each with a sort key) ─► shards
                 ─► Redis (compare-and-set on revision)

The shuffle key is the item: a transfer touches two locations of one item and channel
ATP needs every location of an item, so one item's events meet in one place and fold
there with the replay's own code. Each split groups its events by item before the
shuffle, so the shuffle moves one element per item and split, not one per event.

Outputs are written as shards of ``sort key <TAB> line``; ``merge_output`` orders them
by key into one file, so files equal ``atp replay``'s byte for byte.
"""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton, TaggedOutput

from pipelines.backfill_progress import ProgressWriter
from pipelines.backfill_sources import (
    AvroSplit,
    JsonLinesSplit,
    KafkaSplit,
    Record,
    SplitReader,
    event_of,
    log_order,
)
from pipelines.replay import Replayer
from pipelines.wire import snapshot_record
from state.model import DEFAULT_RETENTION, Retention
from transforms.channels import Policy
from transforms.exceptions import ExceptionRecord
from transforms.fold import DEFAULT_GRACE_MS

Split = JsonLinesSplit | AvroSplit | KafkaSplit

NAMESPACE: Final = "atp.backfill"
DEAD_LETTERS: Final = "dead_letters"
CLOCKS: Final = "clocks"
SNAPSHOTS: Final = "snapshots"
CHANNELS: Final = "channels"
EXCEPTIONS: Final = "exceptions"
REDIS: Final = "redis"
OUTPUTS: Final = (SNAPSHOTS, CHANNELS, EXCEPTIONS, DEAD_LETTERS)

JSON_LINES: Final = "jsonl"
AVRO: Final = "avro"

READ_COUNTERS: Final = ("lines", "blank_lines", "events", "dead_letters", "after_as_of")
FOLD_COUNTERS: Final = ("applied", "duplicates", "expired", "exceptions", "keys")


@dataclass(frozen=True)
class Plan:
    """What one run does: everything the workers need, picklable."""

    splits: list[Split]
    temp_dir: str
    as_of: int | None = None
    policy: Policy | None = None
    exceptions: bool = False
    dead_letters: bool = False
    snapshots: bool = True
    output_format: str = JSON_LINES
    redis_url: str | None = None
    redis_batch: int = 1000
    progress_dir: str | None = None
    retention: Retention = DEFAULT_RETENTION
    grace_ms: int = DEFAULT_GRACE_MS


@contextlib.contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """Events, records and key states hold no reference cycles: the cyclic collector
    would only re-scan them, again and again (measured: a third of the run, as in
    ``atp replay``). Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _line(key: Any, payload: bytes) -> bytes:
    """A shard line: the JSON sort key, a tab (never inside JSON), the output line."""
    return orjson.dumps(key) + b"\t" + payload


class ReadSplits(beam.DoFn):  # type: ignore[misc]
    """Read and validate one split; group its admitted events by item."""

    def __init__(self, plan: Plan) -> None:
        self.as_of = plan.as_of
        self.progress_dir = plan.progress_dir
        self.counters = {name: Metrics.counter(NAMESPACE, name) for name in READ_COUNTERS}
        self.latest = Metrics.distribution(NAMESPACE, "latest_occurred_at")

    def process(self, element: tuple[int, Split]) -> Iterator[Any]:
        index, split = element
        name = split.name if isinstance(split, JsonLinesSplit) else None
        reader = SplitReader(self.as_of, source_file=name)
        progress = ProgressWriter(self.progress_dir, f"read-{index}")
        with without_cyclic_gc():
            split.read(reader, progress.units)
            yield from self._emit(reader, progress, split.units)

    def _emit(self, reader: SplitReader, progress: ProgressWriter, units: int) -> Iterator[Any]:
        stats = reader.replayer.stats
        progress.finish(units, stats.events - stats.after_as_of)
        for counter_name, counter in self.counters.items():
            counter.inc(getattr(stats, counter_name))
        for item, records in reader.items.items():
            yield item, orjson.dumps(records)
        for position, letter in reader.dead_letters:
            yield TaggedOutput(DEAD_LETTERS, _line(position, orjson.dumps(letter.to_json())))
        if reader.replayer.max_occurred_at is not None:
            self.latest.update(reader.replayer.max_occurred_at)
            yield TaggedOutput(CLOCKS, reader.replayer.max_occurred_at)


class FoldItems(beam.DoFn):  # type: ignore[misc]
    """Fold one item's events in log order with the replay's code, then finish at the clock."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.counters = {name: Metrics.counter(NAMESPACE, name) for name in FOLD_COUNTERS}

    def setup(self) -> None:
        self.progress = ProgressWriter(self.plan.progress_dir, f"fold-{uuid.uuid4().hex}")
        self.folded = 0

    def process(self, element: tuple[str, Iterable[bytes]], clock: int | None) -> Iterator[Any]:
        with without_cyclic_gc():
            yield from self._fold(element, clock)

    def _fold(self, element: tuple[str, Iterable[bytes]], clock: int | None) -> Iterator[Any]:
        item, batches = element
        records: list[Record] = []
        for batch in batches:
            records.extend(orjson.loads(batch))
        plan = self.plan
        raised: list[ExceptionRecord] = []
        replayer = Replayer(
            retention=plan.retention, grace_ms=plan.grace_ms, on_exception=raised.append
        )
        # Exceptions are written in the replay's order: by the log position of the event
        # that raised them, then (timer-driven, at the end) by key.
        keyed: list[tuple[Any, ExceptionRecord]] = []
        for record in log_order(records):
            before = len(raised)
            replayer.fold_admitted(event_of(record))
            if len(raised) != before:
                position = (0, record[2], record[0], record[1])
                keyed.extend(((*position, i), raised[i]) for i in range(before, len(raised)))
        before = len(raised)
        result = replayer.finish(plan.policy, clock=clock if plan.as_of is None else plan.as_of)
        keyed.extend(((1, item, i), raised[i]) for i in range(before, len(raised)))
        yield from self._outputs(result.snapshots, result.channels, keyed)
        stats = replayer.stats
        for name, counter in self.counters.items():
            counter.inc(getattr(stats, name))
        self.folded += len(records)
        self.progress.folded(self.folded)

    def _outputs(self, snapshots: Any, channels: Any, keyed: Any) -> Iterator[Any]:
        plan = self.plan
        for snap in snapshots:
            document = orjson.dumps(snap.to_json())
            if plan.snapshots:
                payload = (
                    orjson.dumps(snapshot_record(snap)) if plan.output_format == AVRO else document
                )
                yield TaggedOutput(SNAPSHOTS, _line((snap.item_id, snap.location_id), payload))
            if plan.redis_url is not None:
                yield TaggedOutput(
                    REDIS, (snap.item_id, snap.location_id, snap.revision, document.decode())
                )
        for value in channels:
            key = (value.channel, value.item_id)
            yield TaggedOutput(CHANNELS, _line(key, orjson.dumps(value.to_json())))
        if plan.exceptions:
            for key, record in keyed:
                yield TaggedOutput(EXCEPTIONS, _line(key, orjson.dumps(record.to_json())))

    def teardown(self) -> None:
        self.progress.folded(self.folded, force=True)


class WriteShards(beam.DoFn):  # type: ignore[misc]
    """One shard per bundle, ``<dir>/<name>-<random>.shard``, renamed into place when whole.

    A retried bundle may leave a second copy of its lines; ``merge_output`` drops them
    (every sort key is unique, and equal keys carry equal lines: the fold is deterministic).
    """

    def __init__(self, directory: str, name: str) -> None:
        self.directory = directory
        self.name = name

    def start_bundle(self) -> None:
        self.handle: Any = None
        self.path = ""

    def process(self, line: bytes) -> None:
        if self.handle is None:
            self.path = FileSystems.join(self.directory, f"{self.name}-{uuid.uuid4().hex}.shard")
            self.handle = FileSystems.create(self.path + ".partial")
        self.handle.write(line + b"\n")

    def finish_bundle(self) -> None:
        if self.handle is not None:
            self.handle.close()
            FileSystems.rename([self.path + ".partial"], [self.path])
            self.handle = None


class LoadRedis(beam.DoFn):  # type: ignore[misc]
    """Bulk load through the serving store: compare-and-set on revision, never backwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.written = Metrics.counter(NAMESPACE, "redis_written")
        self.kept = Metrics.counter(NAMESPACE, "redis_kept_newer")

    def setup(self) -> None:
        from state.serving import SnapshotStore

        self.store = SnapshotStore.from_url(self.url)

    def process(self, batch: list[tuple[str, str, int, str]]) -> None:
        written = self.store.write_encoded(batch)
        self.written.inc(written)
        self.kept.inc(len(batch) - written)

    def teardown(self) -> None:
        self.store.client.close()


def _latest(times: Iterable[int]) -> int | None:
    return max(times, default=None)


def build(pipeline: beam.Pipeline, plan: Plan) -> None:
    """The backfill's transforms on ``pipeline``; outputs go to shards under ``plan.temp_dir``."""
    read = (
        pipeline
        | "Splits" >> beam.Create(list(enumerate(plan.splits)))
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.ParDo(ReadSplits(plan)).with_outputs(DEAD_LETTERS, CLOCKS, main="items")
    )
    clock = read[CLOCKS] | "Clock" >> beam.CombineGlobally(_latest)
    folded = (
        read["items"]
        | "ByItem" >> beam.GroupByKey()
        | "Fold"
        >> beam.ParDo(FoldItems(plan), AsSingleton(clock)).with_outputs(
            SNAPSHOTS, CHANNELS, EXCEPTIONS, REDIS
        )
    )
    wanted = {
        SNAPSHOTS: plan.snapshots,
        CHANNELS: plan.policy is not None,
        EXCEPTIONS: plan.exceptions,
        DEAD_LETTERS: plan.dead_letters,
    }
    sources = {**{name: folded[name] for name in (SNAPSHOTS, CHANNELS, EXCEPTIONS)}}
    sources[DEAD_LETTERS] = read[DEAD_LETTERS]
    for name, collection in sources.items():
        if wanted[name]:
            _ = collection | f"Write {name}" >> beam.ParDo(WriteShards(plan.temp_dir, name))
    if plan.redis_url is not None:
        _ = (
            folded[REDIS]
            | "Batch"
            >> beam.BatchElements(
                min_batch_size=plan.redis_batch // 10, max_batch_size=plan.redis_batch
            )
            | "Redis" >> beam.ParDo(LoadRedis(plan.redis_url))
        )


def merge_output(temp_dir: str, name: str) -> list[bytes]:
    """Every line of an output, in sort-key order (the replay's order)."""
    keyed: list[tuple[Any, bytes]] = []
    pattern = FileSystems.join(temp_dir, name) + "-*.shard"
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(metadata.path, compression_type="uncompressed") as handle:
            for line in handle.read().split(b"\n"):
                if line:
                    key, _, payload = line.partition(b"\t")
                    keyed.append((orjson.loads(key), payload))
    keyed.sort(key=itemgetter(0))
    lines: list[bytes] = []
    last: Any = None
    for key, payload in keyed:
        if key != last:  # a retried bundle's second copy
            lines.append(payload)
            last = key
    return lines
