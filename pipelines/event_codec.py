"""Events on the events topic, in either of the two formats it carries.

Producers that speak Avro write Confluent-framed ``InventoryEvent`` records (magic byte 0,
schema id, body); ``atp produce`` does. Systems that cannot may write canonical JSON, and
``atp produce`` passes records too broken to encode through as they are, so that every
engine dead-letters them with the reasons ``atp replay`` gives.
"""

from __future__ import annotations

from typing import Final

from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipelines.dead_letters import decode_json_event, event_id_of
from pipelines.wire import WireFormat
from state.schemas import INVENTORY_EVENT
from transforms.events import Event
from transforms.validation import UNDECODABLE, Violation, event_to_record, parse_event

AVRO_MAGIC: Final = b"\x00"

Decoded = tuple[Event | tuple[Violation, ...], str | None]
"""The event, or every rule it breaks, and the event_id when one could be read."""


class EventCodec:
    """Decode and validate raw event values; encode events as Avro."""

    def __init__(self, wire: WireFormat, topic: str) -> None:
        self.wire = wire
        self.topic = topic

    def decode(self, raw: bytes) -> Decoded:
        if not raw.startswith(AVRO_MAGIC):
            decoded = decode_json_event(raw)
            return decoded, decoded.event_id if isinstance(decoded, Event) else event_id_of(raw)
        try:
            record = self.wire.decode(INVENTORY_EVENT, self.topic, raw)
        except SchemaRegistryError as err:
            if err.http_status_code != 404:
                raise  # the registry is unreachable: a fault to restart from, not bad input
            return (Violation(UNDECODABLE, f"unknown Avro schema id: {err}"),), None
        except (ValueError, EOFError, IndexError) as err:
            return (Violation(UNDECODABLE, f"not a readable Avro event: {err}"),), None
        parsed = parse_event(record)
        event_id = record.get("event_id")
        if isinstance(parsed, list):
            return tuple(parsed), event_id if isinstance(event_id, str) else None
        return parsed, parsed.event_id

    def encode(self, event: Event) -> bytes:
        return self.wire.encode(INVENTORY_EVENT, self.topic, event_to_record(event))
