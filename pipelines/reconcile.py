"""Reconciliation: stock counts from a WMS or ERP against the snapshots' ``on_hand``.

A count row becomes a ``CYCLE_COUNT`` event and is validated by ``parse_event`` like any
other event, so a row that passes is exactly what the fold would accept as a correction.
The variance of a key is ``counted_quantity - on_hand``. How a count's ``counted_at``
relates to the snapshot's ``as_of`` is in docs/semantics.md ("Reconciliation").
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from transforms.events import CYCLE_COUNT, Event, Key
from transforms.timeutil import format_iso, parse_iso
from transforms.validation import UNDECODABLE, Violation, parse_event

FIELDS: Final = ("item_id", "location_id", "counted_quantity", "counted_at")

SUPERSEDED: Final = "SUPERSEDED"
"""A count row replaced by a later count of the same key (a later ``counted_at``, or the
same time further down the file)."""

# How a count relates in time to the snapshot it is compared with.
COUNT_AFTER_SNAPSHOT: Final = "COUNT_AFTER_SNAPSHOT"
COUNT_BEFORE_SNAPSHOT: Final = "COUNT_BEFORE_SNAPSHOT"
NO_SNAPSHOT: Final = "NO_SNAPSHOT"

# What happens to a key's correction.
NOT_NEEDED: Final = "NOT_NEEDED"
CORRECTION: Final = "CORRECTION"
WITHHELD_STALE: Final = "WITHHELD_STALE"

_INTEGER: Final = re.compile(r"[+-]?\d+")
_RENAMED: Final = (("quantity", "counted_quantity"), ("occurred_at", "counted_at"))


@dataclass(frozen=True, slots=True)
class Count:
    """A valid count row, with its correction event."""

    line: int
    event: Event

    @property
    def key(self) -> Key:
        return (self.event.item_id, self.event.location_id)


@dataclass(frozen=True, slots=True)
class BadCount:
    """A count row that is not used, and why."""

    line: int
    reasons: tuple[Violation, ...]
    raw: str

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "reason": self.reasons[0].code,
            "message": self.reasons[0].message,
            "reasons": [{"code": v.code, "message": v.message} for v in self.reasons],
            "raw": self.raw,
        }


def correction_event_id(item_id: str, location_id: str, quantity: int, counted_at: int) -> str:
    """The correction's event_id, derived from the count, so a re-run repeats the same id
    and the fold treats it as a redelivery."""
    digest = hashlib.sha256(f"{item_id}\x1f{location_id}\x1f{quantity}\x1f{counted_at}".encode())
    return f"CC-{digest.hexdigest()[:32]}"


def _renamed(message: str) -> str:
    for event_field, count_field in _RENAMED:
        message = re.sub(rf"\b{event_field}\b", count_field, message)
    return message


def parse_count(
    row: dict[str, Any],
    line: int,
    raw: str,
    source_system: str,
    correlation_id: str | None,
    text_cells: bool = False,
) -> Count | BadCount:
    """Validate one decoded row: CSV cells are text (``text_cells``), JSON values typed
    (a JSON ``"5"`` is not an integer, as in events)."""
    quantity = row.get("counted_quantity")
    if text_cells and isinstance(quantity, str):
        if _INTEGER.fullmatch(quantity):
            quantity = int(quantity)  # "5.0" stays text and is rejected
        elif not quantity:
            quantity = None
    item_id, location_id, counted_at = (
        row.get(f) for f in ("item_id", "location_id", "counted_at")
    )
    record = {
        "event_type": CYCLE_COUNT,
        "source_system": source_system,
        "item_id": item_id,
        "location_id": location_id,
        "quantity": quantity,
        "occurred_at": counted_at,
        "correlation_id": correlation_id,
    }
    # Validate once with a placeholder id (the real one needs the parsed values).
    checked = parse_event({**record, "event_id": "-"})
    if isinstance(checked, list):
        reasons = tuple(Violation(v.code, _renamed(v.message)) for v in checked)
        return BadCount(line, reasons, raw)
    event_id = correction_event_id(
        checked.item_id, checked.location_id, checked.quantity, checked.occurred_at
    )
    return Count(line, checked._replace(event_id=event_id))


def sniff_format(path: str, head: bytes) -> str:
    """``jsonl`` or ``csv``: by the file name, else by the first non-blank byte."""
    lowered = path.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    return "jsonl" if head.lstrip()[:1] == b"{" else "csv"


class CountFileError(ValueError):
    """A count file that cannot be read at all (no header, missing columns)."""


def read_counts(
    data: bytes, fmt: str, source_system: str = "RECONCILE", correlation_id: str | None = None
) -> tuple[list[Count], list[BadCount]]:
    """Every row of a count file, valid or not; a later count of a key supersedes an
    earlier one, which is reported, never dropped silently."""
    rows = _jsonl_rows(data) if fmt == "jsonl" else _csv_rows(data)
    latest: dict[Key, Count] = {}
    bad: list[BadCount] = []
    for line, row, raw in rows:
        parsed = (
            parse_count(row, line, raw, source_system, correlation_id, fmt == "csv")
            if isinstance(row, dict)
            else BadCount(line, (Violation(UNDECODABLE, row),), raw)
        )
        if isinstance(parsed, BadCount):
            bad.append(parsed)
            continue
        held = latest.get(parsed.key)
        loser: Count | None
        if held is not None and held.event.occurred_at > parsed.event.occurred_at:
            loser, winner = parsed, held
        else:
            loser, winner = held, parsed
        latest[parsed.key] = winner
        if loser is not None:
            message = (
                f"superseded by line {winner.line} (counted_at "
                f"{format_iso(winner.event.occurred_at)})"
            )
            bad.append(BadCount(loser.line, (Violation(SUPERSEDED, message),), _raw(rows, loser)))
    bad.sort(key=lambda b: b.line)
    return sorted(latest.values(), key=lambda c: c.key), bad


def _raw(rows: list[tuple[int, dict[str, Any] | str, str]], count: Count) -> str:
    return next(raw for line, _, raw in rows if line == count.line)


def _jsonl_rows(data: bytes) -> list[tuple[int, dict[str, Any] | str, str]]:
    rows: list[tuple[int, dict[str, Any] | str, str]] = []
    for line, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", errors="replace")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            rows.append((line, f"not valid JSON: {err}", text))
            continue
        rows.append((line, value if isinstance(value, dict) else "not a JSON object", text))
    return rows


def _csv_rows(data: bytes) -> list[tuple[int, dict[str, Any] | str, str]]:
    text = data.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in FIELDS if name not in header]
    if missing:
        raise CountFileError(f"count file header lacks {', '.join(missing)}")
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, Any] | str, str]] = []
    for row in reader:
        line = reader.line_num
        raw = lines[line - 1] if line - 1 < len(lines) else ""
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # a blank row is not a count
        if None in row:
            rows.append(
                (line, f"{len(header) + len(row[None])} cells, header has {len(header)}", raw)
            )
            continue
        rows.append(
            (line, {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}, raw)
        )
    return rows


@dataclass(frozen=True, slots=True)
class Variance:
    """One counted key against its snapshot."""

    count: Count
    on_hand: int
    """The snapshot's on_hand; 0 when the key has no snapshot."""
    timing: str
    snapshot: dict[str, Any] | None
    correction: str

    @property
    def variance(self) -> int:
        return self.count.event.quantity - self.on_hand

    def to_json(self) -> dict[str, Any]:
        event, snap = self.count.event, self.snapshot or {}
        return {
            "level": "key",
            "item_id": event.item_id,
            "location_id": event.location_id,
            "counted_quantity": event.quantity,
            "counted_at": format_iso(event.occurred_at),
            "on_hand": self.on_hand,
            "variance": self.variance,
            "abs_variance": abs(self.variance),
            "timing": self.timing,
            "snapshot_as_of": snap.get("as_of"),
            "snapshot_version": snap.get("version"),
            "snapshot_revision": snap.get("revision"),
            "last_event_id": snap.get("last_event_id"),
            "correction": self.correction,
            "correction_event_id": event.event_id if self.correction == CORRECTION else None,
            "line": self.count.line,
        }


