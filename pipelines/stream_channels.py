"""The channel stage of the stream job: per (channel, item), the quantity a channel may sell.

Location updates fan out to the channels that location serves (policy from the start-up
file, replaced at run time by the policy topic through broadcast state); each channel
and item then keeps the available quantity of its locations and emits only when its
number changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Final

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction
from pyflink.datastream.functions import BroadcastProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from pipelines.stream_functions import jvm_string
from pipelines.wire import WireFormat
from state.schemas import CHANNEL_ATP_CHANGE
from transforms.channels import (
    EMPTY_POLICY,
    ChannelPolicy,
    Policy,
    PolicyError,
    channel_available,
    parse_policy,
)

POLICY_STATE = MapStateDescriptor("channel-policy", Types.STRING(), Types.STRING())
_CURRENT: Final = "current"

# (channel|item key, update): the key leads, so the stage is keyed on the JVM (see
# stream_job._keyed_by_first_field); the update is a JSON array (channel, item, location,
# available, as_of, locations, share numerator, share denominator, buffer), one string
# across the JVM boundary instead of nine converted fields.
CHANNEL_UPDATE = Types.ROW_NAMED(["key", "update"], [Types.STRING(), Types.STRING()])


class FanOutToChannels(BroadcastProcessFunction):  # type: ignore[misc]
    """Send each location's new ``available`` to every channel that location serves."""

    def __init__(self, initial_policy: str | None) -> None:
        self.initial_policy = initial_policy

    def open(self, runtime_context: Any) -> None:
        self._parsed: tuple[str | None, Policy] = (None, EMPTY_POLICY)
        # The broadcast state's document, read once: only process_broadcast_element of
        # this same instance changes it (a restore makes a new instance).
        self._document: str | None = None
        self._read = False
        metrics = runtime_context.get_metrics_group()
        self.rejected = metrics.counter("policiesRejected")

    def _policy(self, document: str | None) -> Policy:
        # Parsed once per policy document, not once per update.
        if document is None:
            return EMPTY_POLICY
        if self._parsed[0] != document:
            self._parsed = (document, parse_policy(orjson.loads(document)))
        return self._parsed[1]

    def process_element(self, row: Row, ctx: Any) -> Iterator[Row]:
        if not self._read:
            self._document = ctx.get_broadcast_state(POLICY_STATE).get(_CURRENT)
            self._read = True
        document = self._document or self.initial_policy
        item, location, available, as_of = row[2], row[3], row[6], row[7]
        for channel in self._policy(document).channels_for(location):
            share = channel.share
            update = (
                channel.channel,
                item,
                location,
                available,
                as_of,
                channel.locations,
                share.numerator,
                share.denominator,
                channel.buffer,
            )
            yield Row(f"{channel.channel}|{item}", orjson.dumps(update).decode())

    def process_broadcast_element(self, value: bytes | str, ctx: Any) -> None:
        document = value.decode() if isinstance(value, bytes | bytearray) else str(value)
        try:
            parse_policy(orjson.loads(document))
        except (orjson.JSONDecodeError, PolicyError):
            self.rejected.inc()  # a bad policy never replaces a good one
            return
        ctx.get_broadcast_state(POLICY_STATE).put(_CURRENT, document)
        self._document, self._read = document, True


class ChannelAvailability(KeyedProcessFunction):  # type: ignore[misc]
    """Per (channel, item): available by location, and the last number emitted."""

    def __init__(self, topic: str, registry_url: str) -> None:
        self.topic = topic
        self.registry_url = registry_url

    def open(self, runtime_context: Any) -> None:
        self.wire = WireFormat(self.registry_url)
        self.by_location = runtime_context.get_map_state(
            MapStateDescriptor("available-by-location", Types.STRING(), Types.LONG())
        )
        self.last = runtime_context.get_state(ValueStateDescriptor("last", Types.LONG()))
        self.version = runtime_context.get_state(ValueStateDescriptor("version", Types.LONG()))

    def process_element(self, update: str, ctx: Any) -> Iterator[Row]:
        channel, item, location, available_here, as_of, locations, num, den, buffer = orjson.loads(
            update
        )
        self.by_location.put(location, available_here)
        policy = ChannelPolicy(channel, tuple(locations), Fraction(num, den), buffer)
        available = {
            loc: self.by_location.get(loc) or 0
            for loc in locations
            if self.by_location.contains(loc)
        }
        value = channel_available(policy, available)
        previous = self.last.value()
        if previous is not None and previous == value:
            return
        version = (self.version.value() or 0) + 1
        self.last.update(value)
        self.version.update(version)
        change = {
            "channel": channel,
            "item_id": item,
            "available": value,
            "previous_available": previous,
            "version": version,
            "as_of": as_of or None,
            "cause_location_id": location,
        }
        encoded = jvm_string(self.wire.encode(CHANNEL_ATP_CHANGE, self.topic, change))
        yield Row(f"{channel}|{item}", encoded)
