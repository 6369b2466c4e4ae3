"""``atp status``: consumer lag, the last checkpoint and serving-store counts, at a glance."""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from pipelines.kafka_options import add_kafka_arguments, client_config
from pipelines.stream_config import JobConfig
from state.serving import SnapshotStore

_DEFAULTS = JobConfig()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="print consumer lag, the last checkpoint and counts",
        description="Consumer lag of the job's group on the events topic, its last completed "
        "checkpoint (from the Flink REST API when given, else the checkpoint directory) and "
        "the number of items and keys in the serving store.",
    )
    add_kafka_arguments(parser)
    parser.add_argument("--topic", default=_DEFAULTS.topics.events, help="events topic")
    parser.add_argument("--group-id", default=_DEFAULTS.group_id, help="the job's consumer group")
    parser.add_argument("--redis-url", default=_DEFAULTS.redis_url, help="serving store")
    parser.add_argument("--checkpoint-dir", default=_DEFAULTS.checkpoint_dir)
    parser.add_argument("--rest-url", help="Flink REST API, e.g. http://127.0.0.1:8081")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def consumer_lag(args: argparse.Namespace) -> dict[str, Any]:
    consumer = Consumer(client_config(args, **{"group.id": args.group_id}))
    try:
        metadata = consumer.list_topics(args.topic, timeout=10)
        partitions = sorted(metadata.topics[args.topic].partitions)
        committed = consumer.committed(
            [TopicPartition(args.topic, p) for p in partitions], timeout=10
        )
        per_partition = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            position = tp.offset if tp.offset >= 0 else low
            per_partition[tp.partition] = high - position
        return {"total": sum(per_partition.values()), "partitions": per_partition}
    finally:
        consumer.close()


def last_checkpoint(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.rest_url:
        with urllib.request.urlopen(f"{args.rest_url}/jobs/overview", timeout=5) as response:
            jobs = [j for j in json.load(response)["jobs"] if j["state"] == "RUNNING"]
        if not jobs:
            return None
        url = f"{args.rest_url}/jobs/{jobs[0]['jid']}/checkpoints"
        with urllib.request.urlopen(url, timeout=5) as response:
            latest = json.load(response)["latest"]["completed"]
        if not latest:
            return None
        age = time.time() - latest["latest_ack_timestamp"] / 1000
        return {
            "id": latest["id"],
            "age_s": round(age, 1),
            "duration_ms": latest["end_to_end_duration"],
            "source": "rest",
        }
    root = Path(args.checkpoint_dir.removeprefix("file://"))
    found = sorted(root.glob("*/chk-*"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    newest = found[-1]
    return {
        "id": int(newest.name.removeprefix("chk-")),
        "age_s": round(time.time() - newest.stat().st_mtime, 1),
        "duration_ms": None,
        "source": str(newest.parent),
    }


def run(args: argparse.Namespace) -> int:
    store = SnapshotStore.from_url(args.redis_url)
    items = store.items()
    lag, checkpoint = consumer_lag(args), last_checkpoint(args)
    keys = sum(len(store.locations(item)) for item in items)
    if args.json:
        print(json.dumps({"lag": lag, "checkpoint": checkpoint, "items": len(items), "keys": keys}))
        return 0
    print(f"lag:        {lag['total']} events ({lag['partitions']})")
    if checkpoint is None:
        print("checkpoint: none completed yet")
    else:
        duration = checkpoint["duration_ms"]
        print(
            f"checkpoint: #{checkpoint['id']}, {checkpoint['age_s']}s ago"
            + ("" if duration is None else f", took {duration} ms")
        )
    print(f"store:      {len(items)} items, {keys} keys")
    return 0