@dataclass(slots=True)
class Totals:
    """Sums over a set of keys: one location, or all of them."""

    location_id: str | None
    keys: int = 0
    keys_with_variance: int = 0
    counted: int = 0
    on_hand: int = 0
    over: int = 0
    """Units counted above on_hand."""
    short: int = 0
    """Units counted below on_hand."""
    corrections: int = 0
    withheld: int = 0

    @property
    def variance(self) -> int:
        return self.counted - self.on_hand

    @property
    def abs_variance(self) -> int:
        return self.over + self.short

    def add(self, row: Variance) -> None:
        self.keys += 1
        self.counted += row.count.event.quantity
        self.on_hand += row.on_hand
        delta = row.variance
        if delta:
            self.keys_with_variance += 1
            if delta > 0:
                self.over += delta
            else:
                self.short -= delta
        self.corrections += row.correction == CORRECTION
        self.withheld += row.correction == WITHHELD_STALE

    def to_json(self) -> dict[str, Any]:
        return {
            "level": "total" if self.location_id is None else "location",
            "location_id": self.location_id,
            "keys": self.keys,
            "keys_with_variance": self.keys_with_variance,
            "counted_quantity": self.counted,
            "on_hand": self.on_hand,
            "variance": self.variance,
            "abs_variance": self.abs_variance,
            "over": self.over,
            "short": self.short,
            "corrections": self.corrections,
            "withheld": self.withheld,
        }


@dataclass(slots=True)
class Report:
    rows: list[Variance]
    """Largest absolute variance first, then by key."""
    locations: list[Totals]
    """Largest absolute variance first, then by location."""
    total: Totals
    bad: list[BadCount] = field(default_factory=list)

    def corrections(self) -> list[Event]:
        """The correction events, in key order (the order they are published in)."""
        chosen = [row.count.event for row in self.rows if row.correction == CORRECTION]
        return sorted(chosen, key=lambda e: (e.item_id, e.location_id))

    def records(self) -> Iterator[dict[str, Any]]:
        """The report's lines: keys, then locations, then the total."""
        for row in self.rows:
            yield row.to_json()
        for totals in self.locations:
            yield totals.to_json()
        yield self.total.to_json()


