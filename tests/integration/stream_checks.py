"""What the stream job's outputs must hold after a run, checked against ``atp replay`` of the
same log: the serving store, and the dead-letter, ATP change, channel and exceptions topics
read committed. The end-to-end, fault and upgrade tests share these checks."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Message, TopicPartition

from pipelines.stream_config import REGISTRY_URL
from state.serving import SnapshotStore
from tests.integration.topics import decode, message_key, read_committed
from transforms.exceptions import NEGATIVE_ON_HAND, SUPPLY_OVERDUE
from transforms.snapshot import QUANTITY_FIELDS

Key = tuple[str, str]
Snapshots = dict[Key, dict[str, Any]]

CONTRACT_FIELDS = (*QUANTITY_FIELDS, "version")
# The snapshot fields every engine must agree on (docs/stream-job.md, "Outputs"): not
# ``revision`` and ``as_of``, which count and date timer firings; not ``last_event_id`` and
# ``correlation_id``, which at a transfer's destination depend on how two partitions
# interleave; not ``duplicates``, which the stream writes with a key's next change.
SNAPSHOT_FIELDS = (*CONTRACT_FIELDS, "supply")


@dataclass(frozen=True)
class JobTopics:
    """The job's topics under ``prefix`` on one cluster, read committed and decoded."""

    servers: str
    prefix: str
    registry: str = REGISTRY_URL
    config: Mapping[str, Any] = field(default_factory=dict)

    def messages(self, name: str, expected: int, timeout: float) -> list[Message]:
        return read_committed(
            self.servers, self.prefix + name, expected, timeout, config=self.config
        )

    def records(self, name: str, expected: int, timeout: float) -> list[dict[str, Any]]:
        return [decode(m, self.registry) for m in self.messages(name, expected, timeout)]

    def committed_to_end(self, seconds: float) -> bool:
        """Whether the job's group (named after the prefix) has committed every events
        partition to its end within ``seconds``."""
        consumer = Consumer({"bootstrap.servers": self.servers, **self.config,
                             "group.id": self.prefix})  # fmt: skip
        partitions = [TopicPartition(self.prefix + "events", p) for p in range(4)]
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                committed = consumer.committed(partitions, timeout=10)
                ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
                if [tp.offset for tp in committed] == ends:
                    return True
                time.sleep(1)
            return False
        finally:
            consumer.close()


def by_key(lines: Path) -> Snapshots:
    """A JSON-lines snapshot file (``atp replay``'s output) by key."""
    return {(s["item_id"], s["location_id"]): s for s in map(orjson.loads, lines.open("rb"))}


def wait_until_equal(
    store: SnapshotStore,
    expected: Snapshots,
    seconds: float,
    alive: Callable[[], bool] = lambda: True,
) -> list[Key]:
    """Keys whose snapshot in Redis still differs from ``expected`` on a SNAPSHOT_FIELDS
    field after ``seconds``; ``alive``: whether the job still runs, checked meanwhile."""
    deadline = time.monotonic() + seconds
    mismatched: list[Key] = list(expected)
    while time.monotonic() < deadline:
        assert alive(), "the job stopped"
        actual = {(s["item_id"], s["location_id"]): s for s in store.all_snapshots()}
        mismatched = [
            key
            for key, snap in expected.items()
            if key not in actual or any(actual[key][f] != snap[f] for f in SNAPSHOT_FIELDS)
        ]
        if not mismatched:
            break
        time.sleep(2)
    return mismatched


def check_dead_letters(
    topics: JobTopics, dead: Path, more: Iterable[bytes] = ()
) -> list[dict[str, Any]]:
    """Exactly the records ``atp replay`` dead-lettered (``dead``) and ``more`` raw values,
    each once; the letters."""
    expected = [orjson.loads(line)["raw"] for line in dead.open("rb")]
    expected += [raw.decode("utf-8", "replace") for raw in more]
    letters = topics.records("dead-letters", len(expected), 60)
    assert sorted(r["raw"].decode("utf-8", "replace") for r in letters) == sorted(expected)
    return letters


