"""The golden vectors, checked against the engine-free replay (the fold itself)."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.dead_letters import DeadLetter
from pipelines.replay import Replayer
from tests.golden.vectors import log_lines, scenarios
from transforms.channels import parse_policy
from transforms.exceptions import ExceptionRecord
from transforms.promise import DEFAULT_CONFIDENCE, promise
from transforms.timeutil import format_iso, parse_iso

SCENARIOS = scenarios()


def _run(scenario: dict[str, Any]) -> tuple[Any, list[DeadLetter], list[ExceptionRecord]]:
    dead: list[DeadLetter] = []
    raised: list[ExceptionRecord] = []
    as_of = scenario.get("as_of")
    replayer = Replayer(
        as_of=None if as_of is None else parse_iso(as_of),
        on_dead_letter=dead.append,
        on_exception=raised.append,
    )
    replayer.feed(log_lines(scenario))
    policy = parse_policy(scenario["policy"]) if "policy" in scenario else None
    return replayer.finish(policy), dead, raised


def test_vectors_are_well_formed() -> None:
    names = [s["name"] for s in SCENARIOS]
    assert len(names) == len(set(names)), "scenario names must be unique"
    for scenario in SCENARIOS:
        assert scenario["rules"], scenario["name"]
        assert "snapshots" in scenario["expected"], scenario["name"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_golden_vector(scenario: dict[str, Any]) -> None:
    result, dead, raised = _run(scenario)
    expected = scenario["expected"]

    actual = {(s.item_id, s.location_id): s.to_json() for s in result.snapshots}
    wanted = {(s["item_id"], s["location_id"]): s for s in expected["snapshots"]}
    assert sorted(actual) == sorted(wanted), "keys differ"
    for key, fields in wanted.items():
        got = {name: actual[key][name] for name in fields}
        assert got == fields, key

    got_dead = [{"line": d.source["line"], "reason": d.reason} for d in dead]
    assert got_dead == expected.get("dead_letters", [])

    if "channels" in expected:
        assert [c.to_json() for c in result.channels] == expected["channels"]

    if "exceptions" in expected:
        got_exceptions = [
            {
                "kind": e.kind,
                "item_id": e.item_id,
                "location_id": e.location_id,
                "event_id": e.event_id,
                "reference_id": e.reference_id,
            }
            for e in raised
        ]
        assert got_exceptions == expected["exceptions"]

    by_key = {(s.item_id, s.location_id): s for s in result.snapshots}
    for case in expected.get("promises", []):
        answer = promise(
            by_key[(case["item_id"], case["location_id"])],
            case["quantity"],
            parse_iso(case["at"]),
            case.get("confidence", DEFAULT_CONFIDENCE),
        )
        date = None if answer.date is None else format_iso(answer.date)
        assert (answer.promise_class, date) == (case["class"], case["date"]), case
