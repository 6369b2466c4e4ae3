"""``atp reconcile``: count files, variances, totals, corrections and metrics."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines import reconcile as rc
from pipelines.replay import Replayer
from pipelines.simulate import SimConfig, simulate
from tests.golden.vectors import log_lines, scenarios
from transforms.events import CYCLE_COUNT, Key
from transforms.timeutil import format_iso, parse_iso

ATP = [sys.executable, "-m", "pipelines.cli"]
T = "2026-05-11T12:00:00Z"


def _replay(lines: list[bytes], as_of: int | None = None) -> dict[Key, dict[str, Any]]:
    replayer = Replayer(as_of=as_of)
    replayer.feed(lines)
    return {(s.item_id, s.location_id): s.to_json() for s in replayer.finish().snapshots}


def _csv(*rows: str) -> bytes:
    return ("item_id,location_id,counted_quantity,counted_at\n" + "\n".join(rows) + "\n").encode()


def test_csv_rows_valid_bad_and_superseded() -> None:
    data = _csv(
        f"A,DC1,5,{T}",
        f"B,DC1,abc,{T}",
        f"C,,3,{T}",
        f"D,DC1,-2,{T}",
        "E,DC1,4,yesterday",
        "F,DC1,4,",
        f"G,DC1,5.0,{T}",
        ",,,",
        "A,DC1,6,2026-05-11T11:00:00Z",  # older than line 2: superseded itself
        f"H,DC2,1,{T},extra",
        f"H,DC2, 7 ,{T}",
    )
    counts, bad = rc.read_counts(data, "csv")
    assert [(c.key, c.event.quantity, c.line) for c in counts] == [
        (("A", "DC1"), 5, 2),
        (("H", "DC2"), 7, 12),
    ]
    assert [(b.line, b.reasons[0].code) for b in bad] == [
        (3, "QUANTITY_NOT_INTEGER"),
        (4, "MISSING_LOCATION_ID"),
        (5, "NEGATIVE_QUANTITY"),
        (6, "INVALID_TIMESTAMP"),
        (7, "MISSING_OCCURRED_AT"),
        (8, "QUANTITY_NOT_INTEGER"),
        (10, rc.SUPERSEDED),
        (11, "UNDECODABLE"),
    ]
    messages = {b.line: b.reasons[0].message for b in bad}
    assert messages[3] == "counted_quantity must be an integer: 'abc'"
    assert messages[7] == "counted_at is missing"
    assert messages[10] == "superseded by line 2 (counted_at 2026-05-11T12:00:00Z)"
    assert bad[-1].raw == f"H,DC2,1,{T},extra"
    event = counts[0].event
    assert (event.event_type, event.occurred_at, event.source_system) == (
        CYCLE_COUNT,
        parse_iso(T),
        "RECONCILE",
    )


def test_jsonl_rows_and_later_count_wins() -> None:
    data = b"\n".join(
        [
            orjson.dumps(
                {"item_id": "A", "location_id": "DC1", "counted_quantity": 5, "counted_at": T}
            ),
            b"",
            b"{oops",
            b"[1]",
            orjson.dumps(
                {"item_id": "A", "location_id": "DC1", "counted_quantity": 2.5, "counted_at": T}
            ),
            orjson.dumps(
                {
                    "item_id": "A",
                    "location_id": "DC1",
                    "counted_quantity": 9,
                    "counted_at": "2026-05-11T13:00:00Z",
                }
            ),
            orjson.dumps(
                {"item_id": "A", "location_id": "DC1", "counted_quantity": "9", "counted_at": T}
            ),
        ]
    )
    counts, bad = rc.read_counts(data, "jsonl", correlation_id="count-42")
    assert [(c.line, c.event.quantity, c.event.correlation_id) for c in counts] == [
        (6, 9, "count-42")
    ]
    assert [(b.line, b.reasons[0].code) for b in bad] == [
        (1, rc.SUPERSEDED),
        (3, "UNDECODABLE"),
        (4, "UNDECODABLE"),
        (5, "QUANTITY_NOT_INTEGER"),
        (7, "QUANTITY_NOT_INTEGER"),  # JSON counts are typed: "9" is not an integer
    ]


def test_csv_header_must_name_every_column() -> None:
    with pytest.raises(rc.CountFileError, match="counted_at"):
        rc.read_counts(b"item_id,location_id,counted_quantity\nA,DC1,3\n", "csv")


def test_format_sniffing() -> None:
    assert rc.sniff_format("counts.csv", b"{") == "csv"
    assert rc.sniff_format("counts.jsonl", b"item_id") == "jsonl"
    assert rc.sniff_format("counts.txt", b'  {"item_id"') == "jsonl"
    assert rc.sniff_format("counts", b"item_id,location_id") == "csv"


def test_correction_ids_are_derived_from_the_count() -> None:
    first = rc.read_counts(_csv(f"A,DC1,5,{T}"), "csv")[0][0].event.event_id
    again = rc.read_counts(_csv(f"A,DC1,5,{T}"), "csv")[0][0].event.event_id
    other = rc.read_counts(_csv(f"A,DC1,6,{T}"), "csv")[0][0].event.event_id
    assert first == again != other
    assert first.startswith("CC-")


def _snap(item: str, loc: str, on_hand: int, as_of: str = T) -> dict[str, Any]:
    return {"item_id": item, "location_id": loc, "on_hand": on_hand, "as_of": as_of}


def test_compare_timing_corrections_and_order() -> None:
    counts, _ = rc.read_counts(
        _csv(
            f"A,DC1,5,{T}",  # equal: nothing to correct
            f"B,DC1,2,{T}",  # short 8
            "C,DC2,20,2026-05-11T11:00:00Z",  # over 10, but older than the snapshot
            f"D,DC2,3,{T}",  # no snapshot: everything counted is a variance
        ),
        "csv",
    )
    snapshots = {
        ("A", "DC1"): _snap("A", "DC1", 5),
        ("B", "DC1"): _snap("B", "DC1", 10, "2026-05-11T10:00:00Z"),
        ("C", "DC2"): _snap("C", "DC2", 10),
    }
    report = rc.compare(counts, snapshots)
    rows = [(r.count.key, r.variance, r.timing, r.correction) for r in report.rows]
    assert rows == [
        (("C", "DC2"), 10, rc.COUNT_BEFORE_SNAPSHOT, rc.WITHHELD_STALE),
        (("B", "DC1"), -8, rc.COUNT_AFTER_SNAPSHOT, rc.CORRECTION),
        (("D", "DC2"), 3, rc.NO_SNAPSHOT, rc.CORRECTION),
        (("A", "DC1"), 0, rc.COUNT_AFTER_SNAPSHOT, rc.NOT_NEEDED),
    ]
    assert [e.item_id for e in report.corrections()] == ["B", "D"]
    assert [t.to_json() for t in report.locations] == [
        {
            "level": "location",
            "location_id": "DC2",
            "keys": 2,
            "keys_with_variance": 2,
            "counted_quantity": 23,
            "on_hand": 10,
            "variance": 13,
            "abs_variance": 13,
            "over": 13,
            "short": 0,
            "corrections": 1,
            "withheld": 1,
        },
        {
            "level": "location",
            "location_id": "DC1",
            "keys": 2,
            "keys_with_variance": 1,
            "counted_quantity": 7,
            "on_hand": 15,
            "variance": -8,
            "abs_variance": 8,
            "over": 0,
            "short": 8,
            "corrections": 1,
            "withheld": 0,
        },
    ]
    total = report.total.to_json()
    assert (total["level"], total["variance"], total["abs_variance"], total["keys"]) == (
        "total",
        5,
        21,
        4,
    )
    records = list(report.records())
    assert [r["level"] for r in records] == ["key"] * 4 + ["location"] * 2 + ["total"]

    stale = rc.compare(counts, snapshots, include_stale=True)
    assert [e.item_id for e in stale.corrections()] == ["B", "C", "D"]


def _counts_for(
    snapshots: dict[Key, dict[str, Any]], rng: random.Random, at: int, share: float = 1.0
) -> dict[Key, int]:
    counted: dict[Key, int] = {}
    for key, snap in sorted(snapshots.items()):
        if rng.random() <= share:
            counted[key] = max(0, snap["on_hand"] + rng.choice((0, 0, 1, -1, 4, -7, 30)))
    return counted


def _count_lines(counted: dict[Key, int], at: int) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "item_id": item,
                "location_id": loc,
                "counted_quantity": qty,
                "counted_at": format_iso(at),
            }
        )
        for (item, loc), qty in counted.items()
    ]


SCENARIOS = [s for s in scenarios() if s["expected"]["snapshots"]]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_golden_corrections_bring_on_hand_to_the_count(scenario: dict[str, Any]) -> None:
    lines = log_lines(scenario)
    as_of = None if scenario.get("as_of") is None else parse_iso(scenario["as_of"])
    snapshots = _replay(lines, as_of)
    clock = parse_iso(next(iter(snapshots.values()))["as_of"])
    counted = _counts_for(snapshots, random.Random(scenario["name"]), clock)
    counts, bad = rc.read_counts(b"\n".join(_count_lines(counted, clock)), "jsonl")
    assert bad == []
    report = rc.compare(counts, snapshots)
    corrections = [rc.correction_line(e) for e in report.corrections()]
    after = _replay(lines + corrections, as_of)
    assert {key: after[key]["on_hand"] for key in counted} == counted
    # Twice is once: the second copy of each correction is a duplicate.
    again = _replay(lines + corrections + corrections, as_of)
    for key, snap in after.items():
        assert again[key]["duplicates"] == snap["duplicates"] + (key in report_keys(report))
        assert {**again[key], "duplicates": snap["duplicates"]} == snap


def report_keys(report: rc.Report) -> set[Key]:
    return {(e.item_id, e.location_id) for e in report.corrections()}


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ATP, "reconcile", *args], capture_output=True, check=False)


def test_cli_on_simulated_data(tmp_path: Path) -> None:
    log = list(simulate(SimConfig(events=5_000, seed=5, skus=80, stores=3)))
    snapshots = _replay(log)
    (tmp_path / "snapshots.jsonl").write_bytes(
        b"".join(orjson.dumps(s) + b"\n" for s in snapshots.values())
    )
    clock = parse_iso(next(iter(snapshots.values()))["as_of"])
    rng = random.Random(3)
    counted = _counts_for(snapshots, rng, clock + 60_000, share=0.3)
    rows = [f"{i},{loc},{q},{format_iso(clock + 60_000)}" for (i, loc), q in counted.items()]
    rows.append(f"SKU-000001,DC1,many,{format_iso(clock)}")
    (tmp_path / "counts.csv").write_bytes(_csv(*rows))
    result = _cli(
        "--counts",
        str(tmp_path / "counts.csv"),
        "--snapshots",
        str(tmp_path / "snapshots.jsonl"),
        "--output",
        str(tmp_path / "report.csv"),
        "--dlq",
        str(tmp_path / "bad.jsonl"),
        "--metrics-file",
        str(tmp_path / "metrics.prom"),
        "--corrections-output",
        str(tmp_path / "corrections.jsonl"),
        "--top",
        "3",
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout.decode().splitlines()
    differing = sum(1 for key, q in counted.items() if q != snapshots[key]["on_hand"])
    assert summary[0] == (
        f"reconcile: {len(counted)} keys counted, {differing} with a variance; "
        "1 bad count rows, 0 superseded"
    )
    assert summary[-1] == f"corrections: {differing} (not published; see --publish-corrections)"

    report = (tmp_path / "report.csv").read_text().splitlines()
    assert report[0].startswith("level,item_id,location_id,counted_quantity,counted_at,on_hand")
    keys = [line.split(",") for line in report[1:] if line.startswith("key,")]
    assert len(keys) == len(counted)
    variances = [int(cells[7]) for cells in keys]
    assert variances == sorted(variances, reverse=True)
    assert report[-1].startswith("total,")

    (bad,) = [orjson.loads(line) for line in (tmp_path / "bad.jsonl").read_bytes().splitlines()]
    assert (bad["reason"], bad["line"]) == ("QUANTITY_NOT_INTEGER", len(rows) + 1)

    families = {
        f.name: f for f in text_string_to_metric_families((tmp_path / "metrics.prom").read_text())
    }
    abs_by_location = {
        s.labels["location_id"]: s.value
        for s in families["atp_reconcile_abs_variance_units"].samples
    }
    expected_abs: dict[str, int] = {}
    for (_, loc), q in counted.items():
        expected_abs[loc] = expected_abs.get(loc, 0) + abs(q - snapshots[(_, loc)]["on_hand"])
    assert abs_by_location == pytest.approx(expected_abs)
    (bad_sample,) = families["atp_reconcile_bad_rows"].samples
    assert (bad_sample.labels["reason"], bad_sample.value) == ("QUANTITY_NOT_INTEGER", 1)

    corrections = (tmp_path / "corrections.jsonl").read_bytes().splitlines()
    assert len(corrections) == differing
    after = _replay(log + corrections)
    assert {key: after[key]["on_hand"] for key in counted} == counted


def test_cli_usage_errors(tmp_path: Path) -> None:
    counts = tmp_path / "counts.csv"
    counts.write_bytes(b"item,location\nA,DC1\n")
    snaps = tmp_path / "snaps.jsonl"
    snaps.write_bytes(orjson.dumps(_snap("A", "DC1", 1)) + b"\n")
    out = str(tmp_path / "r.jsonl")
    missing_columns = _cli("--counts", str(counts), "--snapshots", str(snaps), "--output", out)
    assert missing_columns.returncode == 2
    assert b"header lacks item_id, location_id, counted_quantity, counted_at" in (
        missing_columns.stderr
    )
    no_source = _cli("--counts", str(counts), "--output", out)
    assert no_source.returncode == 2
    counts.write_bytes(_csv(f"A,DC1,1,{T}"))
    snaps.write_bytes(b"not a snapshot\n")
    bad_snaps = _cli("--counts", str(counts), "--snapshots", str(snaps), "--output", out)
    assert bad_snaps.returncode == 2
    assert bad_snaps.stderr.decode().strip().endswith("snaps.jsonl:1: not a snapshot line")