def _as_of(snapshot: dict[str, Any] | None) -> int | None:
    value = None if snapshot is None else snapshot.get("as_of")
    return parse_iso(value) if isinstance(value, str) else None


def compare(
    counts: Iterable[Count],
    snapshots: dict[Key, dict[str, Any]],
    bad: list[BadCount] | None = None,
    include_stale: bool = False,
) -> Report:
    """Compare counts with snapshots and decide each key's correction.

    A count older than its snapshot (``counted_at < as_of``) gets no correction unless
    ``include_stale``: appended to the log, its absolute ``CYCLE_COUNT`` would undo the
    movements the log holds between the count and the snapshot.
    """
    rows: list[Variance] = []
    for count in counts:
        snapshot = snapshots.get(count.key)
        as_of = _as_of(snapshot)
        if snapshot is None:
            timing = NO_SNAPSHOT
        elif as_of is not None and count.event.occurred_at < as_of:
            timing = COUNT_BEFORE_SNAPSHOT
        else:
            timing = COUNT_AFTER_SNAPSHOT
        on_hand = 0 if snapshot is None else int(snapshot["on_hand"])
        if count.event.quantity == on_hand:
            correction = NOT_NEEDED
        elif timing == COUNT_BEFORE_SNAPSHOT and not include_stale:
            correction = WITHHELD_STALE
        else:
            correction = CORRECTION
        rows.append(Variance(count, on_hand, timing, snapshot, correction))
    rows.sort(key=lambda r: (-abs(r.variance), r.count.key))
    by_location: dict[str, Totals] = {}
    total = Totals(None)
    for row in rows:
        location = row.count.event.location_id
        by_location.setdefault(location, Totals(location)).add(row)
        total.add(row)
    locations = sorted(by_location.values(), key=lambda t: (-t.abs_variance, t.location_id or ""))
    return Report(rows, locations, total, list(bad or []))


def correction_line(event: Event) -> bytes:
    """A correction as a canonical JSON event line (times ISO-8601), as logs hold them."""
    record: dict[str, Any] = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "source_system": event.source_system,
        "occurred_at": format_iso(event.occurred_at),
        "item_id": event.item_id,
        "location_id": event.location_id,
        "quantity": event.quantity,
    }
    if event.correlation_id is not None:
        record["correlation_id"] = event.correlation_id
    return orjson.dumps(record)


CSV_COLUMNS: Final = (
    "level",
    "item_id",
    "location_id",
    "counted_quantity",
    "counted_at",
    "on_hand",
    "variance",
    "abs_variance",
    "timing",
    "snapshot_as_of",
    "snapshot_version",
    "snapshot_revision",
    "last_event_id",
    "correction",
    "correction_event_id",
    "line",
    "keys",
    "keys_with_variance",
    "over",
    "short",
    "corrections",
    "withheld",
)


def to_csv(records: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def summary_lines(report: Report, top: int = 10) -> list[str]:
    """The report for people: totals, locations, the largest variances."""
    total = report.total
    superseded = sum(1 for b in report.bad if b.reasons[0].code == SUPERSEDED)
    out = [
        f"reconcile: {total.keys} keys counted, {total.keys_with_variance} with a variance; "
        f"{len(report.bad) - superseded} bad count rows, {superseded} superseded",
        f"total: counted {total.counted:,}, on hand {total.on_hand:,}, net variance "
        f"{total.variance:+,}, absolute {total.abs_variance:,} (over {total.over:,}, "
        f"short {total.short:,}); corrections {total.corrections}, withheld as older than "
        f"the snapshot {total.withheld}",
    ]
    if report.locations:
        out.append(
            f"{'location':<12} {'keys':>7} {'differ':>7} {'counted':>10} {'on_hand':>10} "
            f"{'net':>9} {'abs':>9}"
        )
        out.extend(
            f"{t.location_id or '':<12} {t.keys:>7} {t.keys_with_variance:>7} {t.counted:>10} "
            f"{t.on_hand:>10} {t.variance:>+9} {t.abs_variance:>9}"
            for t in report.locations
        )
    differing = [row for row in report.rows if row.variance]
    if differing:
        out.append(f"largest variances (top {min(top, len(differing))} of {len(differing)}):")
        out.append(
            f"{'item_id':<16} {'location':<10} {'counted':>9} {'on_hand':>9} {'variance':>9}  "
            f"{'counted_at':<24} {'timing':<21} correction"
        )
        for row in differing[:top]:
            event = row.count.event
            out.append(
                f"{event.item_id:<16} {event.location_id:<10} {event.quantity:>9} "
                f"{row.on_hand:>9} {row.variance:>+9}  {format_iso(event.occurred_at):<24} "
                f"{row.timing:<21} {row.correction}"
            )
    return out
