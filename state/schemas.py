"""The Avro schemas in ``avro/``: the contract with other teams, loaded once."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

import fastavro

AVRO_DIR: Final = Path(__file__).resolve().parent.parent / "avro"

INVENTORY_EVENT: Final = "inventory_event"
ATP_SNAPSHOT: Final = "atp_snapshot"
ATP_CHANGE: Final = "atp_change"
CHANNEL_ATP_CHANGE: Final = "channel_atp_change"
DEAD_LETTER: Final = "dead_letter"
ATP_EXCEPTION: Final = "atp_exception"
KEY_STATE: Final = "atp_key_state"

WIRE_SCHEMAS: Final = (
    INVENTORY_EVENT,
    ATP_SNAPSHOT,
    ATP_CHANGE,
    CHANNEL_ATP_CHANGE,
    DEAD_LETTER,
    ATP_EXCEPTION,
)


def schema_path(name: str) -> Path:
    return AVRO_DIR / f"{name}.avsc"


@cache
def schema_text(name: str) -> str:
    """The ``.avsc`` text, as registered with a schema registry."""
    return schema_path(name).read_text(encoding="utf-8")


@cache
def parsed_schema(name: str) -> Any:
    """The schema parsed by fastavro, for fast binary encoding."""
    return fastavro.parse_schema(json.loads(schema_text(name)))
