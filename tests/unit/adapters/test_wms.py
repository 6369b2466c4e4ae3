"""WMS status events: each transaction type of the mapping table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.adapters.support import brief, codes, events, normalize
from transforms.adapters import Options
from transforms.adapters.wms import TXN_TYPES


def txn(txn_type: str, **fields: Any) -> dict[str, Any]:
    return {
        "txn_id": "88120031",
        "txn_type": txn_type,
        "txn_ts": "2026-05-13T10:00:00-04:00",
        "facility": "DC01",
        "sku": "SKU-1",
        "qty": 10,
        "uom": "EA",
        "order_id": "ORD-1",
        "wave_id": "W0513-03",
        **fields,
    }


ROWS = {
    "WAVE_ALLOCATED": (txn("WAVE_ALLOCATED"), ("ALLOCATION", "SKU-1", "DC01", 10, "ORD-1", None)),
    "SHIPPED": (txn("SHIPPED"), ("SHIPMENT", "SKU-1", "DC01", 10, "ORD-1", None)),
    "QC_HOLD": (txn("QC_HOLD", order_id=None), ("QUALITY_HOLD", "SKU-1", "DC01", 10, None, None)),
    "QC_RELEASE": (txn("QC_RELEASE"), ("QUALITY_RELEASE", "SKU-1", "DC01", 10, None, None)),
    "CYCLE_COUNT": (
        txn("CYCLE_COUNT", count_scope="FACILITY", qty=40),
        ("CYCLE_COUNT", "SKU-1", "DC01", 40, None, None),
    ),
}


@pytest.mark.parametrize("txn_type", sorted(ROWS))
def test_each_transaction_type_maps_as_its_table_row(txn_type: str) -> None:
    record, expected = ROWS[txn_type]
    (event,) = events("wms", record)
    assert brief(event) == expected
    assert event["event_id"] == "WMS:88120031"
    assert event["source_system"] == "WMS"
    assert event["occurred_at"] == "2026-05-13T14:00:00Z"  # the offset is honoured


def test_the_table_is_covered() -> None:
    assert set(TXN_TYPES) == set(ROWS) | {"PICK_CONFIRMED"}


def test_a_pick_confirmation_changes_no_quantity_of_the_contract() -> None:
    result = normalize("wms", txn("PICK_CONFIRMED", bin="A-12-03"))
    assert result.ignored == "NO_ATP_EFFECT" and not result.events and not result.violations


def test_a_bin_count_is_the_bin_variance_not_the_facility_total() -> None:
    (event,) = events("wms", txn("CYCLE_COUNT", count_scope="BIN", qty=7, system_qty=8))
    assert brief(event) == ("ADJUSTMENT", "SKU-1", "DC01", -1, None, None)
    same = normalize("wms", txn("CYCLE_COUNT", count_scope="BIN", qty=8, system_qty=8))
    assert same.ignored == "NO_ATP_EFFECT" and not same.events


def test_the_wave_is_carried_as_correlation_id() -> None:
    (event,) = events("wms", txn("WAVE_ALLOCATED"))
    assert event["correlation_id"] == "W0513-03"


def test_skipped_codes_map_to_nothing() -> None:
    result = normalize("wms", txn("SHIPPED"), Options(skip_codes=frozenset({"SHIPPED"})))
    assert result.ignored == "SKIPPED_CODE" and not result.events


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (txn("PUTAWAY_CONFIRMED"), "UNKNOWN_CODE"),
        (txn("CYCLE_COUNT"), "MISSING_FIELD"),  # a count must say what it counted
        (txn("CYCLE_COUNT", count_scope="ZONE"), "UNKNOWN_CODE"),
        (txn("CYCLE_COUNT", count_scope="BIN"), "MISSING_FIELD"),
        (txn("SHIPPED", order_id=None), "MISSING_FIELD"),
        (txn("SHIPPED", uom="CS"), "UNSUPPORTED_UNIT"),
        (txn("SHIPPED", qty=2.5), "FRACTIONAL_QUANTITY"),
        (txn("SHIPPED", qty="ten"), "INVALID_FIELD"),
        (txn("SHIPPED", txn_ts="yesterday"), "INVALID_FIELD"),
        (txn("SHIPPED", facility=""), "MISSING_FIELD"),
    ],
)
def test_unmappable_transactions_are_dead_lettered_with_a_reason(
    record: dict[str, Any], code: str
) -> None:
    result = normalize("wms", record)
    assert codes(result) == [code] and not result.events
