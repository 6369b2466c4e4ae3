"""``atp reconcile``: a WMS or ERP stock count against the snapshots' ``on_hand``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from pipelines.event_publisher import EventPublisher, PublishRefusedError, record_key_and_time
from pipelines.jsonl import dumps, open_output
from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.reconcile import (
    BadCount,
    Count,
    CountFileError,
    Report,
    Totals,
    compare,
    correction_line,
    read_counts,
    sniff_format,
    summary_lines,
    to_csv,
)
from pipelines.usage import UsageError, existing_file
from state.serving import SnapshotStore
from transforms.events import Event, Key


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="compare a stock count file with on_hand per key; report and correct variances",
        description=(
            "Compare a WMS or ERP count file (CSV with a header, or JSON lines: item_id, "
            "location_id, counted_quantity, counted_at) with the on_hand of snapshots (atp "
            "replay or atp dump output, or the live serving store). Writes a variance report "
            "(per key, largest absolute variance first, then per location, then the total), "
            "prints a summary, and optionally exports metrics and publishes CYCLE_COUNT "
            "corrections. Bad count rows go to --dlq (or stderr) with the reason. "
            "Exit 0 when the comparison completed, 1 when corrections could not be "
            "delivered, 2 on a usage error."
        ),
    )
    parser.add_argument("--counts", required=True, help="count file, CSV or JSON lines")
    parser.add_argument(
        "--counts-format", choices=("csv", "jsonl"), help="default: by file name, else sniffed"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshots", help="snapshots as JSON lines (atp replay / atp dump)")
    source.add_argument("--redis-url", help="read the live serving store instead")
    parser.add_argument(
        "--output", required=True, help="variance report: .csv for CSV, else JSON lines"
    )
    parser.add_argument("--summary", default="-", help="readable summary (default: stdout)")
    parser.add_argument("--top", type=int, default=10, help="largest variances in the summary")
    parser.add_argument(
        "--dlq", help="bad count rows as JSON lines (default: one line each on stderr)"
    )
    parser.add_argument(
        "--metrics-file",
        help="write variance metrics in the Prometheus text format (node exporter textfile "
        "collector; replaced atomically)",
    )
    parser.add_argument(
        "--include-stale",
        action="store_true",
        help="also correct keys whose count is older than their snapshot (see docs)",
    )
    parser.add_argument(
        "--corrections-output", help="the CYCLE_COUNT corrections as JSON lines (a dry run)"
    )
    parser.add_argument(
        "--publish-corrections",
        action="store_true",
        help="publish the CYCLE_COUNT corrections to --topic (explicit: it changes stock)",
    )
    parser.add_argument("--topic", default="atp.events", help="events topic for corrections")
    parser.add_argument(
        "--source-system", default="RECONCILE", help="source_system of the corrections"
    )
    parser.add_argument("--correlation-id", help="correlation_id of the corrections")
    add_kafka_arguments(parser)
    add_registry_argument(parser)
    parser.set_defaults(run=run)


def _snapshot_file(path: str) -> dict[Key, dict[str, Any]]:
    snapshots: dict[Key, dict[str, Any]] = {}
    for line_no, raw in enumerate(existing_file(path).read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            snap = orjson.loads(raw)
            snapshots[(snap["item_id"], snap["location_id"])] = snap
            int(snap["on_hand"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UsageError(f"{path}:{line_no}: not a snapshot line") from None
    return snapshots


def _snapshot_store(url: str, counts: Iterable[Count]) -> dict[Key, dict[str, Any]]:
    """The live snapshots of the counted keys, one round trip per item."""
    store = SnapshotStore.from_url(url)
    items = sorted({count.key[0] for count in counts})
    return {
        (snap["item_id"], snap["location_id"]): snap
        for item in items
        for snap in store.item_snapshots(item)
    }


def _bad_rows(path: str | None, bad: list[BadCount], counts_path: str) -> None:
    if path is not None:
        with open_output(path) as out:
            out.writelines(dumps({"source_file": counts_path, **b.to_json()}) for b in bad)
        return
    for b in bad:
        reason = b.reasons[0]
        print(f"{counts_path}:{b.line}: {reason.code}: {reason.message}", file=sys.stderr)


def write_metrics(path: str, report: Report) -> None:
    """Gauges per location, for a batch job: written to a file a node exporter serves."""
    registry = CollectorRegistry()
    by_location: dict[str, tuple[str, Callable[[Totals], int]]] = {
        "atp_reconcile_keys": ("Counted keys", lambda t: t.keys),
        "atp_reconcile_keys_with_variance": (
            "Counted keys whose on_hand differs",
            lambda t: t.keys_with_variance,
        ),
        "atp_reconcile_counted_units": ("Units counted", lambda t: t.counted),
        "atp_reconcile_on_hand_units": ("on_hand of the counted keys", lambda t: t.on_hand),
        "atp_reconcile_variance_units": ("Net variance: counted - on_hand", lambda t: t.variance),
        "atp_reconcile_abs_variance_units": ("Absolute variance", lambda t: t.abs_variance),
        "atp_reconcile_corrections": ("CYCLE_COUNT corrections", lambda t: t.corrections),
        "atp_reconcile_withheld_corrections": (
            "Corrections withheld: count older than the snapshot",
            lambda t: t.withheld,
        ),
    }
    for name, (doc, value) in by_location.items():
        gauge = Gauge(name, doc, ["location_id"], registry=registry)
        for totals in report.locations:
            gauge.labels(totals.location_id).set(value(totals))
    bad = Gauge(
        "atp_reconcile_bad_rows", "Count rows not used, by reason", ["reason"], registry=registry
    )
    for b in report.bad:
        bad.labels(b.reasons[0].code).inc()
    latest = max((row.count.event.occurred_at for row in report.rows), default=None)
    if latest is not None:
        Gauge(
            "atp_reconcile_latest_count_timestamp_seconds",
            "The latest counted_at of the run (event time)",
            registry=registry,
        ).set(latest / 1000)
    try:
        write_to_textfile(path, registry)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None


def publish(args: argparse.Namespace, events: list[Event]) -> list[str]:
    """Publish corrections exactly as ``atp produce`` publishes a log's lines; return the
    delivery failures."""
    publisher = EventPublisher(client_config(args), args.registry_url, args.topic)
    try:
        for event in events:
            line = correction_line(event)
            key, at = record_key_and_time(line, 0)
            publisher.send(publisher.encoded_line(line), key, at)
        return publisher.close()
    except PublishRefusedError as err:
        return [f"the cluster refused the client: {err}"]


def run(args: argparse.Namespace) -> int:
    counts_path = existing_file(args.counts)
    if args.top < 0:
        raise UsageError("--top must not be negative")
    data = counts_path.read_bytes()
    fmt = args.counts_format or sniff_format(args.counts, data[:4096])
    try:
        counts, bad = read_counts(data, fmt, args.source_system, args.correlation_id)
    except CountFileError as err:
        raise UsageError(f"{args.counts}: {err}") from None
    snapshots = (
        _snapshot_file(args.snapshots)
        if args.snapshots is not None
        else _snapshot_store(args.redis_url, counts)
    )
    report = compare(counts, snapshots, bad, include_stale=args.include_stale)

    _bad_rows(args.dlq, report.bad, args.counts)
    with open_output(args.output) as out:
        if args.output.lower().endswith(".csv"):
            out.write(to_csv(report.records()).encode())
        else:
            out.writelines(dumps(record) for record in report.records())
    corrections = report.corrections()
    if args.corrections_output is not None:
        with open_output(args.corrections_output) as out:
            out.writelines(correction_line(event) + b"\n" for event in corrections)
    if args.metrics_file is not None:
        write_metrics(args.metrics_file, report)

    lines = summary_lines(report, args.top)
    status = 0
    if args.publish_corrections:
        failures = publish(args, corrections)
        if failures:
            lines.append(f"corrections: NOT all delivered to {args.topic}: {failures[0]}")
            status = 1
        else:
            lines.append(f"corrections: {len(corrections)} published to {args.topic}")
    else:
        lines.append(f"corrections: {len(corrections)} (not published; see --publish-corrections)")
    with open_output(args.summary) as out:
        out.writelines(f"{line}\n".encode() for line in lines)
    return status
