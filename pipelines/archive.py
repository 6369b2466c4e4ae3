"""The event archive: the events topic as Avro container files, partitioned by event date,
so history outlives Kafka retention (see docs/archive.md).

Layout under the archive directory, one directory per topic:

- ``date=YYYY-MM-DD/part-<partition>-<first offset>.avro``: valid events of that
  ``occurred_at`` date (UTC) from one partition, in offset order, from one batch;
- ``dead-letters/part-<partition>-<first offset>.jsonl``: records that are not valid
  events, with the reasons, as read.

Partition and offset are zero-padded, so names sort in offset order. Each record is an
``InventoryEvent`` (avro/inventory_event.avsc) plus its log position (``kafka_partition``,
``kafka_offset``, ``kafka_timestamp``): a date-partitioned archive has no other way to
restore a key's log order across days, and a reader with the plain InventoryEvent schema
skips the three fields (Avro schema resolution).
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import fastavro
import orjson

from pipelines.dead_letters import DeadLetter
from pipelines.wire import millis_times
from state.schemas import INVENTORY_EVENT, schema_text
from transforms.events import Event
from transforms.validation import event_to_record

CODEC: Final = "deflate"
"""fastavro's built-in codec (snappy would need one more native package)."""
DEAD_LETTER_DIR: Final = "dead-letters"
_NAME: Final = re.compile(r"part-(\d+)-(\d+)\.(avro|jsonl)")

POSITION_FIELDS: Final = [
    {
        "name": "kafka_partition",
        "type": ["null", "int"],
        "default": None,
        "doc": "Partition of the events topic the event was read from.",
    },
    {
        "name": "kafka_offset",
        "type": ["null", "long"],
        "default": None,
        "doc": "Its offset: with the partition, the event's place in the log.",
    },
    {
        "name": "kafka_timestamp",
        "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
        "default": None,
        "doc": "The record timestamp (occurred_at, as atp produce sets it).",
    },
]


def archive_schema() -> Any:
    """InventoryEvent with the log position appended (same name: readers resolve it)."""
    schema = orjson.loads(schema_text(INVENTORY_EVENT))
    schema["fields"] = [*schema["fields"], *POSITION_FIELDS]
    return fastavro.parse_schema(schema)


def event_date(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d")


def file_name(partition: int, first_offset: int, extension: str) -> str:
    return f"part-{partition:05d}-{first_offset:020d}.{extension}"


def parse_file_name(name: str) -> tuple[int, int] | None:
    """``(partition, first offset)`` of an archive file name, None for other files."""
    match = _NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2]))


