"""Event-time helpers. Times are carried as epoch milliseconds (Avro ``timestamp-millis``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@lru_cache(maxsize=65_536)
def parse_iso(text: str) -> int:
    """Parse an ISO-8601 timestamp into epoch millis.

    Accepts ``Z`` or an explicit offset; a timestamp without an offset is read as UTC
    (the contract's times are UTC). Raises ``ValueError`` on anything else.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def format_iso(millis: int) -> str:
    """Format epoch millis as ISO-8601 UTC with a ``Z`` suffix (milliseconds only if non-zero)."""
    moment = _EPOCH + timedelta(milliseconds=millis)
    if millis % 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def datetime_to_millis(moment: datetime) -> int:
    """Epoch millis of a datetime; a naive one is read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS
