"""The ATP fold: ``apply(state, event)`` for every event type, plus clock-driven expiry
and overdue-supply checks.

Functions take ownership of the state they are given and return it (mutated in place,
for speed). They read nothing but their arguments: no I/O, no wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from state.model import DEFAULT_RETENTION, KeyState, Reservation, Retention, SupplyLine
from transforms import exceptions as exc
from transforms.events import (
    ADJUSTMENT,
    ALLOCATION,
    ASN,
    CYCLE_COUNT,
    ORDER_CANCELED,
    QUALITY_HOLD,
    QUALITY_RELEASE,
    RECEIPT,
    RESERVATION_CREATED,
    RESERVATION_RELEASED,
    RETURN,
    SAFETY_STOCK_SET,
    SHIPMENT,
    TRANSFER_RECEIVED,
    TRANSFER_SHIPPED,
    Event,
)
from transforms.exceptions import ExceptionRecord
from transforms.snapshot import quantities
from transforms.timeutil import DAY_MS, format_iso

DEFAULT_GRACE_MS = 2 * DAY_MS
"""Supply is overdue this long after its ``expected_at`` (the contract's default: 2 days)."""


# Stable codes of ``Outcome.code``, so explanations and tools need not parse the notes.
DUPLICATE_EVENT_ID: Final = "DUPLICATE_EVENT_ID"
CLOSED_REFERENCE: Final = "CLOSED_REFERENCE"
"""A create or allocation for a closed reference: applied (counted) but changed nothing."""
NO_OPEN_RESERVATION: Final = "NO_OPEN_RESERVATION"
"""A release with nothing reserved under its reference: it only closed the reference."""
RELEASE_CLAMPED: Final = "RELEASE_CLAMPED"
"""A quality release of more than was quarantined: quarantined clamped at zero."""


class Outcome(NamedTuple):
    """What one event did at one key."""

    applied: bool
    """False for a duplicate ``event_id``: not applied, not counted in ``version``."""
    note: str | None = None
    """Why an applied event changed less than its type suggests (closed reference, ...)."""
    exceptions: tuple[ExceptionRecord, ...] = ()
    code: str | None = None
    """The stable code of ``note`` (one of the codes above), None when there is no note."""

    @property
    def ignored(self) -> bool:
        """Applied and counted in ``version``, but ignored by the contract's rule."""
        return self.applied and self.code == CLOSED_REFERENCE


APPLIED: Final = Outcome(True)
DUPLICATE: Final = Outcome(False, "duplicate event_id", (), DUPLICATE_EVENT_ID)


@dataclass(frozen=True, slots=True)
class Expired:
    """A soft reservation dropped because the clock reached its ``expires_at``."""

    reference_id: str
    quantity: int
    expires_at: int


def _is_oversold(state: KeyState) -> bool:
    # The contract's condition, read as "commitments exceed sellable stock": without any
    # commitment nothing is oversold, even when on_hand is negative (that has its own kind).
    demand = state.allocated_total + state.reserved_total
    return demand > 0 and demand > state.on_hand - state.quarantined


def _exception(
    kind: str, state: KeyState, event: Event, location_id: str | None, reason: str
) -> ExceptionRecord:
    return ExceptionRecord(
        kind=kind,
        item_id=event.item_id,
        location_id=event.location_id if location_id is None else location_id,
        reason=reason,
        at=event.occurred_at,
        event_id=event.event_id,
        reference_id=event.reference_id,
        quantities=quantities(state),
    )


def _supply(state: KeyState, ref: str, clock: int) -> SupplyLine:
    """The supply line of a reference, marked as touched at ``clock``."""
    line = state.supply.get(ref)
    if line is None:
        line = state.supply[ref] = SupplyLine()
    line.touched_at = clock
    return line


def _close(state: KeyState, ref: str, clock: int, trim_at: int, retention: Retention) -> None:
    """Remember a closed reference (a tombstone), so a late create or allocation loses."""
    state.closed.add(ref, clock)
    state.closed.trim(trim_at - retention.tombstone_horizon_ms, retention.tombstone_max)


def _sweep_supply(state: KeyState, clock: int, horizon_ms: int) -> None:
    # A fully received line changes no quantity; forget it once it is older than the
    # horizon. Sweeping at most once per event-time day keeps hot keys O(1) per event.
    if clock - state.supply_swept_at < DAY_MS:
        return
    state.supply_swept_at = clock
    keep_from = clock - horizon_ms
    stale = [
        ref
        for ref, line in state.supply.items()
        if line.touched_at < keep_from and line.in_transit == 0 and line.inbound == 0
    ]
    for ref in stale:
        del state.supply[ref]


def _drop_reservation(state: KeyState, ref: str) -> bool:
    held = state.reserved.pop(ref, None)
    if held is None:
        return False
    state.reserved_total -= held.quantity
    return True


def _drop_allocation(state: KeyState, ref: str) -> bool:
    units = state.allocated.pop(ref, None)
    if units is None:
        return False
    state.allocated_total -= units
    return True


def apply(
    state: KeyState,
    event: Event,
    location_id: str | None = None,
    retention: Retention = DEFAULT_RETENTION,
    trim_bound: int | None = None,
) -> tuple[KeyState, Outcome]:
    """Fold one valid event into the state of the key ``(event.item_id, location_id)``.

    ``location_id`` defaults to the event's own location. For ``TRANSFER_SHIPPED`` it
    selects the role: the source location loses on-hand, ``to_location_id`` gains in-transit.

    The id memories (dedup, tombstones) forget what is older than their horizon before
    the key's clock, or before ``trim_bound`` if that is earlier. The stream passes its
    watermark: a transfer's destination hears from its origin's partition too, which a
    catch-up may read days ahead, pushing the key's clock past a redelivery that still
    waits in the key's own partition. The watermark never passes that partition.
    """
    # Hot path of every engine: locals and an if-chain ordered by how common types are.
    seen = state.seen
    event_id = event.event_id
    if event_id in seen.members:
        state.duplicates += 1
        return state, DUPLICATE

    clock = state.clock
    clock = event.occurred_at if clock is None or event.occurred_at > clock else clock
    state.clock = clock
    trim_at = clock if trim_bound is None or trim_bound > clock else trim_bound
    seen.add(event_id, clock)
    seen.trim(trim_at - retention.dedup_horizon_ms, retention.dedup_max_ids)
    state.version += 1
    state.revision += 1
    state.last_event_id = event_id
    if event.correlation_id is not None:
        state.last_correlation_id = event.correlation_id

    note: str | None = None
    code: str | None = None
    raised: list[ExceptionRecord] = []
    on_hand_before = state.on_hand
    kind = event.event_type
    q = event.quantity
    ref: str = event.reference_id  # type: ignore[assignment]  # validated per type
    stock_or_demand = True  # whether on_hand, quarantined, allocated or reserved may move

    if kind == RESERVATION_CREATED:
        if ref in state.closed.members:
            note = f"reference {ref} is closed; reservation ignored"
            code = CLOSED_REFERENCE
        else:
            current = state.reserved.get(ref)
            if current is not None:
                if current.quantity != q:
                    raised.append(
                        _exception(
                            exc.RESERVATION_CONFLICT,
                            state,
                            event,
                            location_id,
                            f"reservation {ref} created again with {q}, "
                            f"open with {current.quantity}",
                        )
                    )
                state.reserved_total -= current.quantity
            state.reserved[ref] = Reservation(q, event.expires_at)
            state.reserved_total += q
    elif kind == ALLOCATION:
        if ref in state.closed.members:
            note = f"reference {ref} is closed; allocation ignored"
            code = CLOSED_REFERENCE
        else:
            state.allocated[ref] = state.allocated.get(ref, 0) + q
            state.allocated_total += q
            held = state.reserved.get(ref)
            if held is not None:
                remaining = max(0, held.quantity - q)
                state.reserved_total -= held.quantity - remaining
                held.quantity = remaining
    elif kind == SHIPMENT:
        state.on_hand -= q
        had_reservation = _drop_reservation(state, ref)
        if not _drop_allocation(state, ref) and not had_reservation:
            raised.append(
                _exception(
                    exc.SHIPMENT_WITHOUT_DEMAND,
                    state,
                    event,
                    location_id,
                    f"shipment for {ref} without allocation or reservation",
                )
            )
        _close(state, ref, clock, trim_at, retention)
    elif kind == CYCLE_COUNT:
        state.on_hand = q
    elif kind == RESERVATION_RELEASED:
        if not _drop_reservation(state, ref):
            note = f"no open reservation {ref}; reference closed"
            code = NO_OPEN_RESERVATION
        _close(state, ref, clock, trim_at, retention)
    elif kind == TRANSFER_SHIPPED:
        if location_id is not None and location_id == event.to_location_id:
            stock_or_demand = False
            line = _supply(state, ref, clock)
            line.shipped += q
            if event.expected_at is not None:
                line.transfer_expected_at = event.expected_at
                line.transfer_overdue_reported = False
            _sweep_supply(state, clock, retention.supply_horizon_ms)
        else:
            state.on_hand -= q
    elif kind == ASN:
        stock_or_demand = False
        line = _supply(state, ref, clock)
        line.asn_quantity = q
        line.asn_expected_at = event.expected_at
        line.asn_confidence = event.confidence
        line.asn_overdue_reported = False
        _sweep_supply(state, clock, retention.supply_horizon_ms)
    elif kind in (RECEIPT, TRANSFER_RECEIVED):
        state.on_hand += q
        if ref is not None:  # a RECEIPT may have no reference
            _supply(state, ref, clock).received += q
            _sweep_supply(state, clock, retention.supply_horizon_ms)
    elif kind == ADJUSTMENT:
        state.on_hand += q
    elif kind == RETURN:
        state.on_hand += q
        state.quarantined += q
    elif kind == QUALITY_HOLD:
        state.quarantined += q
    elif kind == QUALITY_RELEASE:
        if q > state.quarantined:
            note = f"release of {q} exceeds quarantined {state.quarantined}; clamped"
            code = RELEASE_CLAMPED
        state.quarantined = max(0, state.quarantined - q)
    elif kind == ORDER_CANCELED:
        _drop_reservation(state, ref)
        _drop_allocation(state, ref)
        _close(state, ref, clock, trim_at, retention)
    elif kind == SAFETY_STOCK_SET:
        stock_or_demand = False
        state.safety_stock = q
    else:  # validation admits only the types above
        raise ValueError(f"unknown event_type {kind!r}")

    if stock_or_demand:
        if on_hand_before >= 0 > state.on_hand:
            raised.append(
                _exception(
                    exc.NEGATIVE_ON_HAND,
                    state,
                    event,
                    location_id,
                    f"on_hand became {state.on_hand}",
                )
            )
        oversold = _is_oversold(state)
        if oversold and not state.oversold:
            raised.append(
                _exception(
                    exc.OVERSOLD,
                    state,
                    event,
                    location_id,
                    "allocated + reserved exceed on_hand - quarantined",
                )
            )
        state.oversold = oversold
    if note is None and not raised:
        return state, APPLIED
    return state, Outcome(True, note, tuple(raised), code)


def expire(state: KeyState, clock: int) -> tuple[KeyState, list[Expired]]:
    """Drop soft reservations whose ``expires_at`` the clock has reached.

    The reference stays open (expiry is not a release). ``version`` does not move;
    ``revision`` moves once per distinct ``expires_at`` dropped, which is what an
    event-time timer per expiry instant does in the stream.
    """
    expired = [
        Expired(ref, r.quantity, r.expires_at)
        for ref, r in state.reserved.items()
        if r.expires_at is not None and r.expires_at <= clock
    ]
    if expired:
        for item in expired:
            _drop_reservation(state, item.reference_id)
        state.revision += len({item.expires_at for item in expired})
        state.oversold = _is_oversold(state)
    return state, expired


def next_expiry(state: KeyState) -> int | None:
    """The earliest pending ``expires_at``: when an event-time timer should fire."""
    times = [r.expires_at for r in state.reserved.values() if r.expires_at is not None]
    return min(times) if times else None


def overdue_supply(
    state: KeyState,
    item_id: str,
    location_id: str,
    clock: int,
    grace_ms: int = DEFAULT_GRACE_MS,
) -> tuple[KeyState, list[ExceptionRecord]]:
    """Report supply not received by ``expected_at`` plus the grace period, once per line.

    A replaced ASN or a new transfer date re-arms the report. Reporting changes no
    quantity, so neither ``version`` nor ``revision`` moves.
    """
    found: list[tuple[str, str, int, int]] = []  # (ref, what, units, expected_at)
    for ref in sorted(state.supply):
        line = state.supply[ref]
        due = line.transfer_expected_at
        if (
            not line.transfer_overdue_reported
            and line.in_transit > 0
            and due is not None
            and due + grace_ms < clock
        ):
            line.transfer_overdue_reported = True
            found.append((ref, "transfer", line.in_transit, due))
        due = line.asn_expected_at
        if (
            not line.asn_overdue_reported
            and line.inbound > 0
            and due is not None
            and due + grace_ms < clock
        ):
            line.asn_overdue_reported = True
            found.append((ref, "ASN", line.inbound, due))
    if not found:
        return state, []
    now = quantities(state)
    records = [
        ExceptionRecord(
            kind=exc.SUPPLY_OVERDUE,
            item_id=item_id,
            location_id=location_id,
            reason=f"{what} {ref}: {qty} units expected {format_iso(due)} not received",
            at=clock,
            reference_id=ref,
            quantities=now,
        )
        for ref, what, qty, due in found
    ]
    return state, records


def next_overdue_check(state: KeyState, grace_ms: int = DEFAULT_GRACE_MS) -> int | None:
    """The earliest clock at which ``overdue_supply`` would report something new."""
    times: list[int] = []
    for line in state.supply.values():
        if (
            not line.transfer_overdue_reported
            and line.in_transit > 0
            and line.transfer_expected_at is not None
        ):
            times.append(line.transfer_expected_at + grace_ms + 1)
        if not line.asn_overdue_reported and line.inbound > 0 and line.asn_expected_at is not None:
            times.append(line.asn_expected_at + grace_ms + 1)
    return min(times) if times else None