@dataclass(slots=True)
class Batch:
    """Records consumed since the last commit, grouped as they will be written."""

    events: dict[tuple[str, int], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    dead_letters: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    next_offsets: dict[int, int] = field(default_factory=dict)
    """Per partition, the offset after the last record consumed: what to commit."""
    records: int = 0
    started: float = field(default_factory=time.monotonic)

    def add_event(self, event: Event, partition: int, offset: int, timestamp: int | None) -> None:
        record = event_to_record(event)
        record["kafka_partition"] = partition
        record["kafka_offset"] = offset
        record["kafka_timestamp"] = timestamp
        self.events[(event_date(event.occurred_at), partition)].append(record)
        self._consumed(partition, offset)

    def add_dead_letter(self, letter: DeadLetter, partition: int, offset: int) -> None:
        record = letter.to_json()
        record["raw_base64"] = base64.b64encode(letter.raw).decode()
        self.dead_letters[partition].append(record)
        self._consumed(partition, offset)

    def skip(self, partition: int, offset: int) -> None:
        """A record that is not history (a watermark heartbeat): only its offset counts."""
        self._consumed(partition, offset)

    def _consumed(self, partition: int, offset: int) -> None:
        self.records += 1
        self.next_offsets[partition] = offset + 1


def _fsync_dir(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _durable_replace(path: Path, write: Callable[[Any], None]) -> None:
    """Write to a temporary file, fsync it, rename it over ``path``, fsync the directory:
    after this returns the file survives a crash, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    _fsync_dir(path.parent)


class ArchiveWriter:
    """Writes batches durably; cleans up after uncommitted ones when a partition starts."""

    def __init__(self, root: Path, topic: str) -> None:
        self.root = root
        self.topic = topic
        self.schema = archive_schema()
        self.files = 0

    def write(self, batch: Batch) -> None:
        for (date, partition), records in sorted(batch.events.items()):
            first = records[0]["kafka_offset"]
            metadata = {
                "atp.topic": self.topic,
                "atp.partition": str(partition),
                "atp.first_offset": str(first),
                "atp.last_offset": str(records[-1]["kafka_offset"]),
            }
            path = self.root / f"date={date}" / file_name(partition, first, "avro")
            self._write_avro(path, records, metadata)
        for partition, letters in sorted(batch.dead_letters.items()):
            first = letters[0]["source_offset"]
            path = self.root / DEAD_LETTER_DIR / file_name(partition, first, "jsonl")
            self._write_lines(path, [orjson.dumps(letter) for letter in letters])

    def _write_avro(
        self, path: Path, records: list[dict[str, Any]], metadata: dict[str, str]
    ) -> None:
        def write(handle: Any) -> None:
            fastavro.writer(handle, self.schema, records, codec=CODEC, metadata=metadata)

        _durable_replace(path, write)
        self.files += 1

    def _write_lines(self, path: Path, lines: list[bytes]) -> None:
        def write(handle: Any) -> None:
            handle.writelines(line + b"\n" for line in lines)

        _durable_replace(path, write)
        self.files += 1

    def start_partition(self, partition: int, start_offset: int) -> int:
        """Forget what earlier runs wrote for ``partition`` at or after ``start_offset``:
        it was never committed (or is being archived again) and will be written anew.
        Returns the number of files removed or trimmed."""
        touched = 0
        for path in sorted(self.root.glob("*/*")):
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write that never completed
                continue
            parsed = parse_file_name(path.name)
            if parsed is None or parsed[0] != partition:
                continue
            if parsed[1] >= start_offset:
                path.unlink()
                touched += 1
            elif self._trim(path, start_offset):
                touched += 1
        return touched

    def _trim(self, path: Path, start_offset: int) -> bool:
        """Drop records at or after ``start_offset`` from an older file (only a re-run from
        an earlier offset than a previous run's batch boundary can leave any)."""
        if path.suffix == ".avro":
            metadata, records = _avro_file(path)
            keep = [r for r in records if r["kafka_offset"] < start_offset]
            if len(keep) == len(records):
                return False
            metadata["atp.last_offset"] = str(keep[-1]["kafka_offset"])
            self._write_avro(path, keep, metadata)
        else:
            lines = path.read_bytes().splitlines()
            kept = [line for line in lines if orjson.loads(line)["source_offset"] < start_offset]
            if len(kept) == len(lines):
                return False
            self._write_lines(path, kept)
        self.files -= 1  # a rewrite, not a new file
        return True


def _avro_file(path: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The ``atp.*`` metadata and the records of an archive file (times as datetimes)."""
    with path.open("rb") as handle:
        reader = fastavro.reader(handle)
        metadata = {k: str(v) for k, v in reader.metadata.items() if k.startswith("atp.")}
        records = [record for record in reader if isinstance(record, dict)]
    return metadata, records


def read_archive(root: Path) -> Iterator[dict[str, Any]]:
    """Every archived event, in log order per partition (partition, then offset); times
    as epoch millis, as ``parse_event`` and ``event_to_record`` have them."""
    files: list[tuple[int, int, Path]] = []
    for path in root.glob("date=*/*.avro"):
        parsed = parse_file_name(path.name)
        if parsed is not None:
            files.append((*parsed, path))
    records: list[dict[str, Any]] = []
    for _, _, path in sorted(files):
        records.extend(millis_times(record) for record in _avro_file(path)[1])
    records.sort(key=lambda r: (r["kafka_partition"], r["kafka_offset"]))
    yield from records


def read_dead_letters(root: Path) -> Iterator[dict[str, Any]]:
    """Every archived dead letter, by partition and offset."""
    letters: list[dict[str, Any]] = []
    for path in (root / DEAD_LETTER_DIR).glob("*.jsonl"):
        letters.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    letters.sort(key=lambda r: (r["source_partition"], r["source_offset"]))
    yield from letters
