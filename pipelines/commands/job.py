"""``atp job``: run the stream job locally (an embedded Flink MiniCluster)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, kafka_settings
from pipelines.stream_config import JobConfig, Topics
from pipelines.usage import UsageError, policy_file

_DEFAULTS = JobConfig()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "job",
        help="run the stream job locally",
        description="Run the PyFlink job: Kafka events -> keyed ATP fold -> Redis snapshots, "
        "ATP change, exception and dead-letter topics, with exactly-once checkpoints.",
    )
    add_kafka_arguments(parser)
    add_registry_argument(parser)
    parser.add_argument("--group-id", default=_DEFAULTS.group_id, help="consumer group")
    parser.add_argument(
        "--redis-url",
        default=_DEFAULTS.redis_url,
        help="serving store; name the ACL user in it (redis://atp-writer@host:6379/0), "
        "rediss:// for TLS",
    )
    parser.add_argument(
        "--redis-password-file",
        help="file holding the Redis user's password, read where the sink runs; "
        "env ATP_REDIS_PASSWORD there wins over it",
    )
    parser.add_argument("--topic-prefix", default="atp.", help="prefix of the job's topics")
    parser.add_argument("--parallelism", type=int, default=_DEFAULTS.parallelism)
    parser.add_argument(
        "--checkpoint-interval-ms", type=int, default=_DEFAULTS.checkpoint_interval_ms
    )
    parser.add_argument("--checkpoint-dir", default=_DEFAULTS.checkpoint_dir)
    parser.add_argument("--state-backend", choices=("hashmap", "rocksdb"), default="hashmap")
    parser.add_argument(
        "--restore-from", help="start from this retained checkpoint or savepoint path"
    )
    parser.add_argument("--out-of-orderness-ms", type=int, default=_DEFAULTS.out_of_orderness_ms)
    parser.add_argument("--idleness-ms", type=int, default=_DEFAULTS.idleness_ms)
    parser.add_argument(
        "--max-drift-ms",
        type=int,
        default=_DEFAULTS.max_drift_ms,
        help="event time a partition may read ahead of the slowest before it pauses",
    )
    parser.add_argument("--transactional-id-prefix", default=_DEFAULTS.transactional_id_prefix)
    parser.add_argument(
        "--policy", help="channel policy JSON to start with; the policy topic replaces it"
    )
    parser.add_argument(
        "--prometheus-port",
        type=int,
        help="serve Flink's metrics for Prometheus on this port (all interfaces; local runs "
        "only: a cluster's configuration enables its own reporter)",
    )
    parser.add_argument(
        "--flink-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Flink setting for the job (repeatable), applied over the job's own, "
        "e.g. python.fn-execution.bundle.size=1000",
    )
    parser.set_defaults(run=run)


def flink_settings(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` flags as a dict (usage error on a flag without ``=``)."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--flink-setting takes KEY=VALUE, got {pair!r}")
        settings[key.strip()] = value.strip()
    return settings


def policy_document(path: str) -> object:
    """The policy file's JSON, after checking that it is a valid policy (usage error if not)."""
    policy_file(path)
    return orjson.loads(Path(path).read_bytes())


def config_from(args: argparse.Namespace) -> JobConfig:
    if args.redis_password_file and not Path(args.redis_password_file).is_file():
        raise UsageError(f"Redis password file not found: {args.redis_password_file}")
    settings = kafka_settings(args, resolve_files=False)
    return replace(
        _DEFAULTS,
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id,
        redis_url=args.redis_url,
        redis_password_file=(
            str(Path(args.redis_password_file).resolve()) if args.redis_password_file else None
        ),
        registry_url=args.registry_url,
        topics=Topics.with_prefix(args.topic_prefix),
        parallelism=args.parallelism,
        checkpoint_interval_ms=args.checkpoint_interval_ms,
        checkpoint_dir=args.checkpoint_dir,
        state_backend=args.state_backend,
        restore_from=args.restore_from,
        out_of_orderness_ms=args.out_of_orderness_ms,
        idleness_ms=args.idleness_ms,
        max_drift_ms=args.max_drift_ms,
        transactional_id_prefix=args.transactional_id_prefix,
        kafka_properties=settings,
        prometheus_port=args.prometheus_port,
        flink_settings=flink_settings(args.flink_setting),
        policy=orjson.dumps(policy_document(args.policy)).decode() if args.policy else None,
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.stream_job import run as run_job  # imports PyFlink: only when needed

    run_job(config_from(args), local=True)
    return 0