def assert_change_histories(changes: dict[Key, list[dict[str, Any]]], actual: Snapshots) -> None:
    """Per key: every revision once, every applied event once (versions 1..N, no gap),
    revisions moving by one per event and by the instants it drops per expiry, each
    record taking over from the one before it, the first with no previous value, the last
    one equal to the snapshot."""
    assert set(changes) == set(actual)
    for key, records in changes.items():
        revisions = [r["revision"] for r in records]
        assert len(revisions) == len(set(revisions)), f"duplicate revisions at {key}"
        ordered = sorted(records, key=lambda r: r["revision"])
        assert ordered[0]["previous_available"] is None, f"a first change follows one at {key}"
        versions = [r["version"] for r in ordered if str(r["cause"]) == "EVENT"]
        assert versions == list(range(1, actual[key]["version"] + 1)), f"events at {key}"
        for before, after in itertools.pairwise(ordered):
            # An event moves the revision by one; an expiry by the expiry instants it drops.
            step = after["revision"] - before["revision"]
            assert step == 1 or (step > 1 and str(after["cause"]) == "EXPIRY"), key
            assert after["previous_available"] == before["available"], f"a gap at {key}"
        final = ordered[-1]
        assert final["revision"] == actual[key]["revision"]
        assert {f: final[f] for f in CONTRACT_FIELDS} == {
            f: actual[key][f] for f in CONTRACT_FIELDS
        }


def _histories(
    topics: JobTopics, name: str, fields: tuple[str, str], expected: int, timeout: float
) -> dict[Key, list[dict[str, Any]]]:
    """The records of a topic by the two ``fields`` its messages are keyed by (checked)."""
    histories: dict[Key, list[dict[str, Any]]] = {}
    for message in topics.messages(name, expected, timeout):
        record = decode(message, topics.registry)
        key = (record[fields[0]], record[fields[1]])
        assert message_key(message) == f"{key[0]}|{key[1]}"
        histories.setdefault(key, []).append(record)
    return histories


def check_changes(topics: JobTopics, actual: Snapshots) -> None:
    """The ATP change topic: keyed by item and location, each key's history complete
    (``assert_change_histories``) up to the snapshot in Redis."""
    total = sum(s["revision"] for s in actual.values())
    deadline = time.monotonic() + 60
    while True:  # the last records commit with the next checkpoint
        changes = _histories(topics, "atp-changes", ("item_id", "location_id"), total, 60)
        last = {k: max(r["revision"] for r in v) for k, v in changes.items()}
        if last == {k: s["revision"] for k, s in actual.items()} or time.monotonic() > deadline:
            break
    assert_change_histories(changes, actual)


def check_channels(topics: JobTopics, replayed: Path | None) -> set[str]:
    """Per (channel, item), keyed so: versions 1..N, a value only when it moves, and, given
    ``atp replay``'s channel file, the last value equal to the replay's. The channels seen."""
    wanted = None
    if replayed is not None:
        wanted = {
            (c["channel"], c["item_id"]): c["available"]
            for c in map(orjson.loads, replayed.open("rb"))
        }
    emitted: dict[Key, list[dict[str, Any]]] = {}
    latest: dict[Key, int] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        emitted = _histories(topics, "channel-atp", ("channel", "item_id"), 10**9, 5)
        latest = {k: max(v, key=lambda c: c["version"])["available"] for k, v in emitted.items()}
        if emitted and (wanted is None or latest == wanted):
            break
    if wanted is not None:
        assert latest == wanted
    for key, history in emitted.items():
        ordered = sorted(history, key=lambda c: c["version"])
        assert [c["version"] for c in ordered] == list(range(1, len(ordered) + 1)), key
        values = [c["available"] for c in ordered]
        assert all(a != b for a, b in itertools.pairwise(values)), key
    return {channel for channel, _ in emitted}


def check_exceptions(topics: JobTopics, replayed: Path) -> list[dict[str, Any]]:
    """The exceptions topic against ``atp replay --exceptions``: each exception once;
    NEGATIVE_ON_HAND (which follows from the events alone) exactly the replay's; every supply
    line the replay finds overdue at its clock also reported by the stream, which watches
    the watermark pass each line's due time. Other kinds depend on when reservations
    expired, which the stream does as the watermark passes and the replay at its clock
    (docs/semantics.md). The exceptions."""
    expected = [orjson.loads(line) for line in replayed.open("rb")]
    records = topics.records("exceptions", len(expected), 60)

    def ident(r: dict[str, Any]) -> tuple[Any, ...]:
        return (str(r["kind"]), r["item_id"], r["location_id"], r["event_id"], r["reference_id"])

    # Whole records: a revised ASN re-arms its line, which may then be reported again at
    # the same instant, with the new quantity in its reason.
    seen = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS, default=str) for r in records]
    assert len(seen) == len(set(seen)), "an exception published twice"

    def of(kind: str, rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
        return {ident(r) for r in rows if str(r["kind"]) == kind}

    assert of(NEGATIVE_ON_HAND, records) == of(NEGATIVE_ON_HAND, expected)
    overdue = {i[1:] for i in of(SUPPLY_OVERDUE, records)}
    missing = {i[1:] for i in of(SUPPLY_OVERDUE, expected)} - overdue
    assert not missing, f"overdue supply the stream never reported: {sorted(missing)[:3]}"
    return records
