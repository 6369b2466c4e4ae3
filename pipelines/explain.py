"""Explanations: which events, in log order, produced one key's snapshot, and why each
did what it did.

A thin adapter like the replay: it decodes every line with the replay's decoder, folds
the key's events with ``transforms.fold.apply``, and runs expiry and the overdue check
at the replay's clock, so its final snapshot is the one ``atp replay`` writes for that
key. It only records, per event, the fold's own ``Outcome`` and the quantities after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from pipelines.dead_letters import decode_json_event
from state.model import DEFAULT_RETENTION, KeyState, Retention
from transforms.events import TRANSFER_SHIPPED, Event
from transforms.exceptions import ExceptionRecord
from transforms.fold import DEFAULT_GRACE_MS, apply, expire, overdue_supply
from transforms.snapshot import Snapshot, quantities, snapshot_of
from transforms.timeutil import format_iso, parse_iso

# What a step is, one per line of an explanation.
APPLIED: Final = "APPLIED"
"""Applied as its type says."""
NOTE: Final = "NOTE"
"""Applied, with a remark from the fold (a clamped release, a release of nothing)."""
IGNORED: Final = "IGNORED"
"""Applied and counted in ``version``, but the contract ignores it (closed reference)."""
DUPLICATE: Final = "DUPLICATE"
"""A redelivered ``event_id``: not applied, not counted in ``version``."""
DEAD_LETTER: Final = "DEAD_LETTER"
"""An invalid record naming this key: dead-lettered, never applied."""
AFTER_AS_OF: Final = "AFTER_AS_OF"
"""A valid event after ``--as-of``: not applied."""
EXPIRED: Final = "EXPIRED"
"""A soft reservation dropped at the clock (no event: ``version`` does not move)."""
OVERDUE: Final = "OVERDUE"
"""Supply reported overdue at the clock (no quantity changes)."""

SOURCE: Final = "source"
DESTINATION: Final = "destination"


@dataclass(frozen=True, slots=True)
class Step:
    """One line of an explanation: an event (or a clock action) at the key."""

    status: str
    line: int | None = None
    event_id: str | None = None
    event_type: str | None = None
    occurred_at: int | None = None
    quantity: int | None = None
    reference_id: str | None = None
    correlation_id: str | None = None
    role: str | None = None
    """For transfers: whether this key is the ``source`` or the ``destination``."""
    code: str | None = None
    """The fold's outcome code or the first validation reason code."""
    reason: str | None = None
    quantities: dict[str, int] | None = None
    """The contract quantities after this step (None before the key's first event)."""
    exceptions: tuple[ExceptionRecord, ...] = ()
    first_line: int | None = None
    """For a duplicate: the line where the event was applied."""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "line": self.line,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "occurred_at": None if self.occurred_at is None else format_iso(self.occurred_at),
            "quantity": self.quantity,
            "reference_id": self.reference_id,
            "correlation_id": self.correlation_id,
            "role": self.role,
            "code": self.code,
            "reason": self.reason,
            "first_line": self.first_line,
            "quantities": self.quantities,
            "exceptions": [
                {"kind": e.kind, "reason": e.reason, "event_id": e.event_id}
                for e in self.exceptions
            ],
        }


@dataclass(slots=True)
class Explanation:
    item_id: str
    location_id: str
    clock: int | None
    steps: list[Step]
    snapshot: Snapshot | None
    """The key's final snapshot, as ``atp replay`` writes it; None without a valid event."""
    lines: int = 0

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for step in self.steps:
            counted[step.status] = counted.get(step.status, 0) + 1
        return counted


def _status(applied: bool, ignored: bool, note: str | None) -> str:
    if not applied:
        return DUPLICATE
    if ignored:
        return IGNORED
    return APPLIED if note is None else NOTE


def _json_needle(value: str) -> bytes | None:
    """The JSON string of ``value`` as it must appear in a line without escapes, or None
    when the value itself needs escaping (then no line may be skipped unread)."""
    encoded = orjson.dumps(value)
    return None if b"\\" in encoded else encoded


