"""``atp backfill``: the Beam backfill (see docs/backfill.md).

For a JSON-lines input it takes ``atp replay``'s options and writes the same files.
Apache Beam is imported only when the command runs: other commands stay fast to start.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any

from pipelines.commands.replay import add_replay_outputs
from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.usage import UsageError, existing_file, policy_file, time_flag
from transforms.timeutil import format_iso

PROGRESS_MIN_UNITS = 16 * 1024 * 1024
"""Inputs at least this large (bytes, or records for Kafka / 256) show progress bars."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="fold event history into ATP snapshots with Apache Beam (files, archives, Kafka)",
        description=(
            "Fold a history of events into one snapshot per (item_id, location_id) with an "
            "Apache Beam pipeline: per item, events are put back in log order and folded with "
            "the same code as atp replay. For a JSON-lines --input it takes atp replay's "
            "options and writes the same files, byte for byte. Exit 0 when the run completed, "
            "2 on a usage error."
        ),
    )
    source = parser.add_argument_group("history (exactly one)")
    source.add_argument("--input", help="events as JSON lines, in log order (a file)")
    source.add_argument(
        "--archive", help="Avro container files of events: a file, a directory or a glob"
    )
    source.add_argument("--topic", help="the events topic, read from --from-* to --to-*")
    kafka = parser.add_argument_group("Kafka bounds (per partition; default: all of it)")
    kafka.add_argument("--from-offset", type=int, help="first offset")
    kafka.add_argument("--to-offset", type=int, help="end offset (exclusive)")
    kafka.add_argument("--from-time", help="first record time, ISO-8601 (broker time index)")
    kafka.add_argument("--to-time", help="last record time, ISO-8601 (inclusive)")
    add_kafka_arguments(parser)
    add_registry_argument(parser)

    out = parser.add_argument_group("outputs")
    out.add_argument("--output", help="snapshots, sorted by key ('-' for stdout)")
    out.add_argument(
        "--output-format",
        choices=("jsonl", "avro"),
        default="jsonl",
        help="JSON lines (as atp replay) or an Avro container file of AtpSnapshot records",
    )
    add_replay_outputs(out)
    out.add_argument(
        "--redis-url",
        help="also load the snapshots into this serving store (never over a newer revision)",
    )

    run_group = parser.add_argument_group("runner")
    run_group.add_argument("--runner", default="DirectRunner", help="Beam runner")
    run_group.add_argument(
        "--workers", type=int, default=2, help="DirectRunner workers (default: 2, one per core)"
    )
    run_group.add_argument(
        "--running-mode",
        choices=("multi_processing", "multi_threading", "in_memory"),
        default="multi_processing",
        help="DirectRunner mode (default: multi_processing, one process per worker)",
    )
    run_group.add_argument(
        "--beam-arg",
        dest="beam_args",
        action="append",
        default=[],
        metavar="ARG",
        help="a Beam pipeline option, passed through (repeatable), "
        "e.g. --beam-arg=--flink_master=HOST:8081",
    )
    run_group.add_argument(
        "--temp-location",
        help="where shards are written before the ordered merge (default: a local temporary "
        "directory; a shared file system or bucket on a distributed runner)",
    )
    run_group.add_argument("--split-mb", type=int, default=32, help="file split size, MiB")
    run_group.add_argument(
        "--split-records", type=int, default=500_000, help="Kafka split size, offsets"
    )
    run_group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: on for inputs of 16 MiB or 64k records+)",
    )
    parser.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    sources = [name for name in ("input", "archive", "topic") if getattr(args, name)]
    if len(sources) != 1:
        raise UsageError("give exactly one of --input, --archive, --topic")
    if args.input == "-":
        raise UsageError("--input must be a file (splits are read in parallel)")
    if (args.policy is None) != (args.channel_output is None):
        raise UsageError("--policy and --channel-output go together")
    if args.output is None and args.redis_url is None:
        raise UsageError("give --output, --redis-url or both")
    kafka_bounds = (args.from_offset, args.to_offset, args.from_time, args.to_time)
    if args.topic is None and any(v is not None for v in kafka_bounds):
        raise UsageError("--from-*/--to-* bound a --topic")
    if args.split_mb < 1 or args.split_records < 1 or args.workers < 1:
        raise UsageError("--split-mb, --split-records and --workers must be positive")


def _plan_splits(args: argparse.Namespace) -> tuple[list[Any], int, str]:
    """The splits, the total amount of input and its unit."""
    from pipelines.backfill_kafka import Bounds, plan_kafka
    from pipelines.backfill_sources import plan_avro, plan_json_lines, total_units

    if args.input:
        path = existing_file(args.input)
        splits, _ = plan_json_lines(str(path), args.input, args.split_mb << 20)
        return list(splits), total_units(splits), "B"
    if args.archive:
        archive = plan_avro(args.archive)
        if not archive:
            raise UsageError(f"no Avro files at {args.archive}")
        return list(archive), total_units(archive), "B"
    bounds = Bounds(
        start_offset=args.from_offset,
        end_offset=args.to_offset,
        start_time=time_flag("--from-time", args.from_time),
        end_time=time_flag("--to-time", args.to_time),
    )
    config = client_config(args)
    kafka = plan_kafka(config, args.topic, bounds, args.registry_url, args.split_records)
    return list(kafka), total_units(kafka), "rec"


