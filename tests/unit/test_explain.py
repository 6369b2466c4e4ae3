"""``atp explain``: the steps behind one key's snapshot, checked against ``atp replay``."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines import explain as ex
from pipelines.dead_letters import DeadLetter
from pipelines.replay import Replayer
from pipelines.simulate import SimConfig, simulate
from tests.golden.vectors import log_lines, scenarios
from transforms.events import Key
from transforms.fold import CLOSED_REFERENCE, DUPLICATE_EVENT_ID
from transforms.timeutil import parse_iso

ATP = [sys.executable, "-m", "pipelines.cli"]
SCENARIOS = scenarios()


def _explain(lines: list[bytes], key: Key, as_of: int | None = None) -> ex.Explanation:
    explainer = ex.Explainer(key[0], key[1], as_of=as_of)
    # Two chunks, numbered on, as the command feeds a file.
    half = len(lines) // 2
    explainer.feed(lines[:half])
    explainer.feed(lines[half:], first_line=half + 1)
    return explainer.finish()


def _replay(lines: list[bytes], as_of: int | None = None) -> tuple[dict[Key, Any], list[Any]]:
    dead: list[DeadLetter] = []
    replayer = Replayer(as_of=as_of, on_dead_letter=dead.append)
    replayer.feed(lines)
    result = replayer.finish()
    return {(s.item_id, s.location_id): s.to_json() for s in result.snapshots}, dead


@pytest.fixture(scope="module")
def simulated() -> list[bytes]:
    config = SimConfig(
        events=6_000, seed=11, skus=60, stores=4, duplicate_rate=0.05, malformed_rate=0.02
    )
    return list(simulate(config))


def _interesting_keys(lines: list[bytes], count: int) -> list[Key]:
    """The busiest keys, keys reached as a transfer's destination, keys with bad records."""
    busy: Counter[Key] = Counter()
    picked: list[Key] = []
    for raw in lines:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        item, loc = record.get("item_id"), record.get("location_id")
        if isinstance(item, str) and isinstance(loc, str):
            busy[(item, loc)] += 1
            to = record.get("to_location_id")
            if isinstance(to, str) and len(picked) < count // 3:
                picked.append((item, to))
            if str(record.get("event_id", "")).startswith("BAD") and len(picked) < count // 2:
                picked.append((item, loc))
    picked.extend(key for key, _ in busy.most_common(count))
    return list(dict.fromkeys(picked))[:count]


@pytest.mark.parametrize("as_of", [None, "2026-05-06T12:00:00Z"])
def test_final_snapshot_is_the_replays(simulated: list[bytes], as_of: str | None) -> None:
    clock = None if as_of is None else parse_iso(as_of)
    snapshots, _ = _replay(simulated, clock)
    keys = _interesting_keys(simulated, 24)
    statuses: Counter[str] = Counter()
    for key in keys:
        explanation = _explain(simulated, key, clock)
        assert explanation.snapshot is not None, key
        assert explanation.snapshot.to_json() == snapshots[key], key
        statuses.update(step.status for step in explanation.steps)
        # The last step that leaves quantities states the snapshot's quantities.
        last = explanation.steps[-1].quantities
        assert last is not None
        snap = snapshots[key]
        assert all(snap[name] == value for name, value in last.items()), key
    # The sample is varied enough to show every kind of step the log holds.
    assert {ex.APPLIED, ex.DUPLICATE, ex.DEAD_LETTER, ex.EXPIRED} <= set(statuses)
    if as_of is not None:
        assert statuses[ex.AFTER_AS_OF] > 0


def test_versions_and_duplicates_add_up(simulated: list[bytes]) -> None:
    snapshots, _ = _replay(simulated)
    for key in _interesting_keys(simulated, 8):
        explanation = _explain(simulated, key)
        counts = explanation.counts()
        snap = snapshots[key]
        applied = counts.get(ex.APPLIED, 0) + counts.get(ex.NOTE, 0) + counts.get(ex.IGNORED, 0)
        assert applied == snap["version"], key
        assert counts.get(ex.DUPLICATE, 0) == snap["duplicates"], key


