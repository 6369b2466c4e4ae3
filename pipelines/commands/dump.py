"""``atp dump``: every snapshot in the serving store, as JSON lines sorted by key."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.jsonl import dumps, open_output
from state.serving import SnapshotStore


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dump",
        help="write every Redis snapshot as JSON lines",
        description="Write every snapshot in the serving store, sorted by (item_id, "
        "location_id), with the same fields as atp replay.",
    )
    parser.add_argument("--output", required=True, help="JSON-lines file ('-' for stdout)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="serving store")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = SnapshotStore.from_url(args.redis_url)
    with open_output(args.output) as out:
        out.writelines(dumps(snapshot) for snapshot in store.all_snapshots())
    return 0
