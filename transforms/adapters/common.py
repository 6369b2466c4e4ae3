"""What every adapter shares: options, results, field readers and the event builder.

An adapter maps one raw unit (a JSON record, or an X12 transaction set) to canonical
event dicts, all-or-nothing: a unit with any problem is dead-lettered whole, with every
problem found, so a partly mapped document never looks complete. Every event is checked
with ``parse_event`` before it leaves, so nothing an adapter emits is rejected later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from transforms.adapters import reasons
from transforms.timeutil import datetime_to_millis, format_iso
from transforms.validation import Violation, parse_event

T = TypeVar("T")
R = TypeVar("R")

EACH_UNITS: Final = frozenset({"EA", "UN", "PC"})
"""Units of measure that count single units: each, unit, piece (X12 and ISO codes)."""


@dataclass(frozen=True, slots=True)
class Options:
    """How to read one source: its clock's time zone, and codes to leave to another system."""

    timezone: str = "UTC"
    """Time zone of source times written without an offset (SAP dates, X12 dates)."""
    skip_codes: frozenset[str] = frozenset()
    """Known codes mapped to nothing, because another system feeds that fact."""


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome for one raw unit: events, or a dead letter, or ignored."""

    raw: bytes
    events: tuple[dict[str, Any], ...] = ()
    violations: tuple[Violation, ...] = ()
    ignored: str | None = None
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dead(self) -> bool:
        return bool(self.violations)


@dataclass(frozen=True, slots=True)
class Adapter:
    """One source system's dialect."""

    system: str
    """The ``--system`` name."""
    source_system: str
    """``source_system`` of its events."""
    codes: frozenset[str]
    """Every code of its mapping table, for ``--skip-codes``."""
    line_oriented: bool
    """True when a file holds one raw record per line (JSON lines)."""
    normalize: Callable[[bytes, Options], list[Result]]
    """Map one raw message (a JSON record, or X12 interchanges) to results."""


class MappingError(Exception):
    """The problems that stop a record, or a part of it, from being mapped."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.violations: tuple[Violation, ...] = (Violation(code, message),)

    @classmethod
    def of(cls, violations: Iterable[Violation]) -> MappingError:
        found = tuple(violations)
        rejected = cls(found[0].code, found[0].message)
        rejected.violations = found
        return rejected


def each(parts: Iterable[T], mapper: Callable[[T], R], label: Callable[[int, T], str]) -> list[R]:
    """Map every part of a record; if any fails, one ``MappingError`` with every part's
    problems, each message prefixed with the part's label (``line 2: ...``)."""
    out: list[R] = []
    found: list[Violation] = []
    for index, part in enumerate(parts):
        try:
            out.append(mapper(part))
        except MappingError as err:
            prefix = label(index, part)
            found.extend(Violation(v.code, f"{prefix}: {v.message}") for v in err.violations)
    if found:
        raise MappingError.of(found)
    return out


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """An IANA time zone; ``ValueError`` for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone: {name!r}") from None


def load_object(raw: bytes) -> dict[str, Any]:
    """A raw JSON record, which must be an object."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise MappingError(reasons.UNDECODABLE, f"not valid JSON: {err}") from None
    if not isinstance(record, dict):
        raise MappingError(reasons.UNDECODABLE, "record is not a JSON object")
    return record


def text(record: Mapping[str, Any], name: str) -> str:
    """A required identifier or code. Integers are accepted as their digits."""
    value = record.get(name)
    if value is None or value == "":
        raise MappingError(reasons.MISSING_FIELD, f"{name} is missing")
    if type(value) is int:
        return str(value)
    if not isinstance(value, str):
        raise MappingError(reasons.INVALID_FIELD, f"{name} must be a string: {value!r}")
    return value.strip() or _missing(name)


def optional_text(record: Mapping[str, Any], name: str) -> str | None:
    """An optional identifier or code; blank counts as absent (SAP pads with spaces)."""
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text(record, name)


def _missing(name: str) -> NoReturn:
    raise MappingError(reasons.MISSING_FIELD, f"{name} is blank")


def code(record: Mapping[str, Any], name: str, table: Mapping[str, Any]) -> str:
    """A code that must be in the mapping table; anything else is never guessed."""
    value = text(record, name)
    if value not in table:
        known = ", ".join(sorted(table))
        raise MappingError(reasons.UNKNOWN_CODE, f"{name} {value!r} is not mapped (known: {known})")
    return value


