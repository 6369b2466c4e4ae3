"""JSON-lines files: ``-`` means standard input or output."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from pipelines.usage import UsageError


@contextlib.contextmanager
def open_output(path: str) -> Iterator[IO[bytes]]:
    """Open a JSON-lines output for writing; an unwritable path is a usage error."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        handle = Path(path).open("wb")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    with handle:
        yield handle


@contextlib.contextmanager
def open_input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    with handle:
        yield handle


def dumps(record: Any) -> bytes:
    return orjson.dumps(record) + b"\n"