@dataclass
class Explainer:
    """Feeds a whole log, folds only the key's events, records a step for each."""

    item_id: str
    location_id: str
    as_of: int | None = None
    retention: Retention = DEFAULT_RETENTION
    grace_ms: int = DEFAULT_GRACE_MS
    state: KeyState | None = None
    steps: list[Step] = field(default_factory=list)
    max_occurred_at: int | None = None
    lines: int = 0
    _applied_at: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._needle = _json_needle(self.item_id)

    def feed(self, lines: Iterable[bytes], first_line: int = 1) -> None:
        """Read raw JSON lines, numbered from ``first_line``, in log order."""
        # With --as-of the clock is known, so a line that cannot name the item needs no
        # decoding. Without it every valid event moves the clock and must be read.
        needle = self._needle if self.as_of is not None else None
        line_no = first_line - 1
        for line_no, raw in enumerate(lines, first_line):
            if needle is not None and needle not in raw and b"\\" not in raw:
                continue
            decoded = decode_json_event(raw)
            if isinstance(decoded, Event):
                self._event(decoded, line_no)
            elif raw.strip():
                self._dead_letter(decoded[0].code, decoded[0].message, raw, line_no)
        self.lines = max(self.lines, line_no)

    def _event(self, event: Event, line_no: int) -> None:
        role = self._role(event)
        occurred = event.occurred_at
        if self.as_of is not None and occurred > self.as_of:
            if role is not None:
                self._step(AFTER_AS_OF, event, line_no, role, reason="after --as-of")
            return
        if self.max_occurred_at is None or occurred > self.max_occurred_at:
            self.max_occurred_at = occurred
        if role is None:
            return
        state = self.state
        if state is None:
            state = self.state = KeyState()
        outcome = apply(state, event, self.location_id, self.retention)[1]
        status = _status(outcome.applied, outcome.ignored, outcome.note)
        reason, first = outcome.note, self._applied_at.get(event.event_id)
        if outcome.applied:
            if first is not None and reason is None:
                # The fold's dedup memory is bounded (see docs/semantics.md).
                reason = f"applied again: line {first} is beyond the dedup memory"
            self._applied_at[event.event_id] = line_no
        self._step(
            status,
            event,
            line_no,
            role,
            code=outcome.code,
            reason=reason,
            exceptions=outcome.exceptions,
            first_line=None if outcome.applied else first,
        )

    def _role(self, event: Event) -> str | None:
        """How the event touches the key: ``""`` at its own location, ``source`` or
        ``destination`` of a transfer, None not at all (the fan-out of
        ``transforms.events.locations_touched``)."""
        if event.item_id != self.item_id:
            return None
        if event.location_id == self.location_id:
            return SOURCE if event.event_type == TRANSFER_SHIPPED else ""
        if event.event_type == TRANSFER_SHIPPED and event.to_location_id == self.location_id:
            return DESTINATION
        return None

    def _step(
        self,
        status: str,
        event: Event,
        line_no: int,
        role: str,
        code: str | None = None,
        reason: str | None = None,
        exceptions: tuple[ExceptionRecord, ...] = (),
        first_line: int | None = None,
    ) -> None:
        self.steps.append(
            Step(
                status,
                line=line_no,
                event_id=event.event_id,
                event_type=event.event_type,
                occurred_at=event.occurred_at,
                quantity=event.quantity,
                reference_id=event.reference_id,
                correlation_id=event.correlation_id,
                role=role or None,
                code=code,
                reason=reason,
                quantities=None if self.state is None else quantities(self.state),
                exceptions=exceptions,
                first_line=first_line,
            )
        )

    def _dead_letter(self, code: str, message: str, raw: bytes, line_no: int) -> None:
        """Record an invalid line if it names this key (best effort: it may not parse)."""
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict) or record.get("item_id") != self.item_id:
            return
        if record.get("location_id") == self.location_id:
            role = ""
        elif record.get("to_location_id") == self.location_id:
            role = DESTINATION
        else:
            return
        quantity = record.get("quantity")
        self.steps.append(
            Step(
                DEAD_LETTER,
                line=line_no,
                event_id=_text(record, "event_id"),
                event_type=_text(record, "event_type"),
                occurred_at=_time(record.get("occurred_at")),
                quantity=quantity if type(quantity) is int else None,
                reference_id=_text(record, "reference_id"),
                correlation_id=_text(record, "correlation_id"),
                role=role or None,
                code=code,
                reason=message,
                quantities=None if self.state is None else quantities(self.state),
            )
        )

    @property
    def clock(self) -> int | None:
        """The replay's clock: ``--as-of``, else the largest valid ``occurred_at`` read."""
        return self.as_of if self.as_of is not None else self.max_occurred_at

    def finish(self) -> Explanation:
        """Expire and check overdue supply at the clock, as ``atp replay`` does, then snapshot."""
        clock, state = self.clock, self.state
        steps = list(self.steps)
        snapshot = None
        if state is not None:
            if clock is not None:
                steps.extend(self._clock_steps(state, clock))
            snapshot = snapshot_of(state, self.item_id, self.location_id, clock)
        return Explanation(self.item_id, self.location_id, clock, steps, snapshot, self.lines)

    def _clock_steps(self, state: KeyState, clock: int) -> list[Step]:
        """What the clock does after the last event: expiry, then the overdue check."""
        _, expired = expire(state, clock)
        after = quantities(state)
        steps = [
            Step(
                EXPIRED,
                occurred_at=item.expires_at,
                quantity=item.quantity,
                reference_id=item.reference_id,
                reason=f"reservation {item.reference_id} of {item.quantity} expired at "
                f"{format_iso(item.expires_at)} (clock {format_iso(clock)})",
                quantities=after,
            )
            for item in sorted(expired, key=lambda e: (e.expires_at, e.reference_id))
        ]
        _, overdue = overdue_supply(state, self.item_id, self.location_id, clock, self.grace_ms)
        steps.extend(
            Step(
                OVERDUE,
                occurred_at=clock,
                reference_id=record.reference_id,
                code=record.kind,
                reason=record.reason,
                quantities=record.quantities,
                exceptions=(record,),
            )
            for record in overdue
        )
        return steps


