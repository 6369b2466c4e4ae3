"""The pure parts of ``atp status``: checkpoint parsing, rates, caught-up, change ranking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.job_status import (
    CaughtUp,
    Change,
    ChangeWindow,
    ItemActivity,
    Lag,
    PartitionLag,
    RateMeter,
    checkpoint_from_rest,
)

# A /jobs/<id>/checkpoints response of a real `atp job` (history cut to two entries).
SAMPLE = Path(__file__).with_name("flink_checkpoints.json")


def _sample() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SAMPLE.read_text())
    return document


def test_checkpoint_from_a_real_rest_response() -> None:
    checkpoint = checkpoint_from_rest(_sample())
    assert checkpoint is not None
    assert checkpoint.id == 32
    assert checkpoint.completed_at_ms == 1796314153885
    assert checkpoint.duration_ms == 95
    assert checkpoint.size_bytes == 335263
    assert (checkpoint.completed, checkpoint.failed) == (32, 1)
    assert checkpoint.age_s(1796314153.885 + 4.5) == 4.5


def test_no_completed_checkpoint_yet() -> None:
    document = _sample()
    document["latest"]["completed"] = None
    assert checkpoint_from_rest(document) is None


def _lag(*partitions: tuple[int, int]) -> Lag:
    return Lag(tuple(PartitionLag(i, c, e, 0) for i, (c, e) in enumerate(partitions)))


def test_lag_counts_what_the_group_has_not_committed() -> None:
    lag = _lag((10, 15), (7, 7), (0, 3))
    assert (lag.total, lag.consumed, lag.produced) == (8, 17, 25)


def test_rate_spans_the_window_although_commits_come_in_steps() -> None:
    meter = RateMeter(window_s=10)
    assert meter.rate() is None
    for at, count in [(0, 0), (1, 0), (5, 5000), (6, 5000), (10, 10000)]:
        meter.add(at, count)
    assert meter.rate() == 1000
    meter.add(20, 10000)  # nothing committed for 10 s: the window sees no progress
    assert meter.rate() == 0


def test_caught_up_once_lag_stays_zero_after_consuming() -> None:
    caught = CaughtUp(settle_s=5)
    assert not caught.update(0, _lag((0, 0)))  # nothing consumed yet
    assert not caught.update(10, _lag((0, 0)))
    assert not caught.update(11, _lag((4, 9)))
    assert not caught.update(12, _lag((9, 9)))
    assert not caught.update(16, _lag((9, 9)))
    assert not caught.update(17, _lag((9, 10)))  # new events: the wait starts again
    assert not caught.update(18, _lag((10, 10)))
    assert caught.update(23, _lag((10, 10)))


def test_window_ranks_items_by_changes_in_the_last_seconds() -> None:
    window = ChangeWindow(window_s=30)
    window.add(0, Change("SKU-3", "DC1", 5, None))
    for at in (10, 11, 12):
        window.add(at, Change("SKU-1", "DC1", 10 - at, 11 - at))
    window.add(12, Change("SKU-2", "DC2", 7, 2))
    window.add(13, Change("SKU-2", "ST001", 1, 0))
    window.evict(now=31)  # SKU-3's change is older than 30 s
    assert len(window) == 5
    assert window.top(5) == [ItemActivity("SKU-1", 3, 1, -3), ItemActivity("SKU-2", 2, 2, 6)]
    assert window.top(1) == [ItemActivity("SKU-1", 3, 1, -3)]
