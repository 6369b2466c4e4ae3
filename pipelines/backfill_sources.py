"""History sources of the backfill: JSON-lines logs, Avro archives, a bounded Kafka range.

Each source is cut into splits that workers read independently. Every record keeps
its log position, ``(stream, seq, ts)``:

- JSON lines: stream 0, seq = line number (what ``atp replay`` numbers dead letters by);
- Avro archives: the archived ``(kafka_partition, kafka_offset, kafka_timestamp)`` as the
  Kafka source has them, so an archive replays in the topic's order although a late
  event sits in the folder of its own date; records without them (archives written by
  something else) are stream -1, seq = file rank (paths sorted) << 32 | record index;
- Kafka: stream = partition, seq = offset, ts = record timestamp.

A key's records all live in one stream, so ordering each stream by seq restores every
key's log order; ``log_order`` merges streams by record time (see docs/backfill.md).
"""

from __future__ import annotations

import glob
import heapq
import io
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import fastavro
import orjson

from pipelines.dead_letters import DeadLetter
from pipelines.replay import Replayer
from transforms.events import Event
from transforms.validation import UNDECODABLE, Violation, parse_event

Record = list[Any]
"""``[stream, seq, ts, *event fields]``: an admitted event with its log position."""
HEADER: Final = 3
"""Fields of a Record before the event's own."""

HEARTBEAT_PREFIX: Final = b'{"heartbeat"'
"""A watermark heartbeat of ``atp produce --heartbeat-at``: not an event, not a dead letter."""

Progress = Callable[[int], None]
"""Called with units done so far (bytes for files, records for Kafka)."""


class SplitReader:
    """Turns one split's records into admitted events per item, dead letters and counts.

    Decoding, dead letters, blank lines, ``as_of`` and the clock go through the
    ``Replayer`` of ``atp replay``, so the counts and dead letters are its own.
    """

    def __init__(self, as_of: int | None, source_file: str | None = None) -> None:
        self.replayer = Replayer(
            as_of=as_of, source_file=source_file, on_dead_letter=self._replay_dead_letter
        )
        self.items: dict[str, list[Record]] = defaultdict(list)
        self.dead_letters: list[tuple[tuple[int, int], DeadLetter]] = []

    def event(self, stream: int, seq: int, ts: int, event: Event) -> None:
        if self.replayer.admit(event):
            self.items[event.item_id].append([stream, seq, ts, *event])

    def dead_letter(self, position: tuple[int, int], letter: DeadLetter) -> None:
        self.replayer.stats.dead_letters += 1
        self.dead_letters.append((position, letter))

    def _replay_dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.append(((0, letter.source["line"]), letter))


