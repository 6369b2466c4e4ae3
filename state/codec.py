"""Compact, explicitly typed binary encoding of ``KeyState`` (no pickles).

Layout: one format-version byte, then the state as schemaless Avro binary under
``avro/atp_key_state.avsc``. The version byte lets a later release read state
written by this one (Avro schema resolution against the writer schema it names).

Format 2 packs the id memories (up to 5,000 dedup ids and 5,000 tombstones per key)
into a JSON array of ids and a column of int64 stamps: the stream job encodes a key's
state after every event, and one Avro record per id made that cost grow with the
memory (1.5 ms per event on a hot key). Format 1 (an Avro record per id) still reads.
"""

from __future__ import annotations

import io
import json
from functools import cache
from typing import Any, Final

import fastavro
import orjson

from state.memory import StampedSet
from state.model import KeyState, Reservation, SupplyLine
from state.schemas import AVRO_DIR, KEY_STATE, parsed_schema

FORMAT_VERSION: Final = 2


class StateFormatError(ValueError):
    """Bytes that are not a KeyState this release can read."""


def _to_record(state: KeyState) -> dict[str, Any]:
    return {
        "on_hand": state.on_hand,
        "quarantined": state.quarantined,
        "safety_stock": state.safety_stock,
        "reserved": [
            {"ref": ref, "quantity": r.quantity, "expires_at": r.expires_at}
            for ref, r in state.reserved.items()
        ],
        "allocated": state.allocated,
        "supply": [
            {
                "ref": ref,
                "asn_quantity": s.asn_quantity,
                "asn_expected_at": s.asn_expected_at,
                "asn_confidence": s.asn_confidence,
                "shipped": s.shipped,
                "transfer_expected_at": s.transfer_expected_at,
                "received": s.received,
                "asn_overdue_reported": s.asn_overdue_reported,
                "transfer_overdue_reported": s.transfer_overdue_reported,
                "touched_at": s.touched_at,
            }
            for ref, s in state.supply.items()
        ],
        "closed": [],
        "seen": [],
        **_packed("closed", state.closed),
        **_packed("seen", state.seen),
        "version": state.version,
        "revision": state.revision,
        "duplicates": state.duplicates,
        "clock": state.clock,
        "last_event_id": state.last_event_id,
        "last_correlation_id": state.last_correlation_id,
        "oversold": state.oversold,
        "supply_swept_at": state.supply_swept_at,
    }


def _from_record(rec: dict[str, Any]) -> KeyState:
    return KeyState(
        on_hand=rec["on_hand"],
        quarantined=rec["quarantined"],
        safety_stock=rec["safety_stock"],
        reserved={r["ref"]: Reservation(r["quantity"], r["expires_at"]) for r in rec["reserved"]},
        allocated=dict(rec["allocated"]),
        supply={
            s["ref"]: SupplyLine(
                asn_quantity=s["asn_quantity"],
                asn_expected_at=s["asn_expected_at"],
                asn_confidence=s["asn_confidence"],
                shipped=s["shipped"],
                transfer_expected_at=s["transfer_expected_at"],
                received=s["received"],
                asn_overdue_reported=s["asn_overdue_reported"],
                transfer_overdue_reported=s["transfer_overdue_reported"],
                touched_at=s["touched_at"],
            )
            for s in rec["supply"]
        },
        closed=_unpacked("closed", rec),
        seen=_unpacked("seen", rec),
        version=rec["version"],
        revision=rec["revision"],
        duplicates=rec["duplicates"],
        clock=rec["clock"],
        last_event_id=rec["last_event_id"],
        last_correlation_id=rec["last_correlation_id"],
        oversold=rec["oversold"],
        supply_swept_at=rec["supply_swept_at"],
    ).recount()


def _packed(name: str, memory: StampedSet) -> dict[str, Any]:
    members, stamps = memory.columns()
    return {f"{name}_ids": orjson.dumps(members).decode(), f"{name}_at": stamps}


def _unpacked(name: str, rec: dict[str, Any]) -> StampedSet:
    if rec[name]:  # format 1: one record per id
        return StampedSet([(c["id"], c["at"]) for c in rec[name]])
    return StampedSet.from_columns(orjson.loads(rec[f"{name}_ids"]), rec[f"{name}_at"])


@cache
def _format_1_schema() -> Any:
    released = AVRO_DIR / "released" / f"{KEY_STATE}.v1.avsc"
    return fastavro.parse_schema(json.loads(released.read_text()), named_schemas={})


def encode_state(state: KeyState) -> bytes:
    out = io.BytesIO()
    out.write(bytes((FORMAT_VERSION,)))
    fastavro.schemaless_writer(out, parsed_schema(KEY_STATE), _to_record(state))
    return out.getvalue()


def decode_state(data: bytes) -> KeyState:
    if not data or data[0] not in (1, FORMAT_VERSION):
        raise StateFormatError(
            f"unknown key-state format version {data[0] if data else None}; "
            f"this release reads versions 1 and {FORMAT_VERSION}"
        )
    buf = io.BytesIO(data)
    buf.seek(1)
    writer = parsed_schema(KEY_STATE) if data[0] == FORMAT_VERSION else _format_1_schema()
    record = fastavro.schemaless_reader(buf, writer, parsed_schema(KEY_STATE))
    if not isinstance(record, dict):
        raise StateFormatError("key state is not a record")
    return _from_record(record)
