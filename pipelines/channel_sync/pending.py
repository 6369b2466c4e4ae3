"""Per channel: the pushes waiting to go, coalesced per item, and the ones in flight.

Changes to one item that arrive before its push goes out fold into that push, which then
carries the newest version and the log positions of every change it stands for: after
``coalesce`` seconds from the first, or later when the channel's rate limit or a retry
holds it back. One item never has two pushes in flight, so a retry of an older version
cannot land after a newer one.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from pipelines.channel_sync.change import Change
from pipelines.channel_sync.pacing import TokenBucket

Position = tuple[int, int]  # (partition, offset) of a record on the channel topic


@dataclass(slots=True)
class Push:
    change: Change  # the newest version seen
    positions: list[Position]  # every record this push completes
    due: float  # not before this instant
    attempts: int = 0  # requests made so far, for this item's push whichever version

    def fold(self, change: Change, positions: list[Position]) -> None:
        if change.version > self.change.version:
            self.change = change
        self.positions.extend(positions)


@dataclass
class ChannelQueue:
    coalesce: float  # seconds a first change waits for newer ones
    concurrency: int  # pushes in flight at once
    waiting: dict[str, Push] = field(default_factory=dict)  # by item
    in_flight: dict[str, Push] = field(default_factory=dict)
    _heap: list[tuple[float, int, str]] = field(default_factory=list)  # (due, seq, item)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def _schedule(self, item: str, push: Push) -> None:
        heapq.heappush(self._heap, (push.due, next(self._seq), item))

    def offer(self, change: Change, position: Position, now: float) -> bool:
        """Queue a change; True when it folded into a push already waiting."""
        item = change.item_id
        waiting = self.waiting.get(item)
        if waiting is not None:
            waiting.fold(change, [position])
            return True
        push = self.waiting[item] = Push(change, [position], now + self.coalesce)
        if item not in self.in_flight:
            self._schedule(item, push)
        return False

    def _drop_stale(self) -> None:
        """Heap entries for items taken, rescheduled or in flight (rescheduled when their
        push in flight finishes)."""
        heap = self._heap
        while heap:
            due, _, item = heap[0]
            push = self.waiting.get(item)
            if push is not None and push.due == due and item not in self.in_flight:
                return
            heapq.heappop(heap)

    def take(self, now: float, bucket: TokenBucket) -> list[Push]:
        """Pushes due now, as far as free slots and the bucket's tokens allow."""
        taken: list[Push] = []
        while len(self.in_flight) < self.concurrency:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now or not bucket.try_take(now):
                break
            item = heapq.heappop(self._heap)[2]
            push = self.waiting.pop(item)
            push.attempts += 1
            self.in_flight[item] = push
            taken.append(push)
        return taken

    def next_due(self, now: float, bucket: TokenBucket) -> float | None:
        """When ``take`` may next return something; None while only a push in flight
        finishing can change that."""
        self._drop_stale()
        if not self._heap or len(self.in_flight) >= self.concurrency:
            return None
        return max(self._heap[0][0], bucket.ready_at(now))

    def finish(self, push: Push) -> None:
        """The push was delivered or dead-lettered: the item's next push may go."""
        item = push.change.item_id
        del self.in_flight[item]
        waiting = self.waiting.get(item)
        if waiting is not None:
            self._schedule(item, waiting)

    def retry(self, push: Push, at: float) -> None:
        """Try again at ``at``, with whatever newer version arrived meanwhile."""
        item = push.change.item_id
        del self.in_flight[item]
        newer = self.waiting.get(item)
        if newer is None:
            push.due = at
            self.waiting[item] = push
        else:
            newer.fold(push.change, push.positions)
            newer.attempts = push.attempts
            newer.due = max(newer.due, at)
            push = newer
        self._schedule(item, push)

    def __len__(self) -> int:
        return len(self.waiting) + len(self.in_flight)
