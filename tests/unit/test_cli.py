"""The ``atp`` command line: usage errors, outputs, progress, and the simulator."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from pipelines.cli import COMMANDS, build_parser

ATP = [sys.executable, "-m", "pipelines.cli"]

EVENTS = [
    {
        "event_id": "e1",
        "event_type": "RECEIPT",
        "occurred_at": "2026-05-11T08:00:00Z",
        "item_id": "B",
        "location_id": "DC2",
        "quantity": 10,
    },
    {
        "event_id": "e2",
        "event_type": "RECEIPT",
        "occurred_at": "2026-05-11T09:00:00Z",
        "item_id": "A",
        "location_id": "DC1",
        "quantity": 7,
    },
    {
        "event_id": "e3",
        "event_type": "SHIPMENT",
        "occurred_at": "2026-05-11T09:30:00Z",
        "item_id": "A",
        "location_id": "DC1",
    },
    {
        "event_id": "e4",
        "event_type": "RESERVATION_CREATED",
        "occurred_at": "2026-05-11T10:00:00Z",
        "item_id": "A",
        "location_id": "DC1",
        "quantity": 2,
        "reference_id": "O1",
        "expires_at": "2026-05-11T11:00:00Z",
    },
]


def atp(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ATP, *args], input=stdin, capture_output=True, check=False)


def write_log(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    good = [orjson.dumps(e) for e in EVENTS]
    return write_log(tmp_path, [*good[:2], b"{not json", *good[2:], b""])


def test_every_subcommand_has_help() -> None:
    assert atp("--help").returncode == 0
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = set(action.choices)
    # A module per command, named like it (``channel-sync`` in ``channel_sync.py``).
    assert names == {c.__name__.rsplit(".", 1)[1].replace("_", "-") for c in COMMANDS}
    for name in names:
        result = atp(name, "--help")
        assert result.returncode == 0 and b"usage: atp " + name.encode() in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.jsonl", "--output", "out.jsonl"], b"input file not found"),
        (["--input", "{log}", "--output", "o", "--as-of", "noon"], b"--as-of is not an ISO-8601"),
        (
            ["--input", "{log}", "--output", "o", "--policy", "nope.json", "--channel-output", "c"],
            b"policy file not found",
        ),
        (
            [
                "--input",
                "{log}",
                "--output",
                "o",
                "--policy",
                "{bad_json}",
                "--channel-output",
                "c",
            ],
            b"not valid JSON",
        ),
        (
            [
                "--input",
                "{log}",
                "--output",
                "o",
                "--policy",
                "{bad_share}",
                "--channel-output",
                "c",
            ],
            b"share must be between 0 and 1",
        ),
        (["--input", "{log}", "--output", "o", "--policy", "{bad_share}"], b"go together"),
        (["--input", "{log}", "--output", "/no/such/dir/o.jsonl"], b"cannot write"),
        (["--input", "{log}"], b"the following arguments are required: --output"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], message: bytes, log: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "share.json").write_text(
        '{"channels": [{"channel": "web", "locations": ["DC1"], "share": 2}]}'
    )
    paths = {
        "log": str(log),
        "bad_json": str(tmp_path / "bad.json"),
        "bad_share": str(tmp_path / "share.json"),
    }
    result = subprocess.run(
        [*ATP, "replay", *(a.format(**paths) for a in args)],
        capture_output=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_bad_records_go_to_the_dlq_and_the_run_succeeds(log: Path, tmp_path: Path) -> None:
    out, dlq = tmp_path / "snap.jsonl", tmp_path / "dlq.jsonl"
    result = atp("replay", "--input", str(log), "--output", str(out), "--dlq", str(dlq))
    assert result.returncode == 0, result.stderr
    letters = read_jsonl(dlq)
    assert [(d["line"], d["reason"]) for d in letters] == [
        (3, "UNDECODABLE"),
        (4, "MISSING_QUANTITY"),
    ]
    assert letters[0]["raw"] == "{not json"
    assert letters[1]["event_id"] == "e3" and letters[1]["source_file"] == str(log)
    snapshots = read_jsonl(out)
    assert [(s["item_id"], s["location_id"]) for s in snapshots] == [("A", "DC1"), ("B", "DC2")]
    # Default clock: the largest occurred_at read, 10:00; the reservation expires at 11:00.
    assert snapshots[0]["as_of"] == "2026-05-11T10:00:00Z"
    first = snapshots[0]
    assert (first["reserved"], first["available"], first["version"]) == (2, 5, 2)
    assert b"2 dead letters" in result.stderr


def test_as_of_expires_and_excludes(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "snap.jsonl"
    assert (
        atp(
            "replay", "--input", str(log), "--output", str(out), "--as-of", "2026-05-11T12:00:00Z"
        ).returncode
        == 0
    )
    assert read_jsonl(out)[0]["reserved"] == 0
    assert (
        atp(
            "replay", "--input", str(log), "--output", str(out), "--as-of", "2026-05-11T08:30:00Z"
        ).returncode
        == 0
    )
    assert [(s["item_id"], s["on_hand"]) for s in read_jsonl(out)] == [("B", 10)]


def test_stdin_stdout_and_channels(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        '{"channels": [{"channel": "web", "locations": ["DC1", "DC2"], "share": 0.5, "buffer": 1}]}'
    )
    channels = tmp_path / "channels.jsonl"
    result = atp(
        "replay",
        "--input",
        "-",
        "--output",
        "-",
        "--policy",
        str(policy),
        "--channel-output",
        str(channels),
        stdin=b"\n".join(orjson.dumps(e) for e in EVENTS),
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert read_jsonl(channels) == [
        {"channel": "web", "item_id": "A", "available": 1},  # floor(0.5 * 5) - 1
        {"channel": "web", "item_id": "B", "available": 4},  # floor(0.5 * 10) - 1
    ]


def test_progress_goes_to_stderr(log: Path, tmp_path: Path) -> None:
    result = atp("replay", "--input", str(log), "--output", str(tmp_path / "o"), "--progress")
    assert result.returncode == 0 and b"replay:" in result.stderr and b"100%" in result.stderr
    assert not result.stdout


def test_simulate_is_seeded_and_realistic(tmp_path: Path) -> None:
    first = atp("simulate", "--events", "20000", "--seed", "3", "--skus", "300").stdout
    again = atp("simulate", "--events", "20000", "--seed", "3", "--skus", "300").stdout
    other = atp("simulate", "--events", "20000", "--seed", "4", "--skus", "300").stdout
    assert first == again != other
    lines = first.splitlines()
    assert len(lines) == 20000

    valid, invalid = [], 0
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            invalid += 1
            continue
        valid.append(record)
    types = Counter(r.get("event_type") for r in valid)
    assert set(types) >= {
        "RECEIPT",
        "ADJUSTMENT",
        "CYCLE_COUNT",
        "QUALITY_HOLD",
        "QUALITY_RELEASE",
        "RETURN",
        "RESERVATION_CREATED",
        "RESERVATION_RELEASED",
        "ALLOCATION",
        "SHIPMENT",
        "ORDER_CANCELED",
        "ASN",
        "TRANSFER_SHIPPED",
        "TRANSFER_RECEIVED",
        "SAFETY_STOCK_SET",
    }
    assert {r["source_system"] for r in valid} >= {"ERP", "WMS", "OMS", "ECOM", "EDI", "TMS"}
    ids = Counter(r.get("event_id") for r in valid)
    redelivered = sum(n - 1 for n in ids.values() if n > 1)
    assert 0.01 * 20000 < redelivered < 0.03 * 20000
    locations = {r.get("location_id") for r in valid}
    assert {"DC1", "DC2", "DC3", "ST001"} <= locations
    assert any("expires_at" in r for r in valid) and any("confidence" in r for r in valid)

    log = write_log(tmp_path, lines)
    dlq = tmp_path / "dlq.jsonl"
    assert (
        atp(
            "replay", "--input", str(log), "--output", str(tmp_path / "s"), "--dlq", str(dlq)
        ).returncode
        == 0
    )
    letters = read_jsonl(dlq)
    assert 0.002 * 20000 < len(letters) < 0.01 * 20000
    assert all('"BAD-' in d["raw"] or d["reason"] == "UNDECODABLE" for d in letters)  # type: ignore[operator]
    assert len({d["reason"] for d in letters}) >= 6
