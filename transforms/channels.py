"""Channel ATP: how much of an item each sales channel may sell, from a policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from math import floor
from typing import Any


class PolicyError(ValueError):
    """A channel policy that cannot be used; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    channel: str
    locations: tuple[str, ...]
    share: Fraction  # exact, so floor(share * total) never suffers float rounding
    buffer: int


@dataclass(frozen=True, slots=True)
class Policy:
    channels: tuple[ChannelPolicy, ...]

    def channels_for(self, location_id: str) -> tuple[ChannelPolicy, ...]:
        """The channels a location serves."""
        return tuple(c for c in self.channels if location_id in c.locations)


EMPTY_POLICY = Policy(channels=())


def _share(value: object, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PolicyError(f"{where}.share must be a number between 0 and 1")
    try:
        # Through the decimal text, so 0.29 means 29/100 and not the nearest binary float.
        share = Fraction(Decimal(str(value)))
    except (InvalidOperation, ValueError) as err:
        raise PolicyError(f"{where}.share must be a number between 0 and 1") from err
    if not 0 <= share <= 1:
        raise PolicyError(f"{where}.share must be between 0 and 1, got {value}")
    return share


def parse_policy(document: Any) -> Policy:
    """Build a policy from its JSON document; raise ``PolicyError`` on any bad field."""
    if not isinstance(document, dict) or not isinstance(document.get("channels"), list):
        raise PolicyError('policy must be an object with a "channels" list')
    channels: list[ChannelPolicy] = []
    names: set[str] = set()
    for index, entry in enumerate(document["channels"]):
        where = f"channels[{index}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where} must be an object")
        name = entry.get("channel")
        if not isinstance(name, str) or not name:
            raise PolicyError(f"{where}.channel must be a non-empty string")
        if name in names:
            raise PolicyError(f"{where}.channel {name!r} is defined twice")
        names.add(name)
        locations = entry.get("locations")
        if (
            not isinstance(locations, list)
            or not locations
            or not all(isinstance(loc, str) and loc for loc in locations)
        ):
            raise PolicyError(f"{where}.locations must be a non-empty list of location ids")
        if len(set(locations)) != len(locations):
            raise PolicyError(f"{where}.locations lists a location twice")
        buffer = entry.get("buffer", 0)
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0:
            raise PolicyError(f"{where}.buffer must be a non-negative integer")
        channels.append(
            ChannelPolicy(
                channel=name,
                locations=tuple(locations),
                share=_share(entry.get("share", 1), where),
                buffer=buffer,
            )
        )
    return Policy(channels=tuple(channels))


def channel_available(policy: ChannelPolicy, available_by_location: Mapping[str, int]) -> int:
    """``max(0, floor(share * sum of available over the channel's locations) - buffer)``."""
    total = sum(available_by_location.get(loc, 0) for loc in policy.locations)
    return max(0, floor(policy.share * total) - policy.buffer)
