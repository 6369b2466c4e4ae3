"""The archive's files: layout, durable batches, and clean-up when a partition starts over."""

from __future__ import annotations

from pathlib import Path

from pipelines.archive import (
    DEAD_LETTER_DIR,
    ArchiveWriter,
    Batch,
    event_date,
    file_name,
    parse_file_name,
    read_archive,
    read_dead_letters,
)
from pipelines.dead_letters import DeadLetter
from transforms.events import RECEIPT, Event
from transforms.timeutil import DAY_MS, parse_iso
from transforms.validation import UNDECODABLE, Violation, event_to_record

DAY1 = parse_iso("2026-05-01T23:00:00Z")


def _event(offset: int, day: int) -> Event:
    return Event(f"E{offset}", RECEIPT, "A", "DC1", offset + 1, DAY1 + day * DAY_MS)


def _batch(partition: int, offsets: range, bad: frozenset[int] = frozenset()) -> Batch:
    batch = Batch()
    for offset in offsets:
        if offset in bad:
            letter = DeadLetter(
                (Violation(UNDECODABLE, "x"),),
                b"\x00\xff",
                None,
                {"source_topic": "t", "source_partition": partition, "source_offset": offset},
            )
            batch.add_dead_letter(letter, partition, offset)
        else:
            # Late events: every third one belongs to the day before.
            batch.add_event(_event(offset, 1 - (offset % 3 == 0)), partition, offset, None)
    return batch


def test_names_sort_in_offset_order() -> None:
    assert file_name(3, 120, "avro") == "part-00003-00000000000000000120.avro"
    assert parse_file_name(file_name(3, 120, "jsonl")) == (3, 120)
    assert parse_file_name("notes.txt") is None
    names = [file_name(0, offset, "avro") for offset in (5, 40, 300, 1000)]
    assert sorted(names) == names
    assert event_date(DAY1) == "2026-05-01"


def test_batches_are_split_by_date_and_read_back_in_log_order(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path, "t")
    writer.write(_batch(0, range(0, 10), bad=frozenset({4})))
    writer.write(_batch(0, range(10, 20)))
    writer.write(_batch(1, range(0, 5)))
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert names == [
        f"date=2026-05-01/{file_name(0, 0, 'avro')}",
        f"date=2026-05-01/{file_name(0, 12, 'avro')}",
        f"date=2026-05-01/{file_name(1, 0, 'avro')}",
        f"date=2026-05-02/{file_name(0, 1, 'avro')}",
        f"date=2026-05-02/{file_name(0, 10, 'avro')}",
        f"date=2026-05-02/{file_name(1, 1, 'avro')}",
        f"{DEAD_LETTER_DIR}/{file_name(0, 4, 'jsonl')}",
    ]
    records = list(read_archive(tmp_path))
    assert [(r["kafka_partition"], r["kafka_offset"]) for r in records] == [
        *((0, o) for o in range(20) if o != 4),
        *((1, o) for o in range(5)),
    ]
    first = event_to_record(_event(0, 0))
    assert {k: records[0][k] for k in first} == first
    (letter,) = read_dead_letters(tmp_path)
    assert (letter["source_offset"], letter["reason"], letter["raw_base64"]) == (
        4,
        UNDECODABLE,
        "AP8=",
    )


def test_start_partition_removes_later_files_and_trims_spanning_ones(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path, "t")
    writer.write(_batch(0, range(0, 10), bad=frozenset({2, 7})))
    writer.write(_batch(0, range(10, 20)))
    writer.write(_batch(1, range(0, 10)))
    (tmp_path / "date=2026-05-02" / ".part-x.avro.tmp").write_bytes(b"partial")

    touched = writer.start_partition(0, 6)
    # Removed: both files of the second batch. Trimmed: the two event files and the
    # dead letters of the first batch, which hold offsets from 6 on.
    assert touched == 5
    offsets = [(r["kafka_partition"], r["kafka_offset"]) for r in read_archive(tmp_path)]
    assert offsets == [(0, o) for o in (0, 1, 3, 4, 5)] + [(1, o) for o in range(10)]
    assert [letter["source_offset"] for letter in read_dead_letters(tmp_path)] == [2]
    assert not list(tmp_path.rglob("*.tmp"))

    # Writing the rest again gives the history once.
    writer.write(_batch(0, range(6, 20), bad=frozenset({7})))
    again = [r["kafka_offset"] for r in read_archive(tmp_path) if r["kafka_partition"] == 0]
    assert again == [o for o in range(20) if o not in (2, 7)]
    assert writer.start_partition(0, 20) == 0
