"""Channel sync pacing: the token bucket, the retry policy and the coalescing queue, driven
by explicit instants (no clock, no I/O)."""

from __future__ import annotations

import hashlib
import hmac

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipelines.channel_sync.change import Change, push_headers, signature
from pipelines.channel_sync.offsets import OffsetTracker
from pipelines.channel_sync.pacing import (
    Result,
    RetryPolicy,
    TokenBucket,
    Verdict,
    classify,
    parse_retry_after,
)
from pipelines.channel_sync.pending import ChannelQueue


def _change(item: str, version: int, channel: str = "web") -> Change:
    return Change(channel, item, version * 10, None, version, 1_778_400_000_000, "DC1")


# -- token bucket ----------------------------------------------------------------------


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.ready_at(0.0) == 0.5
    assert not bucket.try_take(0.49)
    assert bucket.try_take(0.5)
    # Idle time refills up to the burst, never beyond.
    assert sum(bucket.try_take(100.0) for _ in range(10)) == 3


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=200))
def test_bucket_never_exceeds_rate_times_window_plus_burst(instants: list[float]) -> None:
    rate, burst = 4.0, 5
    bucket = TokenBucket(rate, burst, now=0.0)
    taken = [t for t in sorted(instants) if bucket.try_take(t)]
    for i, first in enumerate(taken):
        for j in range(i, len(taken)):
            assert j - i + 1 <= rate * (taken[j] - first) + burst + 1e-9


def test_a_block_holds_every_request_and_cancels_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=10, now=0.0)
    bucket.block_until(2.0)
    assert not bucket.try_take(1.9)
    assert bucket.ready_at(1.0) == 2.0
    assert bucket.try_take(2.0)
    assert not bucket.try_take(2.0)  # one token, not the burst the wait would have refilled
    bucket.block_until(1.0)  # an earlier block does not shorten a later one
    assert bucket.ready_at(2.0) == 2.1


# -- retry policy ----------------------------------------------------------------------


