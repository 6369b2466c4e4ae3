"""``atp channel-sync``: push channel ATP changes to each sales channel's endpoint."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.usage import UsageError

if TYPE_CHECKING:
    from confluent_kafka import Consumer


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "channel-sync",
        help="push channel ATP changes to each channel's webhook or file",
        description=(
            "Consume the channel ATP topic (read_committed) and push each change to its "
            "channel's endpoint from the channels file: a signed HTTP webhook or a JSON-lines "
            "file. Changes to one item within a channel's coalescing window go as one push of "
            "the newest version; each channel has a token-bucket rate limit; failed pushes are "
            "retried with backoff, and refused ones go to the dead-letter topic. Offsets are "
            "committed only once every record before them is pushed or dead-lettered (at "
            "least once: receivers dedupe by Idempotency-Key). Runs until stopped "
            "(SIGINT/SIGTERM let the pushes in flight finish), or with --until-end until "
            "every partition is read and settled. See docs/channel-sync.md."
        ),
    )
    parser.add_argument("--config", required=True, help="channels file (JSON)")
    parser.add_argument("--topic", default="atp.channel-atp", help="channel ATP topic")
    parser.add_argument(
        "--dead-letter-topic",
        default="atp.channel-sync-dead-letters",
        help="where undeliverable changes go (created with the topic's partitions if missing)",
    )
    parser.add_argument("--group-id", default="atp-channel-sync", help="consumer group")
    parser.add_argument(
        "--until-end",
        action="store_true",
        help="stop once every partition is read to its end and settled (batch use, tests)",
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on HOST:PORT/metrics"
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address the metrics listen on (default 127.0.0.1; 0.0.0.0 in a pod, so that "
        "Prometheus can scrape it)",
    )
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=1.0,
        help="seconds between offset commits (default 1)",
    )
    parser.add_argument(
        "--max-outstanding",
        type=int,
        default=20_000,
        help="stop reading while this many records are not yet settled (default 20000)",
    )
    add_kafka_arguments(parser)
    add_registry_argument(parser)
    parser.set_defaults(run=run)


def _partitions(consumer: Consumer, topic: str) -> int | None:
    topics = consumer.list_topics(topic, timeout=30).topics
    if topic not in topics or topics[topic].error is not None:
        return None
    return len(topics[topic].partitions)


def _ensure_dead_letter_topic(
    args: argparse.Namespace, consumer: Consumer, partitions: int
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    if _partitions(consumer, args.dead_letter_topic) is not None:
        return
    admin = AdminClient(client_config(args))
    future = admin.create_topics([NewTopic(args.dead_letter_topic, partitions)])[
        args.dead_letter_topic
    ]
    try:
        future.result(30)
    except Exception as err:
        if _partitions(consumer, args.dead_letter_topic) is None:  # not created meanwhile
            raise UsageError(
                f"dead-letter topic {args.dead_letter_topic} is missing and cannot be created: "
                f"{err}"
            ) from None


def run(args: argparse.Namespace) -> int:
    # Imported here: every other ``atp`` command would pay for httpx and the loop.
    from confluent_kafka import Consumer, Producer

    from pipelines.channel_sync.config import ConfigError, load_config
    from pipelines.channel_sync.loop import ChannelSync
    from pipelines.channel_sync.metrics import Metrics
    from pipelines.wire import WireFormat

    if args.commit_interval <= 0 or args.max_outstanding < 1:
        raise UsageError("--commit-interval and --max-outstanding must be positive")
    try:
        config = load_config(args.config)
    except ConfigError as err:
        raise UsageError(f"bad channels file {args.config}: {err}") from None
    consumer = Consumer(
        client_config(
            args,
            **{
                "group.id": args.group_id,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            },
        )
    )
    partitions = _partitions(consumer, args.topic)
    if partitions is None:
        consumer.close()
        raise UsageError(f"topic not found: {args.topic}")
    _ensure_dead_letter_topic(args, consumer, partitions)
    producer = Producer(client_config(args, **{"enable.idempotence": True, "linger.ms": 20}))
    metrics = Metrics()
    if args.metrics_port is not None:
        try:
            metrics.serve(args.metrics_port, args.metrics_host)
        except OSError as err:
            consumer.close()
            raise UsageError(f"--metrics-port {args.metrics_port}: {err.strerror}") from None
    sync = ChannelSync(
        consumer,
        producer,
        WireFormat(args.registry_url),
        args.topic,
        args.dead_letter_topic,
        config,
        metrics,
        commit_interval=args.commit_interval,
        max_outstanding=args.max_outstanding,
    )

    def stop(_signal: int, _frame: FrameType | None) -> None:
        sync.stopping = True  # let the pushes in flight finish, commit, close

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.perf_counter()
    try:
        consumer.subscribe([args.topic], on_assign=sync.on_assign, on_revoke=sync.on_revoke)
        sync.run(args.until_end)
    finally:
        consumer.close()
        sync.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    elapsed = time.perf_counter() - started
    print(f"channel-sync: {metrics.summary()}, {elapsed:.1f}s", file=sys.stderr)
    return 0