def _options(args: argparse.Namespace) -> Any:
    from apache_beam.options.pipeline_options import PipelineOptions

    argv = [f"--runner={args.runner}"]
    if args.runner in ("DirectRunner", "direct"):
        argv += [
            f"--direct_running_mode={args.running_mode}",
            f"--direct_num_workers={args.workers}",
        ]
    return PipelineOptions([*argv, *args.beam_args])


def run(args: argparse.Namespace) -> int:
    _check(args)
    as_of = time_flag("--as-of", args.as_of)
    policy = policy_file(args.policy) if args.policy else None
    # Beam logs worker chatter (and a missing cloud SDK) as warnings: errors only.
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    started = time.perf_counter()
    splits, total, unit = _plan_splits(args)

    local_temp = tempfile.mkdtemp(prefix="atp-backfill-")
    temp_dir = (
        local_temp
        if args.temp_location is None
        else f"{args.temp_location.rstrip('/')}/atp-backfill-{uuid.uuid4().hex[:12]}"
    )
    threshold = PROGRESS_MIN_UNITS if unit == "B" else PROGRESS_MIN_UNITS >> 8
    show = args.progress if args.progress is not None else total >= threshold
    local = args.runner in ("DirectRunner", "direct")
    try:
        return _run(args, as_of, policy, splits, total, unit, temp_dir, show and local, started)
    finally:
        shutil.rmtree(local_temp, ignore_errors=True)
        if args.temp_location is not None:
            from apache_beam.io.filesystems import FileSystems

            if FileSystems.exists(temp_dir):
                FileSystems.delete([temp_dir])


def _run(
    args: argparse.Namespace,
    as_of: int | None,
    policy: Any,
    splits: list[Any],
    total: int,
    unit: str,
    temp_dir: str,
    show: bool,
    started: float,
) -> int:
    import apache_beam as beam

    from pipelines.backfill import AVRO, Plan, build
    from pipelines.backfill_progress import ProgressView

    progress_dir = os.path.join(tempfile.gettempdir(), f"atp-progress-{uuid.uuid4().hex}")
    plan = Plan(
        splits=splits,
        temp_dir=temp_dir,
        as_of=as_of,
        policy=policy,
        exceptions=args.exceptions is not None,
        dead_letters=args.dlq is not None,
        snapshots=args.output is not None,
        output_format=AVRO if args.output_format == "avro" else "jsonl",
        redis_url=args.redis_url,
        progress_dir=progress_dir if show else None,
    )
    pipeline = beam.Pipeline(options=_options(args))
    build(pipeline, plan)
    try:
        if show:
            with ProgressView(progress_dir, total, unit):
                result = pipeline.run()
                result.wait_until_finish()
        else:
            result = pipeline.run()
            result.wait_until_finish()
    finally:
        shutil.rmtree(progress_dir, ignore_errors=True)
    _write_outputs(args, plan)
    _summary(result, as_of, time.perf_counter() - started)
    return 0


def _write_outputs(args: argparse.Namespace, plan: Any) -> None:
    from pipelines.backfill import CHANNELS, DEAD_LETTERS, EXCEPTIONS, SNAPSHOTS, merge_output
    from pipelines.jsonl import open_output

    if args.output is not None:
        lines = merge_output(plan.temp_dir, SNAPSHOTS)
        if args.output_format == "avro":
            _write_avro(args.output, lines)
        else:
            with open_output(args.output) as out:
                out.writelines(line + b"\n" for line in lines)
    for path, name in (
        (args.channel_output, CHANNELS),
        (args.exceptions, EXCEPTIONS),
        (args.dlq, DEAD_LETTERS),
    ):
        if path is not None:
            with open_output(path) as out:
                out.writelines(line + b"\n" for line in merge_output(plan.temp_dir, name))


def _write_avro(path: str, lines: list[bytes]) -> None:
    import fastavro
    import orjson

    from pipelines.jsonl import open_output
    from state.schemas import ATP_SNAPSHOT, parsed_schema

    with open_output(path) as out:
        fastavro.writer(out, parsed_schema(ATP_SNAPSHOT), (orjson.loads(line) for line in lines))


def _summary(result: Any, as_of: int | None, elapsed: float) -> None:
    from apache_beam.metrics.metric import MetricsFilter

    from pipelines.backfill import NAMESPACE

    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counts: dict[str, int] = {}
    for counter in metrics["counters"]:
        name = counter.key.metric.name
        counts[name] = counts.get(name, 0) + (counter.committed or 0)
    latest = [d.committed.max for d in metrics["distributions"] if d.committed is not None]
    clock = as_of if as_of is not None else max((t for t in latest if t is not None), default=None)
    lines = counts.get("lines", 0)
    redis = ""
    if "redis_written" in counts or "redis_kept_newer" in counts:
        redis = (
            f", redis {counts.get('redis_written', 0)} written "
            f"{counts.get('redis_kept_newer', 0)} kept newer"
        )
    print(
        f"backfill: {lines} lines, {counts.get('applied', 0)} applied, "
        f"{counts.get('duplicates', 0)} duplicates, {counts.get('dead_letters', 0)} dead letters, "
        f"{counts.get('after_as_of', 0)} after as-of, {counts.get('expired', 0)} expired, "
        f"{counts.get('exceptions', 0)} exceptions, {counts.get('keys', 0)} keys{redis}, "
        f"as of {'-' if clock is None else format_iso(clock)}, {elapsed:.1f}s "
        f"({lines / max(elapsed, 1e-9):,.0f} lines/s)",
        file=sys.stderr,
    )
