"""The engine-free replay: fold a JSON-lines event log into final snapshots.

This is the reference adapter of the contract's "Replay command": read events in log
order, dead-letter the invalid ones, fold the rest per key, then expire reservations
and check overdue supply at the replay clock (``--as-of``, or the largest
``occurred_at`` read).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipelines.dead_letters import DeadLetter, decode_json_event, event_id_of
from state.model import DEFAULT_RETENTION, KeyState, Retention
from transforms.channels import Policy, channel_available
from transforms.events import Event, Key, locations_touched
from transforms.exceptions import ExceptionRecord
from transforms.fold import DEFAULT_GRACE_MS, apply, expire, overdue_supply
from transforms.snapshot import Snapshot, snapshot_of
from transforms.validation import Violation


@dataclass(slots=True)
class ReplayStats:
    lines: int = 0
    blank_lines: int = 0
    events: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    after_as_of: int = 0
    expired: int = 0
    exceptions: int = 0
    keys: int = 0


@dataclass(frozen=True, slots=True)
class ChannelValue:
    channel: str
    item_id: str
    available: int

    def to_json(self) -> dict[str, object]:
        return {"channel": self.channel, "item_id": self.item_id, "available": self.available}


@dataclass(slots=True)
class ReplayResult:
    clock: int | None
    snapshots: list[Snapshot]
    channels: list[ChannelValue]
    stats: ReplayStats
    exceptions: list[ExceptionRecord] = field(default_factory=list)


DeadLetterSink = Callable[[DeadLetter], object]
ExceptionSink = Callable[[ExceptionRecord], object]


def _ignore(_: object) -> None:
    return None


@dataclass
class Replayer:
    """Holds every key's state in memory while a log is fed through it."""

    as_of: int | None = None
    retention: Retention = DEFAULT_RETENTION
    grace_ms: int = DEFAULT_GRACE_MS
    on_dead_letter: DeadLetterSink = _ignore
    on_exception: ExceptionSink = _ignore
    source_file: str | None = None
    states: dict[Key, KeyState] = field(default_factory=dict)
    stats: ReplayStats = field(default_factory=ReplayStats)
    max_occurred_at: int | None = None

    def feed(self, lines: Iterable[bytes], first_line: int = 1) -> None:
        """Fold raw JSON lines, numbered from ``first_line``, in order."""
        line_no = first_line - 1
        for line_no, raw in enumerate(lines, first_line):
            event = self.read(raw, line_no)
            if event is not None:
                self.fold(event)
        self.stats.lines = max(self.stats.lines, line_no)

    def read(self, raw: bytes, line_no: int) -> Event | None:
        """Decode one line: its event, or None once it is counted as blank or dead-lettered."""
        decoded = decode_json_event(raw)
        if isinstance(decoded, Event):
            return decoded
        if not raw.strip():  # a blank line is not a record
            self.stats.blank_lines += 1
        else:
            self._dead_letter(decoded, raw, line_no)
        return None

    def fold(self, event: Event) -> None:
        """Fold one valid event into every key it touches, unless it lies after ``as_of``."""
        if self.admit(event):
            self.fold_admitted(event)

    def admit(self, event: Event) -> bool:
        """Count a valid event and advance the clock; False when it lies after ``as_of``."""
        self.stats.events += 1
        occurred = event.occurred_at
        if self.as_of is not None and occurred > self.as_of:
            self.stats.after_as_of += 1
            return False
        if self.max_occurred_at is None or occurred > self.max_occurred_at:
            self.max_occurred_at = occurred
        return True

    def fold_admitted(self, event: Event) -> None:
        """Fold an admitted event into every key it touches (a backfill's per-item entry)."""
        stats, states = self.stats, self.states
        for location_id in locations_touched(event):
            key = (event.item_id, location_id)
            state = states.get(key)
            if state is None:
                state = states[key] = KeyState()
            outcome = apply(state, event, location_id, self.retention)[1]
            if not outcome.applied:
                stats.duplicates += 1
                continue
            stats.applied += 1
            for record in outcome.exceptions:
                stats.exceptions += 1
                self.on_exception(record)

    def _dead_letter(self, reasons: tuple[Violation, ...], raw: bytes, line_no: int) -> None:
        source: dict[str, object] = {"line": line_no}
        if self.source_file is not None:
            source["source_file"] = self.source_file
        self.stats.dead_letters += 1
        self.on_dead_letter(
            DeadLetter(
                reasons=reasons,
                raw=raw.rstrip(b"\r\n"),
                event_id=event_id_of(raw),
                source=source,
            )
        )

    @property
    def clock(self) -> int | None:
        return self.as_of if self.as_of is not None else self.max_occurred_at

    def finish(self, policy: Policy | None = None, clock: int | None = None) -> ReplayResult:
        """Expire and check overdue supply at the replay clock, then snapshot every key.

        ``clock`` overrides the replay clock: a backfill folds one item's share of the log
        but expires it at the clock of the whole log.
        """
        clock = self.clock if clock is None else clock
        snapshots: list[Snapshot] = []
        for key in sorted(self.states):
            state = self.states[key]
            if clock is not None:
                _, expired = expire(state, clock)
                self.stats.expired += len(expired)
                _, overdue = overdue_supply(state, key[0], key[1], clock, self.grace_ms)
                for record in overdue:
                    self.stats.exceptions += 1
                    self.on_exception(record)
            snapshots.append(snapshot_of(state, key[0], key[1], clock))
        self.stats.keys = len(snapshots)
        channels = channel_values(policy, snapshots) if policy is not None else []
        return ReplayResult(clock, snapshots, channels, self.stats)


def channel_values(policy: Policy, snapshots: Iterable[Snapshot]) -> list[ChannelValue]:
    """One value per (channel, item) for every item stocked at one of the channel's locations."""
    by_item: dict[str, dict[str, int]] = defaultdict(dict)
    for snap in snapshots:
        by_item[snap.item_id][snap.location_id] = snap.available
    values: list[ChannelValue] = []
    for channel in sorted(policy.channels, key=lambda c: c.channel):
        for item_id in sorted(by_item):
            available = by_item[item_id]
            if any(loc in available for loc in channel.locations):
                values.append(
                    ChannelValue(channel.channel, item_id, channel_available(channel, available))
                )
    return values
