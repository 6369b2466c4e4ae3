"""``atp produce``: publish canonical JSON-lines events to the events topic, in file order."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from pipelines.event_publisher import EventPublisher, PublishRefusedError, record_key_and_time
from pipelines.jsonl import open_input
from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.usage import existing_file, time_flag


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


def run(args: argparse.Namespace) -> int:
    try:
        return _publish(args)
    except PublishRefusedError as err:
        print(f"atp produce: the cluster refused the client: {err}", file=sys.stderr)
        return 1


def _publish(args: argparse.Namespace) -> int:
    existing_file(args.input)
    heartbeat_at = time_flag("--heartbeat-at", args.heartbeat_at)
    publisher = EventPublisher(client_config(args), args.registry_url, args.topic)
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
                publisher.send(publisher.encoded_line(early), None, last_time)
            sent += len(waiting)
            waiting.clear()
            publisher.send(publisher.encoded_line(line), key, last_time)
            sent += 1
    for early in waiting:  # nothing readable at all: the broker's time it is
        publisher.send(early, None, 0)
    sent += len(waiting)
    if heartbeat_at is not None:
        metadata = publisher.producer.list_topics(args.topic, timeout=10)
        heartbeat = orjson.dumps({"heartbeat": True})
        for partition in metadata.topics[args.topic].partitions:
            publisher.send(heartbeat, None, heartbeat_at, partition=partition)
    failures = publisher.close()
    if failures:
        print(
            f"atp produce: records not delivered ({len(failures)} failures): {failures[0]}",
            file=sys.stderr,
        )
        return 1
    print(f"atp produce: {sent} records to {args.topic}", file=sys.stderr)
    return 0
