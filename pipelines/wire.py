"""Avro records on the topics, in the Confluent wire format (magic byte, schema id, body).

Schemas are registered and looked up with confluent-kafka's registry client (cached per
subject and per id); bodies are fastavro's schemaless encoding. confluent-kafka's
``AvroSerializer``/``AvroDeserializer`` do the same framing but cost 5x more per record
(subject lookups, rule execution and datetime conversions on every call), which matters
at the stream job's rates. Times stay epoch millis: the schemas are parsed for encoding
and decoding without their logical types, which only say how to read the longs.
``mock://`` registry URLs give an in-memory registry, for tests.
"""

from __future__ import annotations

import io
import json
import struct
from datetime import datetime
from functools import cached_property
from typing import Any, Final

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from pipelines.dead_letters import DeadLetter
from state.schemas import schema_text
from transforms.exceptions import ExceptionRecord
from transforms.snapshot import Snapshot
from transforms.timeutil import datetime_to_millis

_HEADER: Final = struct.Struct(">bI")  # magic byte 0, schema id


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(v) for v in schema]
    return schema


def _parse(text: str) -> Any:
    # Each parse gets its own namespace of named types: a writer's schema from the registry
    # may define the same names as the reader's.
    return fastavro.parse_schema(_without_logical_types(json.loads(text)), named_schemas={})


class WireFormat:
    """Encode and decode every wire schema, sharing one registry client."""

    def __init__(self, registry_url: str, registry_conf: dict[str, Any] | None = None) -> None:
        self._conf = {"url": registry_url, **(registry_conf or {})}
        self._ids: dict[str, int] = {}  # subject -> id of the schema this side writes
        self._writers: dict[int, Any] = {}  # id -> parsed writer schema
        self._readers: dict[str, Any] = {}  # our schema name -> parsed schema

    @cached_property
    def registry(self) -> SchemaRegistryClient:
        return SchemaRegistryClient.new_client(self._conf)

    def _schema(self, name: str) -> Any:
        parsed = self._readers.get(name)
        if parsed is None:
            parsed = self._readers[name] = _parse(schema_text(name))
        return parsed

    def encode(self, schema: str, topic: str, record: dict[str, Any]) -> bytes:
        """Frame ``record`` (times as epoch millis) under the topic's value subject,
        registering the schema there on first use."""
        subject = f"{topic}-value"
        schema_id = self._ids.get(subject)
        if schema_id is None:
            schema_id = self.registry.register_schema(subject, Schema(schema_text(schema), "AVRO"))
            self._ids[subject] = schema_id
        out = io.BytesIO()
        out.write(_HEADER.pack(0, schema_id))
        fastavro.schemaless_writer(out, self._schema(schema), record)
        return out.getvalue()

    def decode(self, schema: str, topic: str, data: bytes) -> dict[str, Any]:
        """Decode a framed record written with any registered version of ``schema``;
        timestamps come back as epoch millis. Raises ValueError on a frame that is not
        Confluent Avro, SchemaRegistryError on an id the registry does not know."""
        if len(data) < _HEADER.size or data[0] != 0:
            raise ValueError(f"{topic}: not a Confluent-framed Avro record")
        _, schema_id = _HEADER.unpack_from(data)
        writer = self._writers.get(schema_id)
        if writer is None:
            text = self.registry.get_schema(schema_id).schema_str
            if text is None:
                raise ValueError(f"{topic}: schema {schema_id} has no text")
            writer = self._writers[schema_id] = _parse(text)
        record = fastavro.schemaless_reader(
            io.BytesIO(data[_HEADER.size :]), writer, self._schema(schema)
        )
        if not isinstance(record, dict):
            raise ValueError(f"{topic}: not an Avro record")
        return record


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
