"""``atp simulate``: write a seeded, realistic distributor event log."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from tqdm import tqdm

from pipelines.jsonl import open_output
from pipelines.simulate import SimConfig, sample_policy, simulate
from pipelines.usage import UsageError, time_flag

_DEFAULTS = SimConfig()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="generate a realistic distributor event log (JSON lines)",
        description=(
            "Generate canonical events for DCs and stores: OMS orders and cart holds with "
            "expiry, WMS waves and shipments, EDI ASNs with confidence, transfers, cycle "
            "counts, returns, quality holds, plus redeliveries and malformed records. "
            "The same flags and seed always give the same file."
        ),
    )
    parser.add_argument("--output", default="-", help="JSON-lines file ('-' for stdout)")
    parser.add_argument("--events", type=int, default=_DEFAULTS.events, help="lines to write")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="random seed")
    parser.add_argument("--skus", type=int, default=_DEFAULTS.skus, help="number of SKUs")
    parser.add_argument("--dcs", type=int, default=_DEFAULTS.dcs, help="distribution centres")
    parser.add_argument("--stores", type=int, default=_DEFAULTS.stores, help="stores")
    parser.add_argument("--start", default="2026-05-01T00:00:00Z", help="first event time")
    parser.add_argument("--days", type=float, default=_DEFAULTS.days, help="event-time span")
    parser.add_argument(
        "--duplicate-rate",
        type=float,
        default=_DEFAULTS.duplicate_rate,
        help="share of events delivered twice",
    )
    parser.add_argument(
        "--malformed-rate",
        type=float,
        default=_DEFAULTS.malformed_rate,
        help="share of malformed records mixed in",
    )
    parser.add_argument("--policy-output", help="also write a channel policy for this network")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar"
    )
    parser.set_defaults(run=run)


def config_from(args: argparse.Namespace) -> SimConfig:
    if args.events < 0 or args.skus < 1 or args.dcs < 1 or args.stores < 0 or args.days <= 0:
        raise UsageError("--events >= 0, --skus >= 1, --dcs >= 1, --stores >= 0, --days > 0")
    for name in ("duplicate_rate", "malformed_rate"):
        if not 0 <= getattr(args, name) <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1")
    start = time_flag("--start", args.start)
    assert start is not None
    return SimConfig(
        events=args.events,
        seed=args.seed,
        skus=args.skus,
        dcs=args.dcs,
        stores=args.stores,
        start=start,
        days=args.days,
        duplicate_rate=args.duplicate_rate,
        malformed_rate=args.malformed_rate,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    show = args.progress if args.progress is not None else config.events >= 1_000_000
    with open_output(args.output) as out:
        bar = tqdm(
            total=config.events, unit="ev", desc="simulate", file=sys.stderr, disable=not show
        )
        for n, line in enumerate(simulate(config), 1):
            out.write(line + b"\n")
            if n % 50_000 == 0:
                bar.update(50_000)
        bar.close()
    if args.policy_output:
        with open_output(args.policy_output) as out:
            out.write(orjson.dumps(sample_policy(config), option=orjson.OPT_INDENT_2) + b"\n")
    return 0