def obj(record: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    if value is None:
        raise MappingError(reasons.MISSING_FIELD, f"{name} is missing")
    if not isinstance(value, dict):
        raise MappingError(reasons.INVALID_FIELD, f"{name} must be an object")
    return value


def objects(record: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """A non-empty list of objects (lines, items, stops)."""
    value = record.get(name)
    if not value:
        raise MappingError(reasons.MISSING_FIELD, f"{name} is missing or empty")
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MappingError(reasons.INVALID_FIELD, f"{name} must be a list of objects")
    return value


_DECIMAL: Final = re.compile(r"\s*\+?(\d+)(?:\.(\d*))?\s*")


def units(value: object, name: str) -> int:
    """A non-negative whole number of units, from a JSON number or a decimal string.

    Direction never comes from a sign: each source says it with a code (debit/credit,
    event type), so a negative quantity is invalid everywhere.
    """
    if type(value) is int:
        if value < 0:
            raise MappingError(reasons.INVALID_FIELD, f"{name} must not be negative: {value}")
        return value
    if type(value) is float:
        if not math.isfinite(value) or value < 0:
            raise MappingError(reasons.INVALID_FIELD, f"{name} is not a quantity: {value!r}")
        if not value.is_integer():
            raise MappingError(reasons.FRACTIONAL_QUANTITY, f"{name} is not whole units: {value}")
        return int(value)
    if isinstance(value, str):
        match = _DECIMAL.fullmatch(value)
        if match is None:
            raise MappingError(reasons.INVALID_FIELD, f"{name} is not a quantity: {value!r}")
        if (match.group(2) or "").strip("0"):
            raise MappingError(reasons.FRACTIONAL_QUANTITY, f"{name} is not whole units: {value}")
        return int(match.group(1))
    if value is None or value == "":
        raise MappingError(reasons.MISSING_FIELD, f"{name} is missing")
    raise MappingError(reasons.INVALID_FIELD, f"{name} is not a quantity: {value!r}")


def each_unit(value: object, name: str) -> None:
    """A unit of measure that counts single units; other units need a conversion we lack."""
    if value is None or value == "":
        raise MappingError(reasons.MISSING_FIELD, f"{name} is missing")
    if value not in EACH_UNITS:
        raise MappingError(
            reasons.UNSUPPORTED_UNIT,
            f"{name} {value!r} is not a single unit ({', '.join(sorted(EACH_UNITS))})",
        )


def local_millis(moment: datetime, options: Options) -> int:
    """Epoch millis of a time; one without an offset is read in the source's time zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(options.timezone))
    return datetime_to_millis(moment)


def iso_time(record: Mapping[str, Any], name: str, options: Options) -> int:
    """A required ISO-8601 time."""
    value = text(record, name)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MappingError(
            reasons.INVALID_FIELD, f"{name} is not an ISO-8601 time: {value!r}"
        ) from None
    return local_millis(moment, options)


def optional_iso_time(record: Mapping[str, Any], name: str, options: Options) -> int | None:
    if record.get(name) in (None, ""):
        return None
    return iso_time(record, name, options)


def event(
    *,
    event_id: str,
    event_type: str,
    source_system: str,
    occurred_at: int,
    item_id: str,
    location_id: str,
    quantity: int,
    reference_id: str | None = None,
    to_location_id: str | None = None,
    expected_at: int | None = None,
    expires_at: int | None = None,
    channel: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """A canonical event as JSON: ISO-8601 UTC times, absent fields left out."""
    record: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "source_system": source_system,
        "occurred_at": format_iso(occurred_at),
        "item_id": item_id,
        "location_id": location_id,
        "quantity": quantity,
    }
    optional = (
        ("reference_id", reference_id),
        ("to_location_id", to_location_id),
        ("expected_at", None if expected_at is None else format_iso(expected_at)),
        ("expires_at", None if expires_at is None else format_iso(expires_at)),
        ("channel", channel),
        ("correlation_id", correlation_id),
    )
    record.update((name, value) for name, value in optional if value is not None)
    return record


def finish(
    raw: bytes,
    events: Iterable[dict[str, Any]],
    *,
    problems: Iterable[Violation] = (),
    ignored: str = reasons.NO_ATP_EFFECT,
    source: Mapping[str, Any] | None = None,
) -> Result:
    """The result of a unit: dead if anything is wrong, else its events checked by the
    contract's own validation; a unit with neither is ignored with ``ignored``."""
    where = dict(source or {})
    found = list(problems)
    if found:
        return Result(raw, violations=tuple(found), source=where)
    mapped = tuple(events)
    for record in mapped:
        checked = parse_event(record)
        if isinstance(checked, list):
            found.extend(
                Violation(v.code, f"mapped event {record['event_id']}: {v.message}")
                for v in checked
            )
    if found:
        return Result(raw, violations=tuple(found), source=where)
    if not mapped:
        return Result(raw, ignored=ignored, source=where)
    return Result(raw, events=mapped, source=where)


def dead(raw: bytes, rejected: MappingError, source: Mapping[str, Any] | None = None) -> Result:
    return Result(raw, violations=rejected.violations, source=dict(source or {}))


Mapper = Callable[[dict[str, Any], Options], "tuple[list[dict[str, Any]], str]"]
"""Maps a decoded JSON record to its events and the reason used if there are none."""


def json_normalizer(mapper: Mapper) -> Callable[[bytes, Options], list[Result]]:
    """``Adapter.normalize`` for systems whose raw unit is one JSON object."""

    def normalize(raw: bytes, options: Options) -> list[Result]:
        try:
            events, ignored = mapper(load_object(raw), options)
        except MappingError as err:
            return [dead(raw, err)]
        return [finish(raw, events, ignored=ignored)]

    return normalize


def key_name(item_id: str, location_id: str) -> str:
    """The ``item@location`` part of fan-out event ids."""
    return f"{item_id}@{location_id}"