def _loads_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_golden_vectors(scenario: dict[str, Any]) -> None:
    lines = log_lines(scenario)
    as_of = None if scenario.get("as_of") is None else parse_iso(scenario["as_of"])
    snapshots, dead = _replay(lines, as_of)
    for key, snapshot in snapshots.items():
        explanation = _explain(lines, key, as_of)
        assert explanation.snapshot is not None
        assert explanation.snapshot.to_json() == snapshot
        # Every dead letter that names the key is listed with the replay's reason.
        listed = {(s.line, s.code) for s in explanation.steps if s.status == ex.DEAD_LETTER}
        for letter in dead:
            raw = _loads_or_none(letter.raw)
            if (
                isinstance(raw, dict)
                and raw.get("item_id") == key[0]
                and key[1] in (raw.get("location_id"), raw.get("to_location_id"))
            ):
                assert (letter.source["line"], letter.reason) in listed


def _scenario(name: str) -> dict[str, Any]:
    return next(s for s in SCENARIOS if s["name"] == name)


def test_ignored_allocation_after_shipment() -> None:
    explanation = _explain(
        log_lines(_scenario("allocation_after_shipment_ignored")), ("SKU-1", "DC1")
    )
    steps = explanation.steps
    assert [s.status for s in steps] == [ex.APPLIED] * 4 + [ex.IGNORED]
    assert steps[-1].code == CLOSED_REFERENCE
    assert steps[-1].reason is not None and "O1 is closed" in steps[-1].reason
    assert steps[-1].quantities == steps[-2].quantities  # ignored: nothing moved


def test_transfer_duplicate_at_both_keys() -> None:
    lines = log_lines(_scenario("transfer_duplicate_at_both_keys"))
    source = _explain(lines, ("SKU-1", "DC2")).steps
    destination = _explain(lines, ("SKU-1", "DC1")).steps
    assert [(s.status, s.role) for s in source] == [
        (ex.APPLIED, None),
        (ex.APPLIED, ex.SOURCE),
        (ex.DUPLICATE, ex.SOURCE),
    ]
    assert [(s.status, s.role, s.line) for s in destination] == [
        (ex.APPLIED, ex.DESTINATION, 2),
        (ex.DUPLICATE, ex.DESTINATION, 3),
    ]
    duplicate = destination[1]
    assert (duplicate.first_line, duplicate.code) == (2, DUPLICATE_EVENT_ID)
    assert destination[0].quantities is not None
    assert destination[0].quantities["in_transit"] == 4
    assert source[1].quantities is not None and source[1].quantities["on_hand"] == 6


def test_clock_steps_expiry_and_overdue() -> None:
    scenario = _scenario("exception_supply_overdue")
    lines = log_lines(scenario)
    explanation = _explain(lines, ("SKU-1", "DC1"), parse_iso(scenario["as_of"]))
    overdue = [s for s in explanation.steps if s.status == ex.OVERDUE]
    assert overdue and all(s.exceptions for s in overdue)
    assert {s.reference_id for s in overdue} == {"A1"}

    expiring = [
        b'{"event_id":"R1","event_type":"RESERVATION_CREATED","occurred_at":"2026-05-11T08:00:00Z",'
        b'"item_id":"A","location_id":"DC1","quantity":2,"reference_id":"O1",'
        b'"expires_at":"2026-05-11T09:00:00Z"}',
        b'{"event_id":"R2","event_type":"RECEIPT","occurred_at":"2026-05-11T10:00:00Z",'
        b'"item_id":"B","location_id":"DC1","quantity":1}',
    ]
    steps = _explain(expiring, ("A", "DC1")).steps
    assert [s.status for s in steps] == [ex.APPLIED, ex.EXPIRED]
    assert steps[0].quantities is not None and steps[0].quantities["reserved"] == 2
    assert steps[1].quantities is not None and steps[1].quantities["reserved"] == 0
    assert steps[1].reason is not None and "clock 2026-05-11T10:00:00Z" in steps[1].reason


