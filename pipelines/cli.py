"""``atp``: the command line. Each subcommand lives in ``pipelines/commands``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from pipelines.commands import (
    archive,
    backfill,
    channel_sync,
    dump,
    explain,
    job,
    normalize,
    produce,
    reconcile,
    replay,
    serve,
    simulate,
    status,
    topics,
)
from pipelines.usage import UsageError

COMMANDS = (
    replay,
    simulate,
    produce,
    job,
    dump,
    status,
    explain,
    serve,
    reconcile,
    backfill,
    archive,
    normalize,
    channel_sync,
    topics,
)


class _Parser(argparse.ArgumentParser):
    """Usage errors print one line and exit 2, like every other usage error of ``atp``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="atp",
        description="Streaming available-to-promise: replay, simulate and run the ATP job.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as err:
        print(f"atp {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
