"""The fold's Outcome codes: why an event changed less than its type suggests."""

from __future__ import annotations

from state.model import KeyState
from transforms import events as ev
from transforms.events import Event
from transforms.fold import (
    APPLIED,
    CLOSED_REFERENCE,
    DUPLICATE,
    DUPLICATE_EVENT_ID,
    NO_OPEN_RESERVATION,
    RELEASE_CLAMPED,
    Outcome,
    apply,
)

T0 = 1_778_486_400_000  # 2026-05-11T08:00:00Z


def _event(event_id: str, kind: str, quantity: int = 1, ref: str | None = None) -> Event:
    return Event(event_id, kind, "A", "DC1", quantity, T0, reference_id=ref)


def _outcomes(*events: Event) -> list[Outcome]:
    state = KeyState()
    return [apply(state, event)[1] for event in events]


def test_plain_event_has_no_code() -> None:
    (outcome,) = _outcomes(_event("e1", ev.RECEIPT, 5))
    assert outcome is APPLIED
    assert outcome.code is None
    assert not outcome.ignored


def test_duplicate_has_its_code_and_is_not_applied() -> None:
    _, second = _outcomes(_event("e1", ev.RECEIPT, 5), _event("e1", ev.RECEIPT, 5))
    assert second is DUPLICATE
    assert (second.applied, second.code) == (False, DUPLICATE_EVENT_ID)
    assert not second.ignored  # a duplicate is not applied at all; ignored means applied


def test_create_and_allocation_for_closed_reference_are_ignored() -> None:
    outcomes = _outcomes(
        _event("e1", ev.RESERVATION_RELEASED, 1, "R1"),
        _event("e2", ev.RESERVATION_CREATED, 3, "R1"),
        _event("e3", ev.ALLOCATION, 2, "R1"),
    )
    assert outcomes[0].code == NO_OPEN_RESERVATION
    assert not outcomes[0].ignored  # it closed the reference
    for outcome in outcomes[1:]:
        assert outcome.applied
        assert outcome.code == CLOSED_REFERENCE
        assert outcome.ignored
        assert outcome.note is not None and "R1 is closed" in outcome.note


def test_clamped_release_keeps_its_note() -> None:
    state = KeyState()
    apply(state, _event("e1", ev.QUALITY_HOLD, 2))
    _, outcome = apply(state, _event("e2", ev.QUALITY_RELEASE, 5))
    assert (outcome.applied, outcome.code, outcome.ignored) == (True, RELEASE_CLAMPED, False)
    assert state.quarantined == 0


def test_code_comes_with_exceptions() -> None:
    state = KeyState()
    apply(state, _event("e1", ev.RECEIPT, 1))
    apply(state, _event("e2", ev.SHIPMENT, 1, "O1"))
    _, outcome = apply(state, _event("e3", ev.ALLOCATION, 4, "O1"))
    assert outcome.code == CLOSED_REFERENCE
    assert outcome.exceptions == ()  # ignored: nothing moved, nothing to raise
