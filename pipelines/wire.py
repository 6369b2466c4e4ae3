"""Avro records on the topics, in the Confluent wire format (magic byte, schema id, body).

Framing and registry lookups are confluent-kafka's serializers; this module only maps
domain objects to the schemas' dicts. ``mock://`` registry URLs give an in-memory
registry, for tests.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipelines.dead_letters import DeadLetter
from state.schemas import WIRE_SCHEMAS, schema_text
from transforms.exceptions import ExceptionRecord
from transforms.snapshot import Snapshot
from transforms.timeutil import datetime_to_millis


class WireFormat:
    """Serializers and deserializers for every wire schema, sharing one registry client."""

    def __init__(self, registry_url: str, registry_conf: dict[str, Any] | None = None) -> None:
        self._conf = {"url": registry_url, **(registry_conf or {})}

    @cached_property
    def registry(self) -> SchemaRegistryClient:
        return SchemaRegistryClient.new_client(self._conf)

    @cached_property
    def _serializers(self) -> dict[str, AvroSerializer]:
        return {name: AvroSerializer(self.registry, schema_text(name)) for name in WIRE_SCHEMAS}

    @cached_property
    def _deserializers(self) -> dict[str, AvroDeserializer]:
        return {name: AvroDeserializer(self.registry, schema_text(name)) for name in WIRE_SCHEMAS}

    def encode(self, schema: str, topic: str, record: dict[str, Any]) -> bytes:
        context = SerializationContext(topic, MessageField.VALUE)
        data = self._serializers[schema](record, context)
        if data is None:
            raise ValueError(f"{topic}: nothing to encode")
        return data

    def decode(self, schema: str, topic: str, data: bytes) -> dict[str, Any]:
        """Decode a framed record; timestamps come back as epoch millis."""
        record = self._deserializers[schema](data, SerializationContext(topic, MessageField.VALUE))
        if not isinstance(record, dict):
            raise ValueError(f"{topic}: not an Avro record")
        decoded: dict[str, Any] = millis_times(record)
        return decoded


def millis_times(value: Any) -> Any:
    """Turn the datetimes fastavro decodes for ``timestamp-millis`` back into epoch millis."""
    if isinstance(value, datetime):
        return datetime_to_millis(value)
    if isinstance(value, dict):
        return {k: millis_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [millis_times(v) for v in value]
    return value


def snapshot_record(snapshot: Snapshot) -> dict[str, Any]:
    """An ``AtpSnapshot`` record (times as epoch millis)."""
    record = snapshot.to_json()
    record["as_of"] = snapshot.as_of
    record["supply"] = [
        {
            "reference_id": e.reference_id,
            "kind": e.kind,
            "quantity": e.quantity,
            "expected_at": e.expected_at,
            "confidence": e.confidence,
        }
        for e in snapshot.supply
    ]
    return record


def dead_letter_record(letter: DeadLetter) -> dict[str, Any]:
    """A ``DeadLetter`` record; the source coordinates are whichever the engine knows."""
    source = letter.source
    return {
        "reason": letter.reason,
        "message": letter.reasons[0].message,
        "reasons": [{"code": v.code, "message": v.message} for v in letter.reasons],
        "raw": letter.raw,
        "event_id": letter.event_id,
        "source_topic": source.get("source_topic"),
        "source_partition": source.get("source_partition"),
        "source_offset": source.get("source_offset"),
        "source_file": source.get("source_file"),
        "source_line": source.get("line"),
    }


def exception_record(record: ExceptionRecord) -> dict[str, Any]:
    """An ``AtpException`` record (times as epoch millis)."""
    return {**record.to_json(), "at": record.at}