def test_unknown_key_has_no_snapshot() -> None:
    explanation = _explain(log_lines(SCENARIOS[0]), ("NOPE", "DC1"))
    assert explanation.snapshot is None
    assert explanation.steps == []
    assert "snapshot: none" in ex.render_text(explanation, [])[-1]


def test_select_by_event_and_correlation_id() -> None:
    steps = [
        ex.Step(ex.APPLIED, line=1, event_id="E1", correlation_id="C1"),
        ex.Step(ex.APPLIED, line=2, event_id="E2", correlation_id="C2"),
        ex.Step(ex.DUPLICATE, line=3, event_id="E2", correlation_id="C2"),
        ex.Step(ex.EXPIRED, reference_id="O1"),
    ]
    assert ex.select(steps) == steps
    assert [s.line for s in ex.select(steps, event_ids=["E2"])] == [2, 3]
    assert [s.line for s in ex.select(steps, correlation_ids=["C1"])] == [1]
    assert [s.line for s in ex.select(steps, ["E1"], ["C2"])] == [1, 2, 3]


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ATP, "explain", *args], capture_output=True, check=False)


def test_cli_text_and_json(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    lines = log_lines(_scenario("allocation_after_shipment_ignored"))
    log.write_bytes(b"\n".join([*lines, b'{"event_id":"X","item_id":"SKU-1","location_id":"DC1"}']))
    text = _cli("SKU-1", "DC1", "--input", str(log))
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode().splitlines()
    assert out[0].startswith("SKU-1 @ DC1: ")
    assert out[-3].endswith("IGNORED reference O1 is closed; allocation ignored")
    assert "DEAD LETTER UNKNOWN_EVENT_TYPE: unknown event_type: None" in out[-2]
    assert out[-1].startswith("snapshot: {")

    as_json = _cli("SKU-1", "DC1", "--input", str(log), "--json", "--event-id", "E5")
    assert as_json.returncode == 0, as_json.stderr
    records = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["status"] for r in records] == [ex.IGNORED, "SNAPSHOT"]
    assert records[0]["quantities"]["allocated"] == 0
    replayed = _replay(lines)[0][("SKU-1", "DC1")]
    assert records[1]["snapshot"] == replayed
    assert records[1]["counts"] == {ex.APPLIED: 4, ex.IGNORED: 1, ex.DEAD_LETTER: 1}


def test_cli_usage_errors(tmp_path: Path) -> None:
    missing = _cli("A", "DC1", "--input", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2
    assert missing.stderr.decode().count("\n") == 1
    log = tmp_path / "e.jsonl"
    log.write_bytes(b"")
    bad_time = _cli("A", "DC1", "--input", str(log), "--as-of", "yesterday")
    assert bad_time.returncode == 2
    assert b"--as-of" in bad_time.stderr


def test_escaped_item_id_is_not_skipped_with_as_of() -> None:
    # With --as-of, lines that cannot name the item are skipped unread; an escaped id
    # (U+0055 is "U") must still be read.
    lines = [
        b'{"event_id":"E1","event_type":"RECEIPT","occurred_at":"2026-05-11T08:00:00Z",'
        b'"item_id":"SK\\u0055-1","location_id":"DC1","quantity":3}',
        b'{"event_id":"E2","event_type":"RECEIPT","occurred_at":"2026-05-11T08:00:00Z",'
        b'"item_id":"SKU-2","location_id":"DC1","quantity":3}',
    ]
    as_of = parse_iso("2026-05-11T09:00:00Z")
    explanation = _explain(lines, ("SKU-1", "DC1"), as_of)
    assert explanation.snapshot is not None
    assert explanation.snapshot.to_json() == _replay(lines, as_of)[0][("SKU-1", "DC1")]
