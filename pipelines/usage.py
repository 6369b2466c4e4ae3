"""Usage errors: problems with how a command was called, reported in one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import orjson

from transforms.channels import Policy, PolicyError, parse_policy
from transforms.timeutil import parse_iso


class UsageError(Exception):
    """A missing file, an unparsable flag, a bad policy: never a bad record."""


def existing_file(path: str) -> Path:
    if path == "-":
        return Path(path)
    candidate = Path(path)
    if not candidate.is_file():
        raise UsageError(f"input file not found: {path}")
    return candidate


def time_flag(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise UsageError(f"{name} is not an ISO-8601 time: {value!r}") from None


def policy_file(path: str) -> Policy:
    """Load a channel policy file; any problem with it is a usage error."""
    try:
        document = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise UsageError(f"policy file not found: {path}") from None
    except orjson.JSONDecodeError as err:
        raise UsageError(f"bad policy file {path}: not valid JSON ({err})") from None
    try:
        return parse_policy(document)
    except PolicyError as err:
        raise UsageError(f"bad policy file {path}: {err}") from None