# --- JSON lines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonLinesSplit:
    """Lines ``[start, end)`` (byte offsets on line boundaries) of a JSON-lines log."""

    path: str
    start: int
    end: int
    first_line: int
    name: str  # the path as given: dead letters name it as ``source_file``

    @property
    def units(self) -> int:
        return self.end - self.start

    def read(self, reader: SplitReader, progress: Progress) -> None:
        replayer = reader.replayer
        with Path(self.path).open("rb") as handle:
            handle.seek(self.start)
            # readlines keeps the newline, as in atp replay: orjson's error messages
            # (a dead letter's message) depend on it.
            lines = io.BytesIO(handle.read(self.end - self.start)).readlines()
        for line_no, raw in enumerate(lines, self.first_line):
            event = replayer.read(raw, line_no)
            if event is not None:
                reader.event(0, line_no, 0, event)
            if not line_no & 0x3FFF:
                progress(self.units * (line_no - self.first_line) // len(lines))
        replayer.stats.lines = len(lines)
        progress(self.units)


def plan_json_lines(path: str, name: str, split_bytes: int) -> tuple[list[JsonLinesSplit], int]:
    """Cut a log into splits on line boundaries, numbering lines as ``atp replay`` does.

    Returns the splits and the number of lines. Reads the file once (counting newlines
    runs at memory speed).
    """
    size = os.path.getsize(path)
    splits: list[JsonLinesSplit] = []
    line = 1
    with Path(path).open("rb") as handle:
        start = 0
        while start < size:
            handle.seek(min(size, start + split_bytes))
            handle.readline()  # to the end of the line the cut falls in
            end = min(size, handle.tell()) if start + split_bytes < size else size
            lines = _count_lines(handle, start, end)
            splits.append(JsonLinesSplit(path, start, end, line, name))
            line += lines
            start = end
    return splits, line - 1


def _count_lines(handle: Any, start: int, end: int) -> int:
    handle.seek(start)
    remaining, count, last = end - start, 0, b"\n"
    while remaining:
        block = handle.read(min(remaining, 1 << 24))
        count += block.count(b"\n")
        remaining -= len(block)
        last = block[-1:]
    return count + (last != b"\n")  # a last line without a newline is a line too


# --- Avro archives ------------------------------------------------------------------------


@dataclass(frozen=True)
class AvroSplit:
    """One Avro container file of archived ``InventoryEvent`` records."""

    path: str
    rank: int  # the file's place in path order

    @property
    def units(self) -> int:
        return os.path.getsize(self.path)

    def read(self, reader: SplitReader, progress: Progress) -> None:
        base = self.rank << 32
        with Path(self.path).open("rb") as handle:
            index = -1
            for index, record in enumerate(fastavro.reader(handle)):
                decoded = parse_event(record) if isinstance(record, dict) else None
                stream, seq, ts = _archived_position(record) or (UNPOSITIONED, base | index, 0)
                if isinstance(decoded, Event):
                    reader.event(stream, seq, ts, decoded)
                else:
                    reasons = _reasons(decoded)
                    raw = orjson.dumps(record)
                    event_id = record.get("event_id") if isinstance(record, dict) else None
                    letter = DeadLetter(
                        reasons,
                        raw,
                        event_id if isinstance(event_id, str) else None,
                        {"source_file": self.path, "record": index + 1},
                    )
                    reader.dead_letter((stream, seq), letter)
                if not index & 0x3FFF:
                    progress(handle.tell())
            reader.replayer.stats.lines = index + 1
        progress(self.units)


UNPOSITIONED: Final = -1
"""The stream of archived records that carry no Kafka position."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _archived_position(record: Any) -> tuple[int, int, int] | None:
    """``(partition, offset, record time)`` of a record ``atp archive`` wrote, else None."""
    if not isinstance(record, dict):
        return None
    partition, offset = record.get("kafka_partition"), record.get("kafka_offset")
    if not isinstance(partition, int) or not isinstance(offset, int):
        return None
    at = record.get("kafka_timestamp")  # fastavro reads timestamp-millis as a datetime
    ts = (at - _EPOCH) // timedelta(milliseconds=1) if isinstance(at, datetime) else 0
    return partition, offset, ts


def _reasons(decoded: list[Violation] | None) -> tuple[Violation, ...]:
    if decoded is None:
        return (Violation(UNDECODABLE, "not an Avro record"),)
    return tuple(decoded)


def plan_avro(pattern: str) -> list[AvroSplit]:
    """Files of an archive: one file, every ``*.avro`` under a directory, or a glob."""
    if Path(pattern).is_dir():
        paths = sorted(glob.glob(os.path.join(pattern, "**", "*.avro"), recursive=True))
    elif Path(pattern).is_file():
        paths = [pattern]
    else:
        paths = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    return [AvroSplit(path, rank) for rank, path in enumerate(paths)]


# --- Kafka --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaSplit:
    """Offsets ``[start, end)`` of one partition."""

    topic: str
    partition: int
    start: int
    end: int
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    registry_url: str | None = None

    @property
    def units(self) -> int:
        return self.end - self.start

    def read(self, reader: SplitReader, progress: Progress) -> None:
        from pipelines.backfill_kafka import read_partition

        read_partition(self, reader, progress)


# --- ordering -----------------------------------------------------------------------------


def log_order(records: Sequence[Record]) -> list[Record]:
    """An item's records in log order: each stream by seq, streams merged by record time.

    The merge keeps every stream's own order (it only compares heads), so every key's
    events stay in their log order whatever the timestamps say.
    """
    streams: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        streams[record[0]].append(record)
    for stream in streams.values():
        stream.sort(key=_seq)
    if len(streams) == 1:
        return next(iter(streams.values()))
    return list(heapq.merge(*(streams[s] for s in sorted(streams)), key=_time_and_stream))


def _seq(record: Record) -> int:
    seq: int = record[1]
    return seq


def _time_and_stream(record: Record) -> tuple[int, int]:
    return record[2], record[0]


def event_of(record: Record) -> Event:
    return Event(*record[HEADER:])


def unique_group_id(prefix: str = "atp-backfill") -> str:
    """A consumer group of its own: a backfill commits nothing and disturbs no one."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def total_units(splits: Iterable[JsonLinesSplit | AvroSplit | KafkaSplit]) -> int:
    return sum(split.units for split in splits)
