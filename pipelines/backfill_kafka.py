"""The backfill's Kafka source: a bounded range of the events topic, read with confluent-kafka.

Bounds are offsets or record times per partition, resolved once when the run starts
(the end defaults to each partition's high watermark then), so a backfill reads a fixed
slice of the log however long it runs and whatever is produced meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipelines.backfill_sources import (
    HEARTBEAT_PREFIX,
    KafkaSplit,
    Progress,
    SplitReader,
    unique_group_id,
)
from pipelines.dead_letters import DeadLetter
from pipelines.event_codec import EventCodec
from pipelines.usage import UsageError
from pipelines.wire import WireFormat
from transforms.events import Event

STALL_SECONDS: Final = 120.0
"""A partition that yields nothing this long before its end offset is an error, not a hang."""
_METADATA_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class Bounds:
    """Where to start and stop in every partition; times are record timestamps (millis)."""

    start_offset: int | None = None
    end_offset: int | None = None  # exclusive
    start_time: int | None = None
    end_time: int | None = None  # inclusive


def plan_kafka(
    config: dict[str, Any],
    topic: str,
    bounds: Bounds,
    registry_url: str | None,
    split_records: int,
) -> list[KafkaSplit]:
    """Resolve the bounds to offset ranges, cut into splits of at most ``split_records``."""
    consumer = Consumer({**config, "group.id": unique_group_id(), "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise UsageError(f"topic {topic} not found on {config.get('bootstrap.servers')}")
        splits: list[KafkaSplit] = []
        for partition in sorted(described.partitions):
            start, end = _range(consumer, topic, partition, bounds)
            for first in range(start, end, split_records):
                last = min(end, first + split_records)
                splits.append(KafkaSplit(topic, partition, first, last, config, registry_url))
        return splits
    finally:
        consumer.close()


def _range(consumer: Consumer, topic: str, partition: int, bounds: Bounds) -> tuple[int, int]:
    low, high = consumer.get_watermark_offsets(
        TopicPartition(topic, partition), timeout=_METADATA_TIMEOUT
    )
    start, end = low, high
    if bounds.start_offset is not None:
        start = max(start, bounds.start_offset)
    if bounds.end_offset is not None:
        end = min(end, bounds.end_offset)
    if bounds.start_time is not None:
        start = max(start, _offset_for_time(consumer, topic, partition, bounds.start_time, high))
    if bounds.end_time is not None:
        end = min(end, _offset_for_time(consumer, topic, partition, bounds.end_time + 1, high))
    return start, max(start, end)


def _offset_for_time(consumer: Consumer, topic: str, partition: int, at: int, high: int) -> int:
    """The first offset whose record time is at or after ``at`` (the broker's time index)."""
    (found,) = consumer.offsets_for_times(
        [TopicPartition(topic, partition, at)], timeout=_METADATA_TIMEOUT
    )
    if found.error is not None:
        raise KafkaException(found.error)
    offset: int = found.offset
    return high if offset < 0 else offset  # none that late: the end of the partition


def read_partition(split: KafkaSplit, reader: SplitReader, progress: Progress) -> None:
    """Read ``[split.start, split.end)``; values are Avro (magic byte 0) or canonical JSON."""
    consumer = Consumer(
        {
            **split.config,
            "group.id": unique_group_id(),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    source: dict[str, Any] = {"source_topic": split.topic, "source_partition": split.partition}
    read = 0
    try:
        consumer.assign([TopicPartition(split.topic, split.partition, split.start)])
        stalled_since = time.monotonic()
        position = split.start
        while position < split.end:
            messages = consumer.consume(1000, timeout=1.0)
            if messages:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > STALL_SECONDS:
                raise RuntimeError(
                    f"{split.topic}[{split.partition}]: nothing after offset {position} "
                    f"for {STALL_SECONDS:.0f} s, {split.end - position} offsets before the end"
                )
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        position = split.end  # transaction markers or compaction: no more
                        break
                    raise KafkaException(error)
                offset = message.offset()
                if offset is None:  # only error events lack one; handled above
                    continue
                if offset >= split.end:
                    position = split.end
                    break
                position = offset + 1
                read += 1
                _record(reader, split, message, source)
            progress(position - split.start)
    finally:
        consumer.close()
    reader.replayer.stats.lines = read
    progress(split.units)


def _record(reader: SplitReader, split: KafkaSplit, message: Any, source: dict[str, Any]) -> None:
    value: bytes = message.value() or b""
    if value.startswith(HEARTBEAT_PREFIX):
        return  # only moves a stream job's watermark
    offset = message.offset()
    decoded, event_id = _codec(split).decode(value)
    if isinstance(decoded, Event):
        reader.event(split.partition, offset, message.timestamp()[1], decoded)
    else:
        letter = DeadLetter(decoded, value, event_id, {**source, "source_offset": offset})
        reader.dead_letter((split.partition, offset), letter)


_CODECS: dict[tuple[str, str | None], EventCodec] = {}


def _codec(split: KafkaSplit) -> EventCodec:
    """One codec per topic and registry in a worker: its registry client caches schemas."""
    key = (split.topic, split.registry_url)
    codec = _CODECS.get(key)
    if codec is None:
        codec = _CODECS[key] = EventCodec(WireFormat(split.registry_url or ""), split.topic)
    return codec
