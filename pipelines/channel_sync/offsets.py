"""Which offsets may be committed: per partition, the end of the prefix of consumed
records that are all pushed or dead-lettered.

Pushes finish out of order (coalescing, rate limits, retries, other items first), so the
committed offset is never past a record still pending: after a crash the sync resumes at
the first unfinished record and pushes again what followed it (receivers dedupe them
by idempotency key).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Partition:
    order: deque[int] = field(default_factory=deque)  # consumed offsets, in order
    open: set[int] = field(default_factory=set)  # consumed, not finished
    next_offset: int | None = None  # what to commit: after the finished prefix
    committed: int | None = None


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}

    def consumed(self, partition: int, offset: int) -> None:
        state = self._partitions.setdefault(partition, _Partition())
        state.order.append(offset)
        state.open.add(offset)

    def done(self, partition: int, offset: int) -> None:
        """The record at ``offset`` is pushed or dead-lettered (unknown ones are ignored:
        a partition revoked meanwhile)."""
        state = self._partitions.get(partition)
        if state is None or offset not in state.open:
            return
        state.open.discard(offset)
        order = state.order
        while order and order[0] not in state.open:
            state.next_offset = order.popleft() + 1

    def to_commit(self) -> dict[int, int]:
        """Per partition, the offset to commit where it moved since the last commit."""
        return {
            partition: state.next_offset
            for partition, state in self._partitions.items()
            if state.next_offset is not None and state.next_offset != state.committed
        }

    def committed(self, offsets: dict[int, int]) -> None:
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = offset

    def forget(self, partition: int) -> None:
        """The partition was revoked: its unfinished records are another consumer's now."""
        self._partitions.pop(partition, None)

    @property
    def outstanding(self) -> int:
        """Records consumed and not yet finished, over all partitions."""
        return sum(len(state.open) for state in self._partitions.values())
