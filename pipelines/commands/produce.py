"""``atp produce``: publish canonical JSON-lines events to the events topic, in file order."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from confluent_kafka import Producer

from pipelines.event_codec import EventCodec
from pipelines.jsonl import open_input
from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.usage import existing_file, time_flag
from pipelines.wire import WireFormat
from transforms.events import Event
from transforms.timeutil import parse_iso


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "produce",
        help="publish canonical JSON-lines events to Kafka",
        description=(
            "Publish events in file order as Confluent-framed Avro (schemas registered with "
            "the schema registry), keyed by item and location, with the record timestamp set "
            "to occurred_at (the job's watermarks come from it). Records that are not valid "
            "events are published as they are, so the job dead-letters them with the reasons "
            "atp replay gives. The producer is idempotent, so retries never reorder a key's "
            "events."
        ),
    )
    parser.add_argument("--input", required=True, help="events as JSON lines ('-' for stdin)")
    parser.add_argument("--topic", default="atp.events", help="events topic")
    parser.add_argument(
        "--heartbeat-at",
        help="afterwards, send a watermark heartbeat to every partition with this record "
        "time (ISO-8601), so the job's clock reaches it without further events",
    )
    add_kafka_arguments(parser)
    add_registry_argument(parser)
    parser.set_defaults(run=run)


def record_key_and_time(line: bytes, last_time: int) -> tuple[bytes | None, int]:
    """The record key and timestamp; unreadable records keep the previous time."""
    try:
        record = orjson.loads(line)
        item, location = record["item_id"], record["location_id"]
        occurred = record["occurred_at"]
        at = parse_iso(occurred) if isinstance(occurred, str) else int(occurred)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None, last_time
    return f"{item}|{location}".encode(), at


def encoded_value(line: bytes, codec: EventCodec) -> bytes:
    """The Avro record of a valid event; anything else as it is, for the job to dead-letter."""
    decoded, _ = codec.decode(line)
    return codec.encode(decoded) if isinstance(decoded, Event) else line


def run(args: argparse.Namespace) -> int:
    existing_file(args.input)
    heartbeat_at = time_flag("--heartbeat-at", args.heartbeat_at)
    codec = EventCodec(WireFormat(args.registry_url), args.topic)
    producer = Producer(client_config(args, **{"enable.idempotence": True, "linger.ms": 20}))
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    def send(line: bytes, key: bytes | None, at: int) -> None:
        while True:
            try:
                producer.produce(args.topic, line, key=key, timestamp=at, on_delivery=delivered)
                return
            except BufferError:  # local queue full: let it drain
                producer.poll(0.5)

    # Unreadable records before the first readable one wait for its time: a timestamp
    # of 0 would be stamped with the wall clock and move the job's watermark to now.
    waiting: list[bytes] = []
    sent, last_time = 0, 0
    with open_input(args.input) as handle:
        for raw in handle:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            key, last_time = record_key_and_time(line, last_time)
            if not last_time:
                waiting.append(line)
                continue
            for early in waiting:
                send(encoded_value(early, codec), None, last_time)
            sent += len(waiting)
            waiting.clear()
            send(encoded_value(line, codec), key, last_time)
            producer.poll(0)
            sent += 1
    for early in waiting:  # nothing readable at all: the broker's time it is
        send(early, None, 0)
    sent += len(waiting)
    if heartbeat_at is not None:
        metadata = producer.list_topics(args.topic, timeout=10)
        heartbeat = orjson.dumps({"heartbeat": True})
        for partition in metadata.topics[args.topic].partitions:
            producer.produce(
                args.topic,
                heartbeat,
                partition=partition,
                timestamp=heartbeat_at,
                on_delivery=delivered,
            )
    remaining = producer.flush(60)
    if failures or remaining:
        print(
            f"atp produce: {len(failures) + remaining} records not delivered: "
            f"{failures[:1] or 'flush timed out'}",
            file=sys.stderr,
        )
        return 1
    print(f"atp produce: {sent} records to {args.topic}", file=sys.stderr)
    return 0
