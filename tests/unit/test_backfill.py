"""``atp backfill`` against ``atp replay``: the same files, byte for byte.

The golden vectors run through the in-process DirectRunner (one pipeline each); the
simulated log runs through the command's default, two worker processes.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

from pipelines.archive import archive_schema
from pipelines.backfill_sources import log_order, plan_json_lines
from pipelines.cli import main
from pipelines.dead_letters import decode_json_event
from pipelines.wire import snapshot_record
from state.schemas import INVENTORY_EVENT, parsed_schema
from tests.golden.vectors import log_lines, scenarios
from transforms.events import Event
from transforms.timeutil import format_iso, parse_iso
from transforms.validation import event_to_record

ATP = [sys.executable, "-m", "pipelines.cli"]
OUTPUTS = ("snapshots", "channels", "dead_letters", "exceptions")
SCENARIOS = scenarios()


def _args(log: Path, out: Path, policy: Path | None, as_of: str | None) -> list[str]:
    args = [
        "--input",
        str(log),
        "--output",
        str(out / "snapshots"),
        "--dlq",
        str(out / "dead_letters"),
        "--exceptions",
        str(out / "exceptions"),
    ]
    if policy is not None:
        args += ["--policy", str(policy), "--channel-output", str(out / "channels")]
    if as_of is not None:
        args += ["--as-of", as_of]
    return args


def _outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS if (out / name).exists()}


def _replay_and_backfill(
    tmp_path: Path, log: Path, policy: Path | None, as_of: str | None, backfill_extra: list[str]
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    replayed, backfilled = tmp_path / "replay", tmp_path / "backfill"
    replayed.mkdir()
    backfilled.mkdir()
    assert main(["replay", *_args(log, replayed, policy, as_of), "--no-progress"]) == 0
    result = subprocess.run(
        [*ATP, "backfill", *_args(log, backfilled, policy, as_of), *backfill_extra],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return _outputs(replayed), _outputs(backfilled)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_golden_vector_backfill_equals_replay(scenario: dict[str, Any], tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in log_lines(scenario)))
    policy = None
    if "policy" in scenario:
        policy = tmp_path / "policy.json"
        policy.write_bytes(orjson.dumps(scenario["policy"]))
    replayed, backfilled = tmp_path / "replay", tmp_path / "backfill"
    replayed.mkdir()
    backfilled.mkdir()
    as_of = scenario.get("as_of")
    assert main(["replay", *_args(log, replayed, policy, as_of), "--no-progress"]) == 0
    # Tiny splits, so that even a short log is read by several readers.
    backfill = ["backfill", *_args(log, backfilled, policy, as_of), "--split-mb", "1"]
    assert main([*backfill, "--running-mode", "in_memory", "--no-progress"]) == 0
    assert _outputs(backfilled) == _outputs(replayed)
    assert _outputs(replayed)["snapshots"] or not scenario["expected"]["snapshots"]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """100k simulated events: redeliveries, malformed records, late arrivals, transfers."""
    folder = tmp_path_factory.mktemp("sim")
    log, policy = folder / "events.jsonl", folder / "policy.json"
    assert (
        main(
            [
                "simulate",
                "--events",
                "100000",
                "--seed",
                "5",
                "--output",
                str(log),
                "--policy-output",
                str(policy),
            ]
        )
        == 0
    )
    return log, policy


@pytest.mark.parametrize("as_of", [None, "2026-05-08T12:00:00Z"])
def test_simulated_log_backfill_equals_replay(
    simulated: tuple[Path, Path], as_of: str | None, tmp_path: Path
) -> None:
    log, policy = simulated
    # The command's defaults: two worker processes; splits of 4 MiB give ~6 readers.
    replayed, backfilled = _replay_and_backfill(
        tmp_path, log, policy, as_of, ["--split-mb", "4", "--no-progress"]
    )
    assert set(backfilled) == set(OUTPUTS)
    for name in OUTPUTS:
        assert backfilled[name] == replayed[name], name
    dead = replayed["dead_letters"].splitlines()
    assert len(dead) > 300, "the log must carry malformed records"
    snapshots = [orjson.loads(line) for line in replayed["snapshots"].splitlines()]
    assert sum(s["duplicates"] for s in snapshots) > 500, "the log must carry redeliveries"


def test_avro_archive_and_avro_output_equal_replay(
    simulated: tuple[Path, Path], tmp_path: Path
) -> None:
    """Events archived in log order into several Avro files fold to the replay's snapshots."""
    log, _ = simulated
    # The archive holds the valid events (what an archiver of the topic keeps), in order.
    events = [
        e for e in map(decode_json_event, log.read_bytes().splitlines()) if isinstance(e, Event)
    ]
    assert len(events) > 95_000
    archive = tmp_path / "archive"
    parts = [events[:40_000], events[40_000:70_000], events[70_000:]]
    for day, part in enumerate(parts, 1):
        folder = archive / f"event_date=2026-05-0{day}"
        folder.mkdir(parents=True)
        with (folder / "part-0.avro").open("wb") as out:
            fastavro.writer(out, parsed_schema(INVENTORY_EVENT), map(event_to_record, part))

    # The reference: replay of the same events, in archive order.
    archived_log = tmp_path / "archived.jsonl"
    archived_log.write_bytes(
        b"".join(orjson.dumps(event_json(e)) + b"\n" for part in parts for e in part)
    )
    reference = tmp_path / "reference.jsonl"
    assert main(["replay", "--input", str(archived_log), "--output", str(reference)]) == 0

    backfilled = tmp_path / "backfill.avro"
    result = subprocess.run(
        [
            *ATP,
            "backfill",
            "--archive",
            str(archive),
            "--output",
            str(backfilled),
            "--output-format",
            "avro",
            "--no-progress",
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    with backfilled.open("rb") as handle:
        got = [_millis(r) for r in fastavro.reader(handle)]
    expected = [_snapshot_json_to_record(orjson.loads(s)) for s in reference.open("rb")]
    assert len(got) == len(expected) > 1000
    assert got == expected


def test_an_archive_replays_in_the_topic_order_not_in_date_folder_order(tmp_path: Path) -> None:
    """A late receipt (an earlier occurred_at, a later offset) lands in the folder of its
    date, ahead of the count before it in the log; the count is absolute, so the order
    decides on_hand. The backfill must follow the archived offsets, as the log did."""

    def line(n: int, event_type: str, quantity: int, day: int) -> bytes:
        return orjson.dumps(
            {
                "event_id": f"e{n}",
                "event_type": event_type,
                "source_system": "WMS",
                "occurred_at": f"2026-05-0{day}T10:00:00Z",
                "item_id": "SKU1",
                "location_id": "DC1",
                "quantity": quantity,
            }
        )

    lines = [line(0, "RECEIPT", 10, 2), line(1, "CYCLE_COUNT", 7, 2), line(2, "RECEIPT", 5, 1)]
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(raw + b"\n" for raw in lines))
    reference = tmp_path / "reference.jsonl"
    assert main(["replay", "--input", str(log), "--output", str(reference)]) == 0
    assert orjson.loads(reference.read_bytes())["on_hand"] == 12  # 10, counted 7, then +5

    archive = tmp_path / "archive"
    for offset, raw in enumerate(lines):
        event = decode_json_event(raw)
        assert isinstance(event, Event)
        folder = archive / f"date={format_iso(event.occurred_at)[:10]}"
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            **event_to_record(event),
            "kafka_partition": 0,
            "kafka_offset": offset,
            "kafka_timestamp": event.occurred_at,
        }
        with (folder / f"part-0-{offset}.avro").open("wb") as out:
            fastavro.writer(out, archive_schema(), [record])
    backfilled = tmp_path / "backfill.jsonl"
    args = ["--archive", str(archive), "--output", str(backfilled), "--no-progress"]
    result = subprocess.run([*ATP, "backfill", *args], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert backfilled.read_bytes() == reference.read_bytes()


def event_json(event: Event) -> dict[str, Any]:
    """The canonical JSON of an event (times as ISO-8601)."""
    record = event_to_record(event)
    for name in ("occurred_at", "expected_at", "expires_at"):
        if record[name] is not None:
            record[name] = format_iso(record[name])
    return {k: v for k, v in record.items() if v is not None}


def _millis(record: Any) -> dict[str, Any]:
    from pipelines.wire import millis_times

    value: dict[str, Any] = millis_times(record)
    return value


def _snapshot_json_to_record(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The AtpSnapshot record the replay's snapshot line stands for."""
    from transforms.snapshot import Snapshot, SupplyEntry

    supply = tuple(
        SupplyEntry(
            e["reference_id"],
            e["kind"],
            e["quantity"],
            None if e["expected_at"] is None else parse_iso(e["expected_at"]),
            e["confidence"],
        )
        for e in snapshot["supply"]
    )
    fields = {k: v for k, v in snapshot.items() if k not in ("supply", "as_of")}
    fields["correlation_id"] = snapshot["correlation_id"]
    as_of = None if snapshot["as_of"] is None else parse_iso(snapshot["as_of"])
    return snapshot_record(Snapshot(**fields, as_of=as_of, supply=supply))


def test_log_order_keeps_each_stream_and_merges_by_time() -> None:
    # [stream, seq, ts, ...]: stream 1 goes back in time (a late event) and keeps its order.
    records = [[1, 5, 300, "c"], [0, 2, 200, "b"], [1, 4, 100, "a"], [0, 9, 250, "d"]]
    assert [r[3] for r in log_order(records)] == ["a", "b", "d", "c"]
    single = [[0, 3, 0, "y"], [0, 1, 0, "x"]]
    assert [r[3] for r in log_order(single)] == ["x", "y"]


@pytest.mark.parametrize("tail", [b"\n", b""])
def test_json_lines_splits_number_lines_like_replay(tmp_path: Path, tail: bytes) -> None:
    log = tmp_path / "log.jsonl"
    lines = [b'{"n": %d}' % i + (b" " * (i % 7)) for i in range(1, 501)]
    lines[10] = b""  # a blank line is a line
    log.write_bytes(b"\n".join(lines) + tail)
    splits, count = plan_json_lines(str(log), "log.jsonl", 512)
    assert count == 500
    assert len(splits) > 5
    assert splits[0].first_line == 1 and splits[0].start == 0
    for before, after in itertools.pairwise(splits):
        assert before.end == after.start
        chunk = log.read_bytes()[before.start : before.end]
        assert chunk.endswith(b"\n")
        assert after.first_line == before.first_line + chunk.count(b"\n")
    assert splits[-1].end == log.stat().st_size


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "exactly one of --input, --archive, --topic"),
        (["--input", "-", "--output", "x"], "--input must be a file"),
        (["--input", "events.jsonl"], "give --output, --redis-url or both"),
        (["--input", "events.jsonl", "--output", "x", "--from-offset", "3"], "bound a --topic"),
        (["--input", "events.jsonl", "--output", "x", "--policy", "p.json"], "go together"),
        (["--input", "missing.jsonl", "--output", "x"], "input file not found"),
        (["--input", "events.jsonl", "--output", "x", "--as-of", "noon"], "not an ISO-8601"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "events.jsonl").write_bytes(b"")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert main(["backfill", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
