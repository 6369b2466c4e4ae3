"""Bounded, insertion-ordered id memory for dedup and reference tombstones."""

from __future__ import annotations

import sys
from array import array
from collections import deque


class StampedSet:
    """A set whose members carry the event-time stamp at which they were added.

    Members are evicted oldest-first, by age (stamp older than a horizon) and by
    count (a cap per key). Stamps are the key's own event-time clock, which only
    moves forward, so insertion order is stamp order and eviction is O(1) per member.
    Order and stamps are kept as two parallel columns, the stamps as a machine array,
    so the state encoding takes them whole (the stream job encodes a key's state after
    every event, and a key remembers thousands of ids).
    """

    __slots__ = ("members", "order", "stamps")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, entries: list[tuple[str, int]] | None = None) -> None:
        self.members: set[str] = set()
        self.order: deque[str] = deque()
        self.stamps = array("q")
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
            self.order.append(member)
            self.stamps.append(stamp)

    def trim(self, keep_from: int, cap: int) -> int:
        """Forget members stamped before ``keep_from``, then the oldest beyond ``cap``."""
        stamps, total = self.stamps, len(self.stamps)
        evicted = 0
        while evicted < total and (stamps[evicted] < keep_from or total - evicted > cap):
            evicted += 1
        if evicted:
            del stamps[:evicted]
            order, members = self.order, self.members
            for _ in range(evicted):
                members.discard(order.popleft())
        return evicted

    @classmethod
    def from_columns(cls, members: list[str], stamps: bytes) -> StampedSet:
        """Rebuild from ``columns()``, without re-checking each member."""
        memory = cls()
        memory.stamps.frombytes(stamps)
        if sys.byteorder == "big":
            memory.stamps.byteswap()
        if len(members) != len(memory.stamps):
            raise ValueError(f"{len(members)} members but {len(memory.stamps)} stamps")
        memory.members = set(members)
        memory.order = deque(members)
        return memory

    def columns(self) -> tuple[list[str], bytes]:
        """Members, oldest first, and their stamps as little-endian int64s."""
        if sys.byteorder == "big":
            swapped = array("q", self.stamps)
            swapped.byteswap()
            return list(self.order), swapped.tobytes()
        return list(self.order), self.stamps.tobytes()

    def entries(self) -> list[tuple[str, int]]:
        """Members with their stamps, oldest first."""
        return list(zip(self.order, self.stamps, strict=True))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StampedSet)
            and self.order == other.order
            and self.stamps == other.stamps
        )

    def __repr__(self) -> str:
        return f"StampedSet({self.entries()!r})"
