"""Pacing and retry decisions: pure functions of the time they are given.

The loop passes ``time.monotonic()``; tests pass whatever instants they need.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final


class TokenBucket:
    """At most ``burst`` requests at once, then ``rate`` per second: over any window of
    ``t`` seconds, at most ``rate * t + burst`` requests."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now
        self._blocked_until = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now

    def try_take(self, now: float) -> bool:
        """Take one token if one is available and the bucket is not blocked."""
        if now < self._blocked_until:
            return False
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def ready_at(self, now: float) -> float:
        """The earliest instant a token can be taken (``now`` if one can be now)."""
        self._refill(now)
        refill = now if self._tokens >= 1.0 else now + (1.0 - self._tokens) / self.rate
        return max(refill, self._blocked_until)

    def block_until(self, until: float) -> None:
        """No request before ``until`` (the receiver answered 429 with Retry-After) and
        no burst right after it: the receiver has just said we were too fast."""
        if until > self._blocked_until:
            self._blocked_until = until
            self._tokens = 1.0  # at ``until``: nothing accrues while blocked
            self._at = until


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


# Reasons written to dead letters and metrics.
HTTP_STATUS: Final = "HTTP_STATUS"  # a permanent 4xx (or 3xx)
RETRIES_EXHAUSTED: Final = "RETRIES_EXHAUSTED"


@dataclass(frozen=True, slots=True)
class Result:
    """What one attempt returned: a status, or the transport error instead of one."""

    status: int | None  # None: no answer (connection refused, timeout, a write failed)
    detail: str = ""  # the error, or the start of the receiver's answer
    retry_after: float | None = None  # seconds, from a Retry-After header


def classify(result: Result) -> Verdict:
    """2xx delivered; 408, 429, 5xx and transport errors worth another try; any other
    status is the receiver refusing this change, which a retry would not change."""
    status = result.status
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in {408, 429} or status >= 500:
        return Verdict.RETRY
    return Verdict.FAILED


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now_epoch)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff: float  # seconds before the second attempt
    max_backoff: float
    max_retry_after: float = 3_600.0  # a longer Retry-After is taken as this

    def delay(
        self, attempts: int, retry_after: float | None, uniform: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait after the ``attempts``-th attempt failed: the receiver's
        Retry-After when it gave one, else exponential backoff with jitter (between half
        and all of ``backoff * 2**(attempts-1)``, capped), so clients that failed together
        do not retry together."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempts - 1))
        return ceiling * (0.5 + 0.5 * uniform())

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
