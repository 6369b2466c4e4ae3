"""Bounded, insertion-ordered id memory for dedup and reference tombstones."""

from __future__ import annotations

from collections import deque


class StampedSet:
    """A set whose members carry the event-time stamp at which they were added.

    Members are evicted oldest-first, by age (stamp older than a horizon) and by
    count (a cap per key). Stamps are the key's own event-time clock, which only
    moves forward, so insertion order is stamp order and eviction is O(1) per member.
    """

    __slots__ = ("log", "members")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, entries: list[tuple[str, int]] | None = None) -> None:
        self.members: set[str] = set()
        self.log: deque[tuple[int, str]] = deque()
        for member, stamp in entries or ():
            self.add(member, stamp)

    def __contains__(self, member: object) -> bool:
        return member in self.members

    def __len__(self) -> int:
        return len(self.members)

    def add(self, member: str, stamp: int) -> None:
        """Remember a member; re-adding keeps its first stamp."""
        if member not in self.members:
            self.members.add(member)
            self.log.append((stamp, member))

    def trim(self, keep_from: int, cap: int) -> int:
        """Forget members stamped before ``keep_from``, then the oldest beyond ``cap``."""
        evicted = 0
        log, members = self.log, self.members
        while log and (log[0][0] < keep_from or len(log) > cap):
            members.discard(log.popleft()[1])
            evicted += 1
        return evicted

    def entries(self) -> list[tuple[str, int]]:
        """Members with their stamps, oldest first."""
        return [(member, stamp) for stamp, member in self.log]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StampedSet) and self.log == other.log

    def __repr__(self) -> str:
        return f"StampedSet({self.entries()!r})"
