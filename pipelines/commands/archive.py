"""``atp archive``: a small consumer that writes the events topic to Avro files by event date."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from pipelines.archive import ArchiveWriter, Batch
from pipelines.dead_letters import DeadLetter
from pipelines.event_codec import EventCodec
from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.usage import UsageError
from pipelines.wire import WireFormat
from transforms.events import Event

HEARTBEAT_PREFIX: Final = b'{"heartbeat"'
"""A watermark heartbeat of ``atp produce --heartbeat-at``: a clock signal, not history."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "archive",
        help="archive the events topic as Avro files partitioned by event date",
        description=(
            "Consume the events topic (read_committed) and write its events to Avro "
            "container files, DIR/date=YYYY-MM-DD/part-<partition>-<first offset>.avro, "
            "and records that are not valid events to DIR/dead-letters/ with the reasons. "
            "Offsets are committed only after the files are durably closed (at least once; "
            "a re-run rewrites the same file names). Values may be Confluent-framed Avro or "
            "canonical JSON. Runs until stopped (SIGINT/SIGTERM finish the batch), or with "
            "--until-end until every partition is read to its end. See docs/archive.md."
        ),
    )
    parser.add_argument("--topic", default="atp.events", help="events topic")
    parser.add_argument("--output-dir", required=True, help="archive directory (one per topic)")
    parser.add_argument("--group-id", default="atp-archive", help="consumer group")
    parser.add_argument(
        "--until-end",
        action="store_true",
        help="stop once every partition is read to its end (batch use, tests)",
    )
    parser.add_argument(
        "--max-batch-records",
        type=int,
        default=200_000,
        help="write files and commit after this many records (default 200000)",
    )
    parser.add_argument(
        "--max-batch-seconds",
        type=float,
        default=300.0,
        help="... or after this many seconds with records pending (default 300)",
    )
    add_kafka_arguments(parser)
    add_registry_argument(parser)
    parser.set_defaults(run=run)


@dataclass(slots=True)
class Totals:
    records: int = 0
    events: int = 0
    dead_letters: int = 0
    heartbeats: int = 0
    batches: int = 0


@dataclass
class Archiver:
    """The consume loop: decode, batch, write durably, then commit."""

    consumer: Consumer
    codec: EventCodec
    writer: ArchiveWriter
    topic: str
    max_records: int
    max_seconds: float
    batch: Batch = field(default_factory=Batch)
    at_end: dict[int, bool] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    stopping: bool = False

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition at its committed offset (else the earliest), after
        removing what earlier runs wrote from there on and never committed."""
        committed = consumer.committed(partitions, timeout=30)
        starts: list[TopicPartition] = []
        for tp in committed:
            start = tp.offset
            if start < 0:
                start = consumer.get_watermark_offsets(tp, timeout=30)[0]
            removed = self.writer.start_partition(tp.partition, start)
            if removed:
                print(
                    f"archive: partition {tp.partition}: {removed} files from offset {start} on "
                    "removed or trimmed (not committed by this group), written again",
                    file=sys.stderr,
                )
            starts.append(TopicPartition(self.topic, tp.partition, start))
            self.at_end[tp.partition] = False
        consumer.assign(starts)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.flush()
        for tp in partitions:
            self.at_end.pop(tp.partition, None)

    def handle(self, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None  # a consumed record has both
        self.at_end[partition] = False
        self.totals.records += 1
        raw = message.value() or b""
        if raw.startswith(HEARTBEAT_PREFIX):
            self.totals.heartbeats += 1
            self.batch.skip(partition, offset)
            return
        decoded, event_id = self.codec.decode(raw)
        if isinstance(decoded, Event):
            kind, stamp = message.timestamp()
            self.totals.events += 1
            self.batch.add_event(
                decoded, partition, offset, None if kind == TIMESTAMP_NOT_AVAILABLE else stamp
            )
            return
        self.totals.dead_letters += 1
        source = {
            "source_topic": self.topic,
            "source_partition": partition,
            "source_offset": offset,
        }
        self.batch.add_dead_letter(DeadLetter(decoded, raw, event_id, source), partition, offset)

    def flush(self) -> None:
        """Write the batch's files durably, then commit its offsets."""
        batch = self.batch
        if not batch.records:
            return
        self.writer.write(batch)
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(batch.next_offsets.items())]
        self.consumer.commit(offsets=offsets, asynchronous=False)
        self.totals.batches += 1
        self.batch = Batch()

    def due(self) -> bool:
        batch = self.batch
        return batch.records >= self.max_records or (
            batch.records > 0 and time.monotonic() - batch.started >= self.max_seconds
        )

    def run(self, until_end: bool) -> None:
        while not self.stopping:
            for message in self.consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                if error is None:
                    self.handle(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    self.at_end[message.partition() or 0] = True
                elif error.fatal():
                    raise KafkaException(error)
                else:  # transient: the client retries by itself
                    print(f"archive: {error}", file=sys.stderr)
            if self.due():
                self.flush()
            if until_end and self.at_end and all(self.at_end.values()):
                break
        self.flush()


def _consumer(args: argparse.Namespace) -> Consumer:
    return Consumer(
        client_config(
            args,
            **{
                "group.id": args.group_id,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            },
        )
    )


def run(args: argparse.Namespace) -> int:
    if args.max_batch_records < 1 or args.max_batch_seconds <= 0:
        raise UsageError("--max-batch-records and --max-batch-seconds must be positive")
    root = Path(args.output_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {root}: {err.strerror}") from None
    consumer = _consumer(args)
    topics = consumer.list_topics(args.topic, timeout=30).topics
    if args.topic not in topics or topics[args.topic].error is not None:
        consumer.close()
        raise UsageError(f"topic not found: {args.topic}")
    archiver = Archiver(
        consumer,
        EventCodec(WireFormat(args.registry_url), args.topic),
        ArchiveWriter(root, args.topic),
        args.topic,
        args.max_batch_records,
        args.max_batch_seconds,
    )

    def stop(_signal: int, _frame: FrameType | None) -> None:
        archiver.stopping = True  # finish the batch, commit, close

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.perf_counter()
    try:
        consumer.subscribe([args.topic], on_assign=archiver.on_assign, on_revoke=archiver.on_revoke)
        archiver.run(args.until_end)
    finally:
        consumer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    totals = archiver.totals
    elapsed = time.perf_counter() - started
    print(
        f"archive: {totals.records} records, {totals.events} events, {totals.dead_letters} "
        f"dead letters, {totals.heartbeats} heartbeats, {archiver.writer.files} files in "
        f"{totals.batches} batches, {elapsed:.1f}s",
        file=sys.stderr,
    )
    return 0