def _text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) else None


def _time(value: object) -> int | None:
    try:
        return parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        return None


def select(
    steps: Iterable[Step], event_ids: Iterable[str] = (), correlation_ids: Iterable[str] = ()
) -> list[Step]:
    """The steps of the given events or correlation ids (all steps when none is given);
    e.g. a snapshot's ``last_event_id`` and ``correlation_id``."""
    wanted_events, wanted_corr = set(event_ids), set(correlation_ids)
    if not wanted_events and not wanted_corr:
        return list(steps)
    return [s for s in steps if s.event_id in wanted_events or s.correlation_id in wanted_corr]


_QTY_HEADERS: Final = {
    "on_hand": "on_hand",
    "quarantined": "quar",
    "allocated": "alloc",
    "reserved": "resv",
    "safety_stock": "safety",
    "in_transit": "transit",
    "inbound": "inbound",
    "available": "avail",
}


def _outcome_text(step: Step) -> str:
    status, reason = step.status, step.reason
    if status == APPLIED:
        text = "applied" if reason is None else f"applied: {reason}"
    elif status == NOTE:
        text = f"applied, NOTE: {reason}"
    elif status == DUPLICATE:
        text = f"DUPLICATE of line {step.first_line}: not applied ({reason})"
    elif status == DEAD_LETTER:
        text = f"DEAD LETTER {step.code}: {reason}"
    elif status == AFTER_AS_OF:
        text = "not applied: after --as-of"
    else:
        text = f"{status} {reason}"
    if step.role:
        text += f" [as {step.role}]"
    for record in step.exceptions:
        if record.kind not in text:
            text += f"; raises {record.kind}: {record.reason}"
    return text


def render_text(explanation: Explanation, steps: list[Step]) -> list[str]:
    """The explanation for people: one line per step, then the snapshot."""
    clock = "-" if explanation.clock is None else format_iso(explanation.clock)
    counts = explanation.counts()
    summary = ", ".join(f"{counts[s]} {s.lower()}" for s in sorted(counts)) or "no event"
    out = [
        f"{explanation.item_id} @ {explanation.location_id}: {summary}; "
        f"clock {clock}; {explanation.lines} lines read"
    ]
    if len(steps) != len(explanation.steps):
        out.append(f"(showing {len(steps)} of {len(explanation.steps)} steps)")
    id_width = max([8, *(len(s.event_id or "") for s in steps)])
    header = (
        f"{'line':>7}  {'occurred_at':<24}  {'event_id':<{id_width}}  {'event_type':<20}  "
        f"{'qty':>6}  " + " ".join(f"{h:>7}" for h in _QTY_HEADERS.values()) + "  outcome"
    )
    out.append(header)
    for step in steps:
        when = "" if step.occurred_at is None else format_iso(step.occurred_at)
        amounts = step.quantities or {}
        cells = " ".join(
            f"{amounts[name]:>7}" if name in amounts else f"{'':>7}" for name in _QTY_HEADERS
        )
        qty = "" if step.quantity is None else str(step.quantity)
        kind = step.event_type or ("(clock)" if step.status in (EXPIRED, OVERDUE) else "")
        out.append(
            f"{step.line if step.line is not None else '':>7}  {when:<24}  "
            f"{step.event_id or '':<{id_width}}  {kind:<20}  {qty:>6}  "
            f"{cells}  {_outcome_text(step)}"
        )
    if explanation.snapshot is None:
        out.append("snapshot: none (no valid event at this key)")
    else:
        out.append("snapshot: " + orjson.dumps(explanation.snapshot.to_json()).decode())
    return out
