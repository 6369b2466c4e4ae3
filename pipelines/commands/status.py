"""``atp status``: consumer lag, events/s, the last checkpoint, serving-store counts and
the items changing most; once, as JSON, or as a live view (``--watch``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from confluent_kafka import KafkaException
from rich.console import Console
from rich.live import Live

from pipelines.job_status import (
    CaughtUp,
    ChangeDecoder,
    ChangeFeed,
    ChangeWindow,
    FlinkRest,
    GroupOffsets,
    RateMeter,
    Status,
    checkpoint_from_directory,
    store_counts,
)
from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.status_view import as_json, as_lines, render, summary
from pipelines.stream_config import ROOT, JobConfig
from pipelines.usage import UsageError
from state.serving import redis_client

_DEFAULTS = JobConfig()
# Where infra/job.sh (make up) writes the REST URL of the job it runs.
JOB_REST_URL_FILE = ROOT / "var" / "job" / "rest-url"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="print or watch consumer lag, events/s, the last checkpoint and counts",
        description="Consumer lag and events/s of the job's group on the events topic, its "
        "last completed checkpoint (from the Flink REST API, else the checkpoint directory) "
        "and the number of items and keys in the serving store. --watch redraws it every "
        "--interval seconds, with the items that changed most on the ATP change topic.",
    )
    add_kafka_arguments(parser)
    parser.add_argument("--topic", default=_DEFAULTS.topics.events, help="events topic")
    parser.add_argument(
        "--changes-topic", default=_DEFAULTS.topics.atp_changes, help="ATP change topic"
    )
    parser.add_argument("--group-id", default=_DEFAULTS.group_id, help="the job's consumer group")
    parser.add_argument("--redis-url", default=_DEFAULTS.redis_url, help="serving store")
    add_registry_argument(parser)
    parser.add_argument("--checkpoint-dir", default=_DEFAULTS.checkpoint_dir)
    parser.add_argument(
        "--rest-url",
        help="Flink REST API, e.g. http://127.0.0.1:8081 (default: the job make up runs)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--watch", action="store_true", help="a live view, until Ctrl-C")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    parser.add_argument(
        "--until-caught-up",
        action="store_true",
        help="with --watch: exit 0 once the lag has stayed 0 for --settle seconds",
    )
    parser.add_argument("--settle", type=float, default=6.0, help="seconds the lag must stay 0")
    parser.add_argument(
        "--timeout", type=float, help="with --until-caught-up: exit 1 after this many seconds"
    )
    parser.add_argument("--window", type=float, default=30.0, help="seconds of changes ranked")
    parser.add_argument("--top", type=int, default=10, help="items shown by change")
    parser.add_argument(
        "--rate-window", type=float, default=15.0, help="seconds events/s is measured over"
    )
    parser.set_defaults(run=run)


def rest_url(args: argparse.Namespace) -> str | None:
    if args.rest_url:
        return str(args.rest_url)
    if JOB_REST_URL_FILE.exists():
        return JOB_REST_URL_FILE.read_text(encoding="utf-8").strip() or None
    return None


class Collector:
    """Reads every figure of a ``Status`` from Kafka, Redis and the REST API."""

    def __init__(
        self,
        args: argparse.Namespace,
        feed: ChangeFeed | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.args = args
        self.clock = clock
        self.offsets = GroupOffsets(client_config(args), args.topic, args.group_id)
        self.redis = redis_client(args.redis_url)  # a user's password from the environment
        url = rest_url(args)
        self.rest = FlinkRest(url) if url else None
        self.meter = RateMeter(args.rate_window)
        self.feed = feed

    def collect(self) -> Status:
        lag = self.offsets.lag()
        self.meter.add(self.clock(), lag.consumed)
        job = self.rest.job() if self.rest else None
        checkpoint = None
        if self.rest and job and job.job_id:
            checkpoint = self.rest.checkpoint(job.job_id)
        if checkpoint is None:
            checkpoint = checkpoint_from_directory(self.args.checkpoint_dir)
        items, keys = store_counts(self.redis)
        feed = self.feed
        return Status(
            topic=self.args.topic,
            group_id=self.args.group_id,
            lag=lag,
            events_per_s=self.meter.rate(),
            job=job,
            checkpoint=checkpoint,
            items=items,
            keys=keys,
            top=None if feed is None else feed.window.top(self.args.top),
            window_s=None if feed is None else feed.window.window_s,
            changes_in_window=0 if feed is None else len(feed.window),
            undecodable_changes=0 if feed is None else feed.undecodable,
            last_change_error=None if feed is None else feed.last_error,
        )

    def close(self) -> None:
        self.offsets.close()
        self.redis.close()
        if self.feed:
            self.feed.close()


def _check(args: argparse.Namespace) -> None:
    if args.until_caught_up and not args.watch:
        raise UsageError("--until-caught-up needs --watch")
    if args.watch and args.json:
        raise UsageError("--watch and --json do not go together")
    if args.interval <= 0 or args.window <= 0 or args.rate_window <= 0 or args.top < 0:
        raise UsageError("--interval, --window and --rate-window must be positive")


def watch(args: argparse.Namespace, collector: Collector, console: Console) -> int:
    """Redraw until Ctrl-C, or with --until-caught-up until the lag stays 0 (exit 0) or
    --timeout passes (exit 1)."""
    assert collector.feed is not None
    caught_up = CaughtUp(args.settle)
    started = time.monotonic()
    first = status = collector.collect()
    with Live(render(status), console=console, auto_refresh=False) as live:
        while True:
            now = time.monotonic()
            if args.until_caught_up and caught_up.update(now, status.lag):
                break
            if args.timeout is not None and now - started >= args.timeout:
                console.print(
                    f"not caught up after {args.timeout:.0f}s; lag {status.lag.total:,}",
                    highlight=False,
                )
                return 1
            collector.feed.poll_for(args.interval)
            status = collector.collect()
            live.update(render(status), refresh=True)
    console.print(summary(first, status, time.monotonic() - started), highlight=False)
    return 0


def run(args: argparse.Namespace) -> int:
    _check(args)
    try:
        if not args.watch:
            collector = Collector(args)
            try:
                status = collector.collect()
            finally:
                collector.close()
            if args.json:
                print(json.dumps(as_json(status)))
            else:
                print("\n".join(as_lines(status)))
            return 0
        feed = ChangeFeed(
            client_config(args),
            args.changes_topic,
            ChangeDecoder(args.registry_url),
            ChangeWindow(args.window),
        )
        collector = Collector(args, feed)
        try:
            return watch(args, collector, Console())
        except KeyboardInterrupt:
            return 0
        finally:
            collector.close()
    except (KafkaException, redis.RedisError, RuntimeError) as err:
        print(f"atp status: error: {err}", file=sys.stderr)
        return 1
