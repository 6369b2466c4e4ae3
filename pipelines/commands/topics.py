"""``atp topics``: create the job's topics with the settings it expects, idempotently."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.kafka_options import add_kafka_arguments, client_config
from pipelines.stream_config import Topics
from pipelines.topic_admin import TopicSpec, ensure_topics, job_topic_specs
from pipelines.usage import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="create the job's topics (idempotent)",
        description="Create whichever of the job's topics are missing: events (kept forever), "
        "dead letters, exceptions, ATP changes and channel ATP with --partitions each, and "
        "the policy topic with one compacted partition. Existing topics are never changed; "
        "a partition count other than the one asked for is reported. Exits 1 when a topic "
        "could not be created.",
    )
    add_kafka_arguments(parser)
    parser.add_argument("--topic-prefix", default="atp.", help="prefix of the job's topics")
    parser.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="partitions of each topic but the policy topic; bounds the job's parallelism",
    )
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument(
        "--raw-topic",
        action="append",
        default=[],
        metavar="NAME",
        help="also a source system's raw topic, for atp normalize --from-topic (repeatable; "
        "--partitions each, the broker's retention)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.partitions < 1 or args.replication_factor < 1:
        raise UsageError("--partitions and --replication-factor must be at least 1")
    specs = job_topic_specs(Topics.with_prefix(args.topic_prefix), args.partitions)
    specs += [TopicSpec(name, args.partitions) for name in args.raw_topic]
    states = ensure_topics(client_config(args), specs, args.replication_factor)
    for spec, state in zip(specs, states, strict=True):
        if state.error is not None:
            print(f"{state.name}: creating it failed: {state.error}")
            continue
        line = f"{state.name}: {state.partitions} partition(s)"
        if state.created:
            line += ", created"
        if state.mismatch(spec):
            line += f" (wanted {spec.partitions}; an existing topic is never changed)"
        print(line)
    return 1 if any(state.error for state in states) else 0
