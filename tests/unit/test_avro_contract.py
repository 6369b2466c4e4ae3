"""The Avro contract: schemas parse, golden records round-trip in the Confluent wire
format, and incompatible changes are caught."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from pipelines.dead_letters import DeadLetter
from pipelines.wire import WireFormat, dead_letter_record, exception_record, snapshot_record
from state.schemas import (
    ATP_CHANGE,
    ATP_EXCEPTION,
    ATP_SNAPSHOT,
    AVRO_DIR,
    CHANNEL_ATP_CHANGE,
    DEAD_LETTER,
    INVENTORY_EVENT,
    KEY_STATE,
    WIRE_SCHEMAS,
    parsed_schema,
    schema_text,
)
from transforms.events import Event
from transforms.exceptions import ExceptionRecord
from transforms.snapshot import ASN, TRANSFER, Snapshot, SupplyEntry
from transforms.timeutil import parse_iso
from transforms.validation import Violation, event_to_record, parse_event

T0 = parse_iso("2026-05-11T08:00:00Z")

GOLDEN: dict[str, list[dict[str, Any]]] = {
    INVENTORY_EVENT: [
        event_to_record(Event("e-1", "RECEIPT", "SKU-1", "DC1", 12, T0, source_system="WMS")),
        event_to_record(
            Event(
                "e-2",
                "ASN",
                "SKU-1",
                "DC1",
                48,
                T0,
                source_system="EDI",
                reference_id="ASN-9",
                expected_at=T0 + 86_400_000,
                confidence=0.9,
                correlation_id="c-1",
            )
        ),
        event_to_record(
            Event(
                "e-3",
                "TRANSFER_SHIPPED",
                "SKU-1",
                "DC1",
                6,
                T0,
                reference_id="TRF-1",
                to_location_id="ST001",
                expires_at=None,
                channel="web",
            )
        ),
    ],
    ATP_SNAPSHOT: [
        snapshot_record(
            Snapshot(
                "SKU-1",
                "DC1",
                100,
                5,
                10,
                3,
                2,
                6,
                48,
                80,
                7,
                8,
                1,
                T0,
                "e-7",
                "c-1",
                (
                    SupplyEntry("TRF-1", TRANSFER, 6, T0 + 3_600_000),
                    SupplyEntry("ASN-9", ASN, 48, T0 + 86_400_000, 0.9),
                ),
            )
        ),
        snapshot_record(
            Snapshot("SKU-2", "ST001", 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, None, None, None)
        ),
    ],
    ATP_CHANGE: [
        {
            "item_id": "SKU-1",
            "location_id": "DC1",
            "version": 7,
            "revision": 8,
            "cause": "EVENT",
            "event_id": "e-7",
            "event_type": "SHIPMENT",
            "changed_at": T0,
            "on_hand": 100,
            "quarantined": 5,
            "allocated": 10,
            "reserved": 3,
            "safety_stock": 2,
            "in_transit": 6,
            "inbound": 48,
            "available": 80,
            "previous_available": 84,
            "correlation_id": None,
        },
        {
            "item_id": "SKU-1",
            "location_id": "DC1",
            "version": 7,
            "revision": 9,
            "cause": "EXPIRY",
            "event_id": None,
            "event_type": None,
            "changed_at": T0 + 1_800_000,
            "on_hand": 100,
            "quarantined": 5,
            "allocated": 10,
            "reserved": 0,
            "safety_stock": 2,
            "in_transit": 6,
            "inbound": 48,
            "available": 83,
            "previous_available": 80,
            "correlation_id": "c-1",
        },
    ],
    CHANNEL_ATP_CHANGE: [
        {
            "channel": "marketplace",
            "item_id": "SKU-1",
            "available": 41,
            "previous_available": None,
            "version": 1,
            "as_of": T0,
            "cause_location_id": "DC1",
        }
    ],
    DEAD_LETTER: [
        dead_letter_record(
            DeadLetter(
                reasons=(
                    Violation("MISSING_QUANTITY", "quantity is missing"),
                    Violation("MISSING_REFERENCE_ID", "reference_id is missing"),
                ),
                raw=b'{"event_id":"x","event_type":"SHIPMENT"}',
                event_id="x",
                source={"source_topic": "atp.events", "source_partition": 2, "source_offset": 41},
            )
        ),
        dead_letter_record(
            DeadLetter(
                reasons=(Violation("UNDECODABLE", "not valid JSON"),),
                raw=b"\xff\x00garbage",
                source={"source_file": "events.jsonl", "line": 3},
            )
        ),
    ],
    ATP_EXCEPTION: [
        exception_record(
            ExceptionRecord(
                kind="SUPPLY_OVERDUE",
                item_id="SKU-1",
                location_id="DC1",
                reason="ASN ASN-7 is 3 days past its expected date",
                at=T0,
                reference_id="ASN-7",
                quantities={"on_hand": 12, "inbound": 40, "available": 12},
            )
        ),
        exception_record(
            ExceptionRecord(
                kind="OVERSOLD",
                item_id="SKU-1",
                location_id="ST001",
                reason="allocated exceeds on hand",
                at=T0,
                event_id="OMS-1",
            )
        ),
    ],
}


def _checker_result(reader: str, writer: str) -> SchemaCompatibilityType:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(avro.schema.parse(reader), avro.schema.parse(writer))
    compatibility: SchemaCompatibilityType = result.compatibility
    return compatibility


def _released(name: str) -> list[Path]:
    return sorted((AVRO_DIR / "released").glob(f"{name}.v*.avsc"))


@pytest.mark.parametrize("name", [*WIRE_SCHEMAS, KEY_STATE])
def test_schema_parses_with_namespace_and_docs(name: str) -> None:
    parsed_schema(name)
    avro.schema.parse(schema_text(name))
    document = json.loads(schema_text(name))
    assert document["namespace"].startswith("org.atpstream")
    assert document["doc"]

    def walk(record: dict[str, Any]) -> None:
        for field in record["fields"]:
            assert field.get("doc"), f"{name}.{field['name']} has no doc"
            types = field["type"] if isinstance(field["type"], list) else [field["type"]]
            if "null" in types:
                assert "default" in field, f"optional {name}.{field['name']} has no default"
            for candidate in types:
                inner = candidate.get("items") if isinstance(candidate, dict) else None
                if isinstance(inner, dict) and inner.get("type") == "record":
                    walk(inner)

    walk(document)


def test_golden_records_cover_every_wire_schema() -> None:
    assert set(GOLDEN) == set(WIRE_SCHEMAS)


@pytest.mark.parametrize("name", WIRE_SCHEMAS)
def test_golden_records_round_trip_in_confluent_framing(name: str) -> None:
    wire = WireFormat("mock://avro-contract")
    topic = f"atp.{name}"
    for record in GOLDEN[name]:
        data = wire.encode(name, topic, record)
        magic, schema_id = struct.unpack(">bI", data[:5])
        assert magic == 0
        registered = wire.registry.get_latest_version(f"{topic}-value")
        assert schema_id == registered.schema_id
        assert wire.decode(name, topic, data) == record


def test_decoded_event_validates_like_json() -> None:
    wire = WireFormat("mock://avro-event")
    record = GOLDEN[INVENTORY_EVENT][1]
    decoded = wire.decode(INVENTORY_EVENT, "t", wire.encode(INVENTORY_EVENT, "t", record))
    assert parse_event(decoded) == parse_event(record)


@pytest.mark.parametrize("name", [*WIRE_SCHEMAS, KEY_STATE])
def test_current_schema_stays_compatible_with_released_versions(name: str) -> None:
    released = _released(name)
    assert released, f"no released version of {name}"
    current = schema_text(name)
    for path in released:
        old = path.read_text()
        assert _checker_result(current, old) == SchemaCompatibilityType.compatible, (
            f"{name}: cannot read data written with {path.name}"
        )
        if name != KEY_STATE:
            assert _checker_result(old, current) == SchemaCompatibilityType.compatible, (
                f"{name}: readers of {path.name} cannot read new data"
            )


def _with_fields(name: str, change: Any) -> str:
    document = json.loads(schema_text(name))
    change(document["fields"])
    return json.dumps(document)


@pytest.mark.parametrize(
    "breaking",
    [
        pytest.param(
            lambda f: f.append({"name": "lot", "type": "string", "doc": "new, no default"}),
            id="required-field-without-default",
        ),
        pytest.param(
            lambda f: f.__setitem__(6, {"name": "quantity", "type": "string", "doc": "retyped"}),
            id="field-retyped",
        ),
        pytest.param(lambda f: f.pop(0), id="required-field-removed"),
    ],
)
def test_breaking_change_is_caught(breaking: Any) -> None:
    current = schema_text(INVENTORY_EVENT)
    changed = _with_fields(INVENTORY_EVENT, breaking)
    backward = _checker_result(changed, current)
    forward = _checker_result(current, changed)
    assert SchemaCompatibilityType.incompatible in (backward, forward)


def test_compatible_change_passes() -> None:
    current = schema_text(INVENTORY_EVENT)
    changed = _with_fields(
        INVENTORY_EVENT,
        lambda f: f.append(
            {"name": "lot", "type": ["null", "string"], "default": None, "doc": "batch"}
        ),
    )
    assert _checker_result(changed, current) == SchemaCompatibilityType.compatible
    assert _checker_result(current, changed) == SchemaCompatibilityType.compatible
