"""The stream job's operators: thin adapters around ``transforms/`` and ``state/``.

Records between operators are explicitly typed Flink rows of strings and longs (never
pickles); an event travels as the JSON array of its fields, state as the versioned
Avro encoding of ``state/codec.py``. Records for the topics leave Python already
encoded (Confluent-framed Avro) with their key, for ``KeyedRecordSerializer``
(pipelines/jvm) to write.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction
from pyflink.datastream.state import ValueStateDescriptor

from pipelines.dead_letters import DeadLetter
from pipelines.event_codec import EventCodec
from pipelines.stream_config import Topics
from pipelines.wire import WireFormat, dead_letter_record, exception_record
from state.codec import decode_state, encode_state
from state.model import KeyState
from state.schemas import ATP_CHANGE, ATP_EXCEPTION, DEAD_LETTER
from transforms import exceptions as exc_kinds
from transforms.events import Event, locations_touched
from transforms.exceptions import ExceptionRecord
from transforms.fold import (
    DEFAULT_GRACE_MS,
    apply,
    expire,
    next_expiry,
    next_overdue_check,
    overdue_supply,
)
from transforms.snapshot import QUANTITY_FIELDS, available_now, snapshot_of

KEY_SEPARATOR: Final = "\x1f"
HEARTBEAT_PREFIX: Final = b'{"heartbeat"'
"""A record that is only a watermark heartbeat for its partition (see ``atp produce``)."""

# (key, event as a JSON array): one row per key an event touches. The key leads, so the
# fold is keyed on the JVM (stream_job._keyed_by_first_field) and receives the event only.
KEYED_EVENT = Types.ROW_NAMED(["key", "event"], [Types.STRING(), Types.STRING()])
# A record for a topic: (Kafka key, encoded value as one char per byte; see jvm_string).
KEYED_RECORD = Types.ROW_NAMED(["key", "value"], [Types.STRING(), Types.STRING()])
# (key, encoded ATP change, item_id, location_id, revision, snapshot JSON, available,
# as_of millis or 0): the first two go to the change topic as they are; the two longs
# spare the channel stage from parsing the snapshot again.
SNAPSHOT_CHANGE = Types.ROW_NAMED(
    ["key", "change", "item_id", "location_id", "revision", "snapshot", "available", "as_of"],
    [
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.LONG(),
        Types.STRING(),
        Types.LONG(),
        Types.LONG(),
    ],
)
DEAD_LETTERS = OutputTag("dead-letters", KEYED_RECORD)
EXCEPTIONS = OutputTag("exceptions", KEYED_RECORD)


def jvm_string(data: bytes) -> str:
    """Encoded bytes as a string of one char per byte, the cheapest way into the JVM in
    thread mode; ``KeyedRecordSerializer`` turns it back into the same bytes."""
    return data.decode("latin-1")


def record_key(item_id: str, location_id: str) -> str:
    """The Kafka key of a key's records, as ``atp produce`` keys events."""
    return f"{item_id}|{location_id}"


class DecodeEvents(ProcessFunction):  # type: ignore[misc]
    """Decode and validate raw values; fan transfers out to both keys; dead-letter the rest."""

    def __init__(self, topics: Topics, registry_url: str) -> None:
        self.topics = topics
        self.registry_url = registry_url

    def open(self, runtime_context: Any) -> None:
        self.wire = WireFormat(self.registry_url)
        self.codec = EventCodec(self.wire, self.topics.events)
        metrics = runtime_context.get_metrics_group()
        self.dead_letters = BatchedCounter(metrics.counter("deadLetters"))
        self.decoded = BatchedCounter(metrics.counter("eventsDecoded"))
        self.heartbeats = BatchedCounter(metrics.counter("heartbeats"))

    def process_element(self, record: Row, ctx: Any) -> Iterator[Any]:
        partition, offset, value = record  # see SourceRecordDeserializer (pipelines/jvm)
        raw = value.encode("latin-1")
        if raw.startswith(HEARTBEAT_PREFIX):
            # Only its record timestamp matters: it moves the partition's watermark.
            self.heartbeats.inc()
            return
        decoded, event_id = self.codec.decode(raw)
        if not isinstance(decoded, Event):  # a tuple of violations (Event is a tuple too)
            self.dead_letters.inc()
            source = {
                "source_topic": self.topics.events,
                "source_partition": partition,
                "source_offset": offset,
            }
            letter = DeadLetter(decoded, raw, event_id, source)
            encoded = self.wire.encode(
                DEAD_LETTER, self.topics.dead_letters, dead_letter_record(letter)
            )
            yield DEAD_LETTERS, Row(event_id, jvm_string(encoded))
            return
        self.decoded.inc()
        payload = orjson.dumps(tuple(decoded)).decode()
        for location in locations_touched(decoded):
            yield Row(decoded.item_id + KEY_SEPARATOR + location, payload)


