"""``atp replay``: the engine-free contract tool (see docs/semantics.md, "Replay command")."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from tqdm import tqdm

from pipelines.jsonl import dumps, open_input, open_output
from pipelines.replay import Replayer, ReplayResult
from pipelines.usage import UsageError, existing_file, policy_file, time_flag
from transforms.channels import Policy
from transforms.timeutil import format_iso

PROGRESS_MIN_BYTES = 16 * 1024 * 1024
"""Inputs at least this large show a progress bar on stderr."""
_CHUNK = 50_000


def add_replay_outputs(group: Any) -> None:
    """The clock and side outputs of a replay; ``atp backfill`` takes the same ones."""
    group.add_argument(
        "--as-of",
        help="replay clock, ISO-8601 (default: the largest occurred_at read); "
        "events after it are not applied, reservations expire at it",
    )
    group.add_argument("--dlq", help="dead letters as JSON lines (default: counted only)")
    group.add_argument("--policy", help="channel policy JSON; needs --channel-output")
    group.add_argument("--channel-output", help="channel ATP as JSON lines; needs --policy")
    group.add_argument("--exceptions", help="exception records as JSON lines")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="fold a JSON-lines event log into final ATP snapshots",
        description=(
            "Read canonical events as JSON lines in log order and write one final snapshot "
            "per (item_id, location_id), sorted by key. Invalid records go to --dlq with the "
            "reason, line number and raw record; they never fail the run. "
            "Exit 0 when the run completed, 2 on a usage error."
        ),
    )
    parser.add_argument("--input", required=True, help="events as JSON lines ('-' for stdin)")
    parser.add_argument("--output", required=True, help="snapshots as JSON lines ('-' for stdout)")
    add_replay_outputs(parser)
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"progress bar on stderr (default: on for inputs of {PROGRESS_MIN_BYTES >> 20} MiB+)",
    )
    parser.set_defaults(run=run)


@contextlib.contextmanager
def _maybe_output(path: str | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
    else:
        with open_output(path) as handle:
            yield handle


def _chunks(handle: IO[bytes], bar: tqdm[Any] | None) -> Iterator[list[bytes]]:
    while True:
        chunk = handle.readlines(_CHUNK * 64)
        if not chunk:
            return
        if bar is not None:
            bar.update(sum(len(line) for line in chunk))
        yield chunk


def _replay(
    args: argparse.Namespace, as_of: int | None, policy: Policy | None, size: int
) -> ReplayResult:
    show = args.progress if args.progress is not None else size >= PROGRESS_MIN_BYTES
    with (
        _maybe_output(args.dlq) as dlq,
        _maybe_output(args.exceptions) as exceptions_out,
        open_input(args.input) as handle,
    ):
        replayer = Replayer(
            as_of=as_of,
            source_file=None if args.input == "-" else args.input,
            on_dead_letter=(lambda d: dlq.write(dumps(d.to_json()))) if dlq else _drop,
            on_exception=(lambda e: exceptions_out.write(dumps(e.to_json())))
            if exceptions_out
            else _drop,
        )
        bar = (
            tqdm(total=size or None, unit="B", unit_scale=True, desc="replay", file=sys.stderr)
            if show
            else None
        )
        line = 1
        for chunk in _chunks(handle, bar):
            replayer.feed(chunk, first_line=line)
            line += len(chunk)
        if bar is not None:
            bar.close()
        return replayer.finish(policy)


def _drop(_: object) -> None:
    return None


def run(args: argparse.Namespace) -> int:
    source = existing_file(args.input)
    as_of = time_flag("--as-of", args.as_of)
    if (args.policy is None) != (args.channel_output is None):
        raise UsageError("--policy and --channel-output go together")
    policy = policy_file(args.policy) if args.policy else None
    size = os.path.getsize(source) if args.input != "-" else 0

    started = time.perf_counter()
    # The states form no reference cycles; the cyclic collector would only re-scan
    # millions of live objects again and again (measured: about 40% of replay time).
    gc.disable()
    try:
        result = _replay(args, as_of, policy, size)
    finally:
        gc.enable()
    with open_output(args.output) as out:
        out.writelines(dumps(s.to_json()) for s in result.snapshots)
    if args.channel_output:
        with open_output(args.channel_output) as out:
            out.writelines(dumps(c.to_json()) for c in result.channels)

    elapsed = time.perf_counter() - started
    stats = result.stats
    clock = "-" if result.clock is None else format_iso(result.clock)
    print(
        f"replay: {stats.lines} lines, {stats.applied} applied, {stats.duplicates} duplicates, "
        f"{stats.dead_letters} dead letters, {stats.after_as_of} after as-of, "
        f"{stats.expired} expired, {stats.exceptions} exceptions, {stats.keys} keys, "
        f"as of {clock}, {elapsed:.1f}s ({stats.lines / max(elapsed, 1e-9):,.0f} lines/s)",
        file=sys.stderr,
    )
    return 0