def test_statuses_are_delivered_retried_or_refused() -> None:
    verdicts = {s: classify(Result(s)) for s in (200, 204, 301, 400, 401, 404, 408, 409, 422)}
    verdicts |= {s: classify(Result(s)) for s in (429, 500, 502, 503)}
    assert verdicts == {
        200: Verdict.DELIVERED,
        204: Verdict.DELIVERED,
        301: Verdict.FAILED,
        400: Verdict.FAILED,
        401: Verdict.FAILED,
        404: Verdict.FAILED,
        408: Verdict.RETRY,
        409: Verdict.FAILED,
        422: Verdict.FAILED,
        429: Verdict.RETRY,
        500: Verdict.RETRY,
        502: Verdict.RETRY,
        503: Verdict.RETRY,
    }
    assert classify(Result(None, "ConnectError: refused")) is Verdict.RETRY


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = 1_778_400_000.0  # 2026-05-10T08:00:00Z
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Sun, 10 May 2026 08:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 10 May 2026 07:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=0.5, max_backoff=3.0)
    assert [policy.delay(n, None, lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        3.0,
        3.0,
    ]
    assert [policy.delay(n, None, lambda: 0.0) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert policy.delay(1, 42.0) == 42.0  # the receiver's Retry-After wins
    assert policy.delay(1, 1e9) == policy.max_retry_after
    assert not policy.exhausted(4) and policy.exhausted(5)


# -- coalescing queue ------------------------------------------------------------------


def test_changes_within_the_window_go_as_one_push_of_the_newest_version() -> None:
    queue = ChannelQueue(coalesce=1.0, concurrency=4)
    bucket = TokenBucket(100.0, 100, now=0.0)
    assert not queue.offer(_change("A", 1), (0, 10), now=0.0)
    assert queue.offer(_change("A", 2), (0, 11), now=0.3)
    assert queue.offer(_change("A", 3), (0, 12), now=0.9)
    assert not queue.offer(_change("B", 1), (1, 5), now=0.5)
    assert queue.take(0.99, bucket) == []
    assert queue.next_due(0.99, bucket) == 1.0  # from the first change, not the last
    (push,) = queue.take(1.0, bucket)
    assert push.change.version == 3 and push.change.idempotency_key == "web:A:3"
    assert push.positions == [(0, 10), (0, 11), (0, 12)] and push.attempts == 1
    assert [p.change.item_id for p in queue.take(1.5, bucket)] == ["B"]


def test_an_older_version_never_replaces_a_newer_one() -> None:
    queue = ChannelQueue(coalesce=0.0, concurrency=1)
    queue.offer(_change("A", 5), (0, 1), now=0.0)
    queue.offer(_change("A", 4), (0, 2), now=0.0)  # a redelivery of an older record
    (push,) = queue.take(0.0, TokenBucket(1.0, 1, 0.0))
    assert push.change.version == 5 and push.positions == [(0, 1), (0, 2)]


def test_one_item_never_has_two_pushes_in_flight() -> None:
    queue = ChannelQueue(coalesce=0.0, concurrency=4)
    bucket = TokenBucket(100.0, 100, now=0.0)
    queue.offer(_change("A", 1), (0, 1), now=0.0)
    (first,) = queue.take(0.0, bucket)
    queue.offer(_change("A", 2), (0, 2), now=0.1)
    queue.offer(_change("B", 1), (0, 3), now=0.1)
    assert [p.change.item_id for p in queue.take(0.2, bucket)] == ["B"]
    assert queue.take(0.3, bucket) == []
    queue.finish(first)
    (second,) = queue.take(0.3, bucket)
    assert second.change.version == 2 and second.positions == [(0, 2)]


def test_the_rate_limit_and_the_concurrency_hold_pushes_back() -> None:
    queue = ChannelQueue(coalesce=0.0, concurrency=2)
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    for i in range(3):
        queue.offer(_change(f"I{i}", 1), (0, i), now=0.0)
    (one,) = queue.take(0.0, bucket)
    assert queue.next_due(0.0, bucket) == 1.0
    assert len(queue.take(1.0, bucket)) == 1
    assert queue.next_due(2.0, bucket) is None  # both slots busy: only a finish frees one
    assert queue.take(5.0, bucket) == []
    queue.finish(one)
    assert [p.change.item_id for p in queue.take(5.0, bucket)] == ["I2"]
    assert len(queue) == 2


def test_a_retry_waits_and_carries_the_newest_version_and_every_position() -> None:
    queue = ChannelQueue(coalesce=0.0, concurrency=1)
    bucket = TokenBucket(100.0, 100, now=0.0)
    queue.offer(_change("A", 1), (0, 1), now=0.0)
    (push,) = queue.take(0.0, bucket)
    queue.offer(_change("A", 2), (0, 2), now=0.1)
    queue.retry(push, at=2.0)
    assert queue.take(1.9, bucket) == []
    (again,) = queue.take(2.0, bucket)
    assert again.change.version == 2 and sorted(again.positions) == [(0, 1), (0, 2)]
    assert again.attempts == 2
    queue.retry(again, at=3.0)  # nothing newer: the same push again, later
    (third,) = queue.take(3.0, bucket)
    assert third is again and third.attempts == 3


# -- offsets ---------------------------------------------------------------------------


def test_offsets_commit_only_past_a_finished_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (0, 1, 3, 4, 7):  # gaps: transaction markers, aborted records
        tracker.consumed(0, offset)
    tracker.consumed(1, 20)
    tracker.done(0, 1)
    tracker.done(0, 3)
    assert tracker.to_commit() == {}
    tracker.done(0, 0)
    assert tracker.to_commit() == {0: 4}
    tracker.committed({0: 4})
    assert tracker.to_commit() == {}
    tracker.done(0, 7)
    tracker.done(0, 99)  # unknown: ignored
    assert tracker.to_commit() == {} and tracker.outstanding == 2
    tracker.done(0, 4)
    tracker.done(1, 20)
    assert tracker.to_commit() == {0: 8, 1: 21} and tracker.outstanding == 0
    tracker.forget(1)
    tracker.done(1, 21)
    assert tracker.to_commit() == {0: 8}


# -- the push ---------------------------------------------------------------------------


def test_the_body_and_signature_are_stable_and_verifiable() -> None:
    change = Change("web", "SKU-1", 12, 15, 7, 1_778_400_000_000, "DC1")
    body = change.body()
    assert body == change.body()
    assert orjson.loads(body) == {
        "idempotency_key": "web:SKU-1:7",
        "channel": "web",
        "item_id": "SKU-1",
        "available": 12,
        "previous_available": 15,
        "version": 7,
        "as_of": "2026-05-10T08:00:00Z",
        "cause_location_id": "DC1",
    }
    headers = push_headers(change, body, b"k3y", attempt=2, epoch_seconds=1_778_400_001)
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert headers["X-ATP-Signature"] == f"sha256={expected}" == signature(b"k3y", body)
    assert headers["Idempotency-Key"] == "web:SKU-1:7"
    assert headers["X-ATP-Timestamp"] == "1778400001" and headers["X-ATP-Attempt"] == "2"
