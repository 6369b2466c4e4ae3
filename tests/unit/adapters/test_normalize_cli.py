"""``atp normalize`` on files: every system's sample through ``atp replay``, dead letters,
usage errors. The samples tell one story across the systems; the snapshots must add up."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from pipelines.cli import main
from tests.unit.adapters.support import DATA
from transforms.adapters import ADAPTERS
from transforms.validation import parse_event

SAMPLES = {
    "erp": "erp.jsonl",
    "wms": "wms.jsonl",
    "oms": "oms.jsonl",
    "ecom": "ecom.jsonl",
    "tms": "tms.jsonl",
    "edi856": "asn.x12",
}


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def normalize(tmp_path: Path, system: str, *extra: str) -> tuple[int, Path, Path]:
    out, dlq = tmp_path / f"{system}.events.jsonl", tmp_path / f"{system}.dlq.jsonl"
    code = main(
        [
            "normalize",
            "--system",
            system,
            "--input",
            str(DATA / SAMPLES[system]),
            "--output",
            str(out),
            "--dlq",
            str(dlq),
            *extra,
        ]
    )
    return code, out, dlq


def test_every_sample_normalizes_and_replays_to_the_quantities_of_the_story(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[dict[str, Any]] = []
    for system in SAMPLES:
        code, out, _ = normalize(tmp_path, system)
        assert code == 0
        events += lines(out)
    summaries = capsys.readouterr().err.splitlines()
    assert summaries == [
        "atp normalize erp: 20 records, 20 events, 2 dead letters (NOT_MAPPABLE 1, "
        "UNKNOWN_CODE 1), 2 ignored (NO_ATP_EFFECT 1, SPECIAL_STOCK 1)",
        "atp normalize wms: 9 records, 7 events, 1 dead letters (UNKNOWN_CODE 1), "
        "1 ignored (NO_ATP_EFFECT 1)",
        "atp normalize oms: 11 records, 11 events, 1 dead letters (UNKNOWN_CODE 1), "
        "1 ignored (NO_ATP_EFFECT 1)",
        "atp normalize ecom: 6 records, 5 events, 1 dead letters (MISSING_FIELD 1), 0 ignored",
        "atp normalize tms: 5 records, 3 events, 1 dead letters (UNKNOWN_CODE 1), "
        "1 ignored (NO_ATP_EFFECT 1)",
        "atp normalize edi856: 4 records, 4 events, 1 dead letters (MISSING_FIELD 1), 0 ignored",
    ]
    assert all(not isinstance(parse_event(e), list) for e in events)
    assert len({e["event_id"] for e in events}) == len(events) == 50

    # The events topic would interleave the systems by time.
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in sorted(events, key=_time)))
    snapshots, exceptions = tmp_path / "snapshots.jsonl", tmp_path / "exceptions.jsonl"
    replayed = [
        "replay",
        *("--input", str(log), "--output", str(snapshots), "--exceptions", str(exceptions)),
    ]
    assert main(replayed) == 0
    fields = ("on_hand", "quarantined", "allocated", "reserved", "in_transit", "inbound")
    got = {(s["item_id"], s["location_id"]): tuple(s[f] for f in fields) for s in lines(snapshots)}
    assert got == {
        # 144 received against the ASN (inbound 0); 10 shipped by the WMS (ORD-1001) and
        # 10 by the ERP (ORD-1003, both allocated first); 24 to DC02, 20 to ST12; scrap 2,
        # count loss 3, gain 1, receipt reversal 6: 70. Blocked 10, unblocked 4: 6 held.
        # The cart hold was converted; the other one expired.
        ("SKU-000001", "DC01"): (70, 6, 0, 0, 0, 0),
        # The one-step transfer arrives at once; QC held 5 and released 2.
        ("SKU-000001", "DC02"): (24, 3, 0, 0, 0, 0),
        # 20 shipped on the stock transport order, 18 received.
        ("SKU-000001", "ST12"): (18, 0, 0, 0, 2, 0),
        # 60 into quality inspection, 40 released, 2 returned from inspection; issues
        # 5 + 4, one reversed, a bin count one short: 49. RSV-77 expired, RSV-78 was
        # released, RSV-79 (3) and the cart hold (2) are open.
        ("SKU-000002", "DC01"): (49, 18, 0, 5, 0, 0),
        # Counted 40; ORD-1002 cancelled; ORD-1004 shipped 2 and 5 went to ST12; the
        # replaced ASN announces 36.
        ("SKU-000003", "DC02"): (33, 0, 0, 0, 0, 36),
        ("SKU-000003", "ST12"): (0, 0, 0, 0, 5, 0),
    }
    assert exceptions.read_bytes() == b""
    st12 = next(s for s in lines(snapshots) if s["location_id"] == "ST12")
    assert st12["supply"][0]["expected_at"] == "2026-05-15T08:00:00Z"  # the TMS's ETA


def _time(event: dict[str, Any]) -> str:
    return str(event["occurred_at"])


def test_dead_letters_carry_reason_source_and_the_raw_record(tmp_path: Path) -> None:
    assert normalize(tmp_path, "erp")[0] == 0
    dead = lines(tmp_path / "erp.dlq.jsonl")
    assert [(d["reason"], d["line"]) for d in dead] == [("UNKNOWN_CODE", 17), ("NOT_MAPPABLE", 18)]
    raw = (DATA / "erp.jsonl").read_bytes().splitlines()[16].decode()
    assert dead[0]["raw"] == raw
    assert dead[0]["source_file"].endswith("erp.jsonl")
    assert dead[0]["message"].startswith("line 0001: GoodsMovementType 'Z91' is not mapped")

    assert normalize(tmp_path, "edi856")[0] == 0
    (edi,) = lines(tmp_path / "edi856.dlq.jsonl")
    assert edi["reason"] == "MISSING_FIELD"
    assert (edi["line"], edi["interchange_control_number"]) == (72, "000000912")
    assert edi["raw"].startswith("ST|856|0002~")


def test_skip_codes_leave_a_fact_to_another_system(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = normalize(tmp_path, "erp", "--skip-codes", "601,641")
    assert code == 0
    documents = {e["event_id"].split(":")[2] for e in lines(out)}
    assert "4900000101" in documents
    assert {"4900000114", "4900000104"}.isdisjoint(documents)  # the 601 and the 641
    assert "SKIPPED_CODE 2" in capsys.readouterr().err


def test_blank_lines_and_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = (DATA / "wms.jsonl").read_bytes().splitlines()[0]
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(b"\n" + raw + b"\n\n")))
    assert main(["normalize", "--system", "wms", "--input", "-", "--output", "-"]) == 0
    out, err = capsys.readouterr()
    assert orjson.loads(out)["event_id"] == "WMS:88120031"
    assert err.strip().endswith("0 ignored, 2 blank lines")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.jsonl", "--output", "x"], "input file not found"),
        (["--output", "x"], "either --input"),
        (["--input", "a", "--from-topic", "t"], "either --input"),
        (["--input", "a"], "--input needs --output"),
        (["--from-topic", "t", "--output", "x"], "--output and --dlq are for --input"),
        (["--input", "a", "--output", "x", "--timezone", "Mars/Base"], "unknown time zone"),
        (["--input", "a", "--output", "x", "--skip-codes", "601,999"], "999 not in"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a").write_text("")
    fixed = [str(tmp_path / "a") if arg == "a" else arg for arg in args]
    assert main(["normalize", "--system", "erp", *fixed]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_every_system_is_a_choice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["normalize", "--system", "sap", "--input", "x", "--output", "y"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ADAPTERS)
