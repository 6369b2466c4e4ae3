"""``atp explain``: the events, in log order, that produced one key's snapshot, and why."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tqdm import tqdm

from pipelines.explain import Explainer, Explanation, Step, render_text, select
from pipelines.jsonl import dumps, open_input, open_output
from pipelines.usage import existing_file, time_flag

PROGRESS_MIN_BYTES = 16 * 1024 * 1024
_CHUNK_BYTES = 4 * 1024 * 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="list the events that produced one key's snapshot, with the reason for each",
        description=(
            "Read an event log like atp replay and list, in log order, every event at "
            "(ITEM, LOCATION) with the quantities after it: applied, duplicate, ignored "
            "(closed reference), dead-lettered (with the validation reason) or after "
            "--as-of; then the expiries and overdue supply at the clock, and the final "
            "snapshot, which is the one atp replay writes for that key. --event-id and "
            "--correlation-id (e.g. a snapshot's last_event_id and correlation_id) show "
            "only those events; the quantities are still those of the whole log. "
            "Exit 0 when the log was read, 2 on a usage error."
        ),
    )
    parser.add_argument("item_id", metavar="ITEM")
    parser.add_argument("location_id", metavar="LOCATION")
    parser.add_argument("--input", required=True, help="events as JSON lines ('-' for stdin)")
    parser.add_argument(
        "--as-of",
        help="clock, ISO-8601, as in atp replay (default: the largest occurred_at read)",
    )
    parser.add_argument(
        "--event-id", action="append", default=[], help="show only this event (repeatable)"
    )
    parser.add_argument(
        "--correlation-id",
        action="append",
        default=[],
        help="show only events with this correlation id (repeatable)",
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON lines: one per step, then the snapshot"
    )
    parser.add_argument("--output", default="-", help="where to write (default: stdout)")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"progress bar on stderr (default: on for inputs of {PROGRESS_MIN_BYTES >> 20} MiB+)",
    )
    parser.set_defaults(run=run)


def explain_file(args: argparse.Namespace, as_of: int | None, size: int) -> Explanation:
    explainer = Explainer(args.item_id, args.location_id, as_of=as_of)
    show = args.progress if args.progress is not None else size >= PROGRESS_MIN_BYTES
    bar = (
        tqdm(total=size or None, unit="B", unit_scale=True, desc="explain", file=sys.stderr)
        if show
        else None
    )
    line = 1
    with open_input(args.input) as handle:
        while chunk := handle.readlines(_CHUNK_BYTES):
            explainer.feed(chunk, first_line=line)
            line += len(chunk)
            if bar is not None:
                bar.update(sum(len(raw) for raw in chunk))
    if bar is not None:
        bar.close()
    return explainer.finish()


def run(args: argparse.Namespace) -> int:
    source = existing_file(args.input)
    as_of = time_flag("--as-of", args.as_of)
    size = os.path.getsize(source) if args.input != "-" else 0
    explanation = explain_file(args, as_of, size)
    steps = select(explanation.steps, args.event_id, args.correlation_id)
    try:
        _write(args, explanation, steps)
    except BrokenPipeError:  # the reader (head, less) stopped early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _write(args: argparse.Namespace, explanation: Explanation, steps: list[Step]) -> None:
    with open_output(args.output) as out:
        if args.json:
            out.writelines(dumps(step.to_json()) for step in steps)
            snapshot = explanation.snapshot
            out.write(
                dumps(
                    {
                        "status": "SNAPSHOT",
                        "snapshot": None if snapshot is None else snapshot.to_json(),
                        "counts": explanation.counts(),
                        "lines": explanation.lines,
                    }
                )
            )
        else:
            out.writelines(f"{text}\n".encode() for text in render_text(explanation, steps))