_CACHED_KEYS: Final = 20_000


@dataclass(slots=True)
class _Cached:
    raw: str
    state: KeyState
    timers: tuple[int | None, ...]


class BatchedCounter:
    """A Flink counter incremented in batches: every increment of a Flink counter crosses
    into the JVM, which cost 6% of the job's Python time when done once per event."""

    __slots__ = ("counter", "flushed_at", "pending")

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.pending = 0
        self.flushed_at = time.monotonic()

    def inc(self, n: int = 1) -> None:
        self.pending += n
        # Wall clock only to bound how stale the metric is, never for the logic.
        if self.pending >= 128 or time.monotonic() - self.flushed_at > 1.0:
            self.counter.inc(self.pending)
            self.pending = 0
            self.flushed_at = time.monotonic()


class FoldByKey(KeyedProcessFunction):  # type: ignore[misc]
    """The keyed fold; state in typed Flink state, expiry and overdue on event-time timers."""

    def __init__(self, topics: Topics, registry_url: str, grace_ms: int = DEFAULT_GRACE_MS) -> None:
        self.topics = topics
        self.registry_url = registry_url
        self.grace_ms = grace_ms

    def open(self, runtime_context: Any) -> None:
        self.wire = WireFormat(self.registry_url)
        # A STRING holding the versioned Avro encoding, one char per byte: PyFlink's thread
        # mode converts byte arrays element by element (and fails on a missing value),
        # while strings cross the JVM boundary as they are.
        self.state = runtime_context.get_state(ValueStateDescriptor("key-state", Types.STRING()))
        # Decoded states of recently written keys, with the string each was saved as and
        # the timers armed for it: a key whose Flink state still holds that string needs
        # no decoding, and unchanged timer instants need no new registration.
        self.cache: dict[str, _Cached] = {}
        metrics = runtime_context.get_metrics_group()
        self.applied = BatchedCounter(metrics.counter("eventsApplied"))
        self.duplicates = BatchedCounter(metrics.counter("duplicates"))
        self.expired = BatchedCounter(metrics.counter("reservationsExpired"))
        self.exceptions = BatchedCounter(metrics.counter("exceptions"))
        # One counter per kind: these are the planners' work queues.
        exceptions = metrics.add_group("exceptions")
        self.exceptions_by_kind = {
            kind: BatchedCounter(exceptions.counter(kind)) for kind in exc_kinds.KINDS
        }
        self.last_event_time = 0
        # Wall clock only for the metric, never for the logic.
        metrics.gauge(
            "eventTimeLagMs",
            lambda: int(time.time() * 1000) - self.last_event_time if self.last_event_time else 0,
        )

    def _exception(self, record: ExceptionRecord) -> tuple[OutputTag, Row]:
        self.exceptions.inc()
        self.exceptions_by_kind[record.kind].inc()
        value = self.wire.encode(ATP_EXCEPTION, self.topics.exceptions, exception_record(record))
        return EXCEPTIONS, Row(record_key(record.item_id, record.location_id), jvm_string(value))

    def _load(self, key: str) -> KeyState:
        raw = self.state.value()
        if raw is None:
            return KeyState()
        cached = self.cache.get(key)
        if cached is not None and cached.raw == raw:
            return cached.state
        self.cache.pop(key, None)  # not what this instance wrote: its timers are unknown
        return decode_state(raw.encode("latin-1"))

    def _save(self, key: str, state: KeyState, ctx: Any) -> None:
        """Write the state to Flink and arm its timers (those not armed already)."""
        raw = jvm_string(encode_state(state))
        self.state.update(raw)
        timers = (next_expiry(state), next_overdue_check(state, self.grace_ms))
        cached = self.cache.pop(key, None)
        armed = cached.timers if cached is not None else ()
        for at in timers:
            if at is not None and at not in armed:
                ctx.timer_service().register_event_time_timer(at)
        if len(self.cache) >= _CACHED_KEYS:
            del self.cache[next(iter(self.cache))]  # the least recently written key
        self.cache[key] = _Cached(raw, state, timers)

    def _change(
        self, state: KeyState, item: str, location: str, clock: int | None, cause: dict[str, Any]
    ) -> Row:
        snapshot = snapshot_of(state, item, location, clock)
        record = snapshot.to_json()
        change = {
            **cause,
            "item_id": item,
            "location_id": location,
            "version": snapshot.version,
            "revision": snapshot.revision,
            **{k: record[k] for k in QUANTITY_FIELDS},
        }
        return Row(
            record_key(item, location),
            jvm_string(self.wire.encode(ATP_CHANGE, self.topics.atp_changes, change)),
            item,
            location,
            snapshot.revision,
            orjson.dumps(record).decode(),
            snapshot.available,
            clock or 0,
        )

    def process_element(self, payload: str, ctx: Any) -> Iterator[Any]:
        key = ctx.get_current_key()
        item, location = key.split(KEY_SEPARATOR, 1)
        event = Event(*orjson.loads(payload))
        state = self._load(key)
        # The clock is the watermark: reservations it has passed expire before the event
        # applies, even if their timer is still queued.
        watermark = ctx.timer_service().current_watermark()
        if watermark > 0:
            yield from self._expire(state, item, location, watermark)
        # None for a key's first record (no change has been emitted yet), as the schema says.
        before = available_now(state) if state.revision else None
        # Memories trimmed no further than the watermark (see ``apply``); before the first
        # watermark, not at all (the count caps still hold).
        _, outcome = apply(state, event, location, trim_bound=watermark)
        self._save(key, state, ctx)
        if not outcome.applied:
            self.duplicates.inc()
            return
        self.applied.inc()
        self.last_event_time = event.occurred_at
        for record in outcome.exceptions:
            yield self._exception(record)
        yield self._change(
            state,
            item,
            location,
            watermark if watermark > 0 else None,
            {
                "cause": "EVENT",
                "event_id": event.event_id,
                "event_type": event.event_type,
                "changed_at": event.occurred_at,
                "previous_available": before,
                "correlation_id": event.correlation_id,
            },
        )

    def _expire(self, state: KeyState, item: str, location: str, clock: int) -> Iterator[Any]:
        """Expire reservations and report overdue supply at ``clock``; emit what changed."""
        before = available_now(state)
        _, expired = expire(state, clock)
        _, overdue = overdue_supply(state, item, location, clock, self.grace_ms)
        for record in overdue:
            yield self._exception(record)
        if expired:
            self.expired.inc(len(expired))
            yield self._change(
                state,
                item,
                location,
                clock,
                {
                    "cause": "EXPIRY",
                    "event_id": None,
                    "event_type": None,
                    "changed_at": clock,
                    "previous_available": before,
                    "correlation_id": None,
                },
            )

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        # Catch up to the watermark, not just this timer: a timer re-armed from inside
        # on_timer for an instant the watermark has already passed would only fire at the
        # next watermark, which may never come on a quiet key.
        clock = max(timestamp, ctx.timer_service().current_watermark())
        key = ctx.get_current_key()
        item, location = key.split(KEY_SEPARATOR, 1)
        state = self._load(key)
        yield from self._expire(state, item, location, clock)
        # This timer has fired: whatever is armed next must be registered again.
        cached = self.cache.get(key)
        if cached is not None:
            cached.timers = ()
        self._save(key, state, ctx)
