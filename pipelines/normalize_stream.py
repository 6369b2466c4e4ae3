"""The streaming normalizer: a raw topic through one adapter into the events topic.

Consume, map, produce, and commit the consumed offsets in the same Kafka transaction
as the events and dead letters they produced (``send_offsets_to_transaction``), so
each raw record's output appears exactly once for ``read_committed`` readers, however
often the normalizer restarts. A transaction that fails is aborted and its batch read
again. Every event goes through one encoder, the events topic's wire format.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from pipelines.dead_letters import DeadLetter
from pipelines.event_codec import EventCodec
from pipelines.event_publisher import produce_waiting, record_key_and_time
from pipelines.wire import WireFormat, dead_letter_record
from state.schemas import DEAD_LETTER
from transforms.adapters import Adapter, Options, Result
from transforms.events import Event
from transforms.validation import parse_event

EventMessage = tuple[bytes | None, bytes, int]
"""(key, value, timestamp) of one record on the events topic."""
EventEncoder = Callable[[dict[str, Any]], EventMessage]


def avro_events(codec: EventCodec) -> EventEncoder:
    """The events topic's records, as ``atp produce`` writes them: Confluent-framed Avro,
    keyed ``item|location``, with the record timestamp set to ``occurred_at`` (the job's
    watermarks come from it). The one place that knows the events topic's format."""

    def encode(record: dict[str, Any]) -> EventMessage:
        event = parse_event(record)
        if not isinstance(event, Event):  # adapters check every event; this cannot happen
            raise ValueError(f"not a valid event: {record}")
        key, at = record_key_and_time(orjson.dumps(record), 0)
        return key, codec.encode(event), at

    return encode


@dataclass
class Tally:
    """What a run did: raw records in (JSON records, X12 transaction sets), events out,
    dead letters and ignored by reason."""

    records: int = 0
    events: int = 0
    blank: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

    def add(self, result: Result) -> None:
        self.records += 1
        self.events += len(result.events)
        if result.violations:
            self.dead[result.violations[0].code] += 1
        elif result.ignored is not None:
            self.ignored[result.ignored] += 1

    def merge(self, other: Tally) -> None:
        self.records += other.records
        self.events += other.events
        self.blank += other.blank
        self.dead.update(other.dead)
        self.ignored.update(other.ignored)

    def summary(self, system: str) -> str:
        def counts(counter: Counter[str], what: str) -> str:
            detail = ", ".join(f"{code} {n}" for code, n in sorted(counter.items()))
            return f"{sum(counter.values())} {what}" + (f" ({detail})" if detail else "")

        blank = f", {self.blank} blank lines" if self.blank else ""
        return (
            f"atp normalize {system}: {self.records} records, {self.events} events, "
            f"{counts(self.dead, 'dead letters')}, {counts(self.ignored, 'ignored')}{blank}"
        )


def dead_letter(result: Result, source: dict[str, Any]) -> DeadLetter:
    return DeadLetter(result.violations, result.raw, None, {**source, **result.source})


@dataclass
class StreamNormalizer:
    """One adapter between a raw topic and the events topic (see the module's doc)."""

    adapter: Adapter
    options: Options
    consumer: Consumer
    producer: Producer
    from_topic: str
    to_topic: str
    dlq_topic: str
    encode_event: EventEncoder
    wire: WireFormat
    batch_size: int = 500
    tally: Tally = field(default_factory=Tally)
    stopping: bool = False

    def run(self, exit_when_idle: float | None = None) -> Tally:
        """Until ``stopping`` is set (between batches), or, once partitions are assigned,
        no record came for ``exit_when_idle`` seconds."""
        self.producer.init_transactions(30)
        idle_since: float | None = None  # idleness counts from the first assignment

        def assigned(_consumer: Consumer, _partitions: list[TopicPartition]) -> None:
            nonlocal idle_since
            idle_since = time.monotonic()

        self.consumer.subscribe([self.from_topic], on_assign=assigned)
        try:
            while not self.stopping:
                batch = [m for m in self.consumer.consume(self.batch_size, 1.0) if _usable(m)]
                if batch:
                    self._transact(batch)
                    idle_since = time.monotonic()
                elif (
                    exit_when_idle is not None
                    and idle_since is not None
                    and time.monotonic() - idle_since >= exit_when_idle
                ):
                    break
        finally:
            self.consumer.close()
        return self.tally

    def _transact(self, batch: list[Message]) -> None:
        done = Tally()
        self.producer.begin_transaction()
        try:
            for message in batch:
                self._normalize(message, done)
            self.producer.send_offsets_to_transaction(
                _offsets(batch, after=True), self.consumer.consumer_group_metadata()
            )
            self._commit()
        except KafkaException as err:
            if not err.args[0].txn_requires_abort():
                raise  # fatal (fenced by a newer instance, say): stop, never half-commit
            print(
                f"atp normalize: transaction aborted, batch to be read again: {err}",
                file=sys.stderr,
            )
            self.producer.abort_transaction()
            self._rewind(batch)
            return
        self.tally.merge(done)

    def _rewind(self, batch: list[Message]) -> None:
        """Read an aborted batch again; a partition lost to a rebalance meanwhile is its
        new owner's to read, from the last committed offset."""
        for position in _offsets(batch, after=False):
            try:
                self.consumer.seek(position)
            except KafkaException:
                continue

    def _commit(self) -> None:
        while True:
            try:
                self.producer.commit_transaction()
                return
            except KafkaException as err:
                if not err.args[0].retriable():
                    raise

    def _normalize(self, message: Message, done: Tally) -> None:
        raw = message.value() or b""
        source = {
            "source_topic": message.topic(),
            "source_partition": message.partition(),
            "source_offset": message.offset(),
        }
        kind, at = message.timestamp()
        timestamp = at if kind != 0 else 0  # 0: TIMESTAMP_NOT_AVAILABLE
        for result in self.adapter.normalize(raw, self.options):
            done.add(result)
            if result.violations:
                letter = dead_letter(result, source)
                value = self.wire.encode(DEAD_LETTER, self.dlq_topic, dead_letter_record(letter))
                self._produce(self.dlq_topic, message.key(), value, timestamp)
            for record in result.events:
                key, value, occurred_at = self.encode_event(record)
                self._produce(self.to_topic, key, value, occurred_at)

    def _produce(self, topic: str, key: bytes | None, value: bytes, timestamp: int) -> None:
        produce_waiting(self.producer, topic, value, key=key, timestamp=timestamp)
        self.producer.poll(0)


def _usable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        print(f"atp normalize: consumer: {error}", file=sys.stderr)
    return False


def _offsets(batch: list[Message], *, after: bool) -> list[TopicPartition]:
    """Per partition, the batch's first offset, or the one after its last."""
    found: dict[tuple[str, int], int] = {}
    for message in batch:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            continue
        known = found.get((topic, partition))
        if known is None or (offset > known if after else offset < known):
            found[topic, partition] = offset
    return [TopicPartition(t, p, o + 1 if after else o) for (t, p), o in sorted(found.items())]
