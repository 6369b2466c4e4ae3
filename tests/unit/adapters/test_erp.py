"""ERP goods movements: each movement type of the mapping table, stock types, reversals."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.adapters.support import brief, codes, events, normalize
from transforms.adapters import Options
from transforms.adapters.erp import MOVEMENTS


def line(
    movement: str,
    quantity: int,
    direction: str,
    *,
    number: int = 1,
    material: str = "SKU-1",
    plant: str = "DC01",
    stock: str = "01",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "MaterialDocumentItem": f"{number:04d}",
        "GoodsMovementType": movement,
        "Material": material,
        "Plant": plant,
        "StorageLocation": "0001",
        "InventoryStockType": stock,
        "InventorySpecialStockType": "",
        "DebitCreditCode": direction,
        "QuantityInBaseUnit": f"{quantity}.000",
        "MaterialBaseUnit": "EA",
        **extra,
    }


def document(*lines: dict[str, Any], reference: str = "", **header: Any) -> dict[str, Any]:
    return {
        "MaterialDocumentYear": "2026",
        "MaterialDocument": "4900000001",
        "CreationDate": "2026-05-11",
        "CreationTime": "08:15:00",
        "ReferenceDocument": reference,
        "to_MaterialDocumentItem": {"results": list(lines)},
        **header,
    }


def mapped(*lines: dict[str, Any], **header: Any) -> list[tuple[Any, ...]]:
    return [brief(e) for e in events("erp", document(*lines, **header))]


def pair(movement: str, quantity: int, h_stock: str, s_stock: str) -> list[dict[str, Any]]:
    """Both lines of a transfer posting within one plant."""
    return [
        line(movement, quantity, "H", stock=h_stock),
        line(movement, quantity, "S", number=2, stock=s_stock, IsAutomaticallyCreated="X"),
    ]


# One row per movement type of the table: (lines, events as brief tuples).
ROWS: dict[str, tuple[list[dict[str, Any]], list[tuple[Any, ...]]]] = {
    "101": (
        [line("101", 120, "S", PurchaseOrder="4500000001")],
        [("RECEIPT", "SKU-1", "DC01", 120, "4500000001", None)],
    ),
    "102": ([line("102", 6, "H")], [("ADJUSTMENT", "SKU-1", "DC01", -6, None, None)]),
    "122": ([line("122", 4, "H")], [("ADJUSTMENT", "SKU-1", "DC01", -4, None, None)]),
    "123": ([line("123", 4, "S")], [("ADJUSTMENT", "SKU-1", "DC01", 4, None, None)]),
    "201": ([line("201", 5, "H")], [("ADJUSTMENT", "SKU-1", "DC01", -5, None, None)]),
    "202": ([line("202", 5, "S")], [("ADJUSTMENT", "SKU-1", "DC01", 5, None, None)]),
    "261": ([line("261", 3, "H")], [("ADJUSTMENT", "SKU-1", "DC01", -3, None, None)]),
    "262": ([line("262", 3, "S")], [("ADJUSTMENT", "SKU-1", "DC01", 3, None, None)]),
    "301": (
        [
            line("301", 24, "H", IssuingOrReceivingPlant="DC02"),
            line("301", 24, "S", number=2, plant="DC02", IssuingOrReceivingPlant="DC01"),
        ],
        [
            ("TRANSFER_SHIPPED", "SKU-1", "DC01", 24, "4900000001/2026", "DC02"),
            ("TRANSFER_RECEIVED", "SKU-1", "DC02", 24, "4900000001/2026", None),
        ],
    ),
    "302": (
        [
            line("302", 24, "H", plant="DC02", IssuingOrReceivingPlant="DC01"),
            line("302", 24, "S", number=2, IssuingOrReceivingPlant="DC02"),
        ],
        [
            ("TRANSFER_SHIPPED", "SKU-1", "DC02", 24, "4900000001/2026", "DC01"),
            ("TRANSFER_RECEIVED", "SKU-1", "DC01", 24, "4900000001/2026", None),
        ],
    ),
    "321": (pair("321", 40, "02", "01"), [("QUALITY_RELEASE", "SKU-1", "DC01", 40, None, None)]),
    "322": (pair("322", 40, "01", "02"), [("QUALITY_HOLD", "SKU-1", "DC01", 40, None, None)]),
    "343": (pair("343", 4, "07", "01"), [("QUALITY_RELEASE", "SKU-1", "DC01", 4, None, None)]),
    "344": (pair("344", 10, "01", "07"), [("QUALITY_HOLD", "SKU-1", "DC01", 10, None, None)]),
    "551": ([line("551", 2, "H")], [("ADJUSTMENT", "SKU-1", "DC01", -2, None, None)]),
    "552": ([line("552", 2, "S")], [("ADJUSTMENT", "SKU-1", "DC01", 2, None, None)]),
    "601": (
        [line("601", 10, "H", SalesOrder="ORD-1")],
        [("SHIPMENT", "SKU-1", "DC01", 10, "ORD-1", None)],
    ),
    "602": ([line("602", 10, "S")], [("ADJUSTMENT", "SKU-1", "DC01", 10, None, None)]),
    "641": (
        [line("641", 20, "H", IssuingOrReceivingPlant="ST12", PurchaseOrder="4500009000")],
        [("TRANSFER_SHIPPED", "SKU-1", "DC01", 20, "4500009000", "ST12")],
    ),
    "701": ([line("701", 1, "S")], [("ADJUSTMENT", "SKU-1", "DC01", 1, None, None)]),
    "702": ([line("702", 3, "H")], [("ADJUSTMENT", "SKU-1", "DC01", -3, None, None)]),
}


@pytest.mark.parametrize("movement", sorted(ROWS))
def test_each_movement_type_maps_as_its_table_row(movement: str) -> None:
    lines, expected = ROWS[movement]
    assert mapped(*lines) == expected


def test_every_mapped_movement_type_has_a_row_or_a_no_effect_test() -> None:
    # 311/312 (storage locations), 349/350 (both sides held) and 642 are tested below.
    assert set(MOVEMENTS) == set(ROWS) | {"311", "312", "349", "350", "642"}


@pytest.mark.parametrize(("movement", "stocks"), [("311", ("01", "01")), ("349", ("07", "02"))])
def test_movements_that_change_nothing_at_plant_level_are_ignored(
    movement: str, stocks: tuple[str, str]
) -> None:
    result = normalize("erp", document(*pair(movement, 5, *stocks)))
    assert not result.violations and not result.events
    assert result.ignored == "NO_ATP_EFFECT"


def test_a_receipt_into_quality_inspection_holds_before_it_receives() -> None:
    # The hold first: a reader between the two events never sees unsellable stock as available.
    assert mapped(line("101", 60, "S", stock="02", PurchaseOrder="4500000001")) == [
        ("QUALITY_HOLD", "SKU-1", "DC01", 60, None, None),
        ("RECEIPT", "SKU-1", "DC01", 60, "4500000001", None),
    ]


def test_an_issue_from_blocked_stock_lowers_on_hand_before_it_releases() -> None:
    assert mapped(line("551", 2, "H", stock="07")) == [
        ("ADJUSTMENT", "SKU-1", "DC01", -2, None, None),
        ("QUALITY_RELEASE", "SKU-1", "DC01", 2, None, None),
    ]


def test_a_receipt_counts_against_the_asn_named_by_the_delivery_note() -> None:
    (receipt,) = events(
        "erp", document(line("101", 12, "S", PurchaseOrder="4500000001"), reference="SHP-77")
    )
    assert receipt["reference_id"] == "SHP-77"


def test_a_receipt_from_a_supplying_plant_receives_the_stock_transport_order() -> None:
    receipt = line(
        "101", 18, "S", plant="ST12", IssuingOrReceivingPlant="DC01", PurchaseOrder="4500009000"
    )
    assert mapped(receipt, reference="80012345") == [
        ("TRANSFER_RECEIVED", "SKU-1", "ST12", 18, "4500009000", None)
    ]


def test_lines_of_one_key_and_reference_become_one_event() -> None:
    # Two lines of one order: one shipment (a second would count as a split shipment).
    assert mapped(
        line("601", 4, "H", SalesOrder="ORD-1"),
        line("601", 6, "H", number=2, SalesOrder="ORD-1"),
        line("601", 1, "H", number=3, material="SKU-2", SalesOrder="ORD-1"),
    ) == [
        ("SHIPMENT", "SKU-1", "DC01", 10, "ORD-1", None),
        ("SHIPMENT", "SKU-2", "DC01", 1, "ORD-1", None),
    ]


def test_a_reversal_points_at_the_document_it_reverses() -> None:
    reversal = line(
        "102", 6, "H", ReversedMaterialDocument="4900000101", ReversedMaterialDocumentYear="2026"
    )
    (event,) = events("erp", document(reversal, MaterialDocument="4900000113"))
    assert event["correlation_id"] == "4900000101/2026"
    assert event["event_id"] == "ERP:2026:4900000113:0001:ADJUSTMENT"


def test_event_ids_come_from_the_document_so_a_redelivery_repeats_them() -> None:
    doc = document(line("101", 60, "S", stock="02"), line("201", 1, "H", number=2))
    first, again = events("erp", doc), events("erp", doc)
    assert [e["event_id"] for e in first] == [
        "ERP:2026:4900000001:0001:QUALITY_HOLD",
        "ERP:2026:4900000001:0002:ADJUSTMENT",
        "ERP:2026:4900000001:0001:RECEIPT",
    ]
    assert first == again


def test_creation_time_is_read_in_the_erp_time_zone_in_iso_or_odata_form() -> None:
    iso = document(line("701", 1, "S"), CreationDate="2026-05-11", CreationTime="08:15:00")
    odata = document(
        line("701", 1, "S"), CreationDate="/Date(1778457600000)/", CreationTime="PT08H15M00S"
    )
    berlin = Options(timezone="Europe/Berlin")
    assert events("erp", iso)[0]["occurred_at"] == "2026-05-11T08:15:00Z"
    assert events("erp", odata)[0]["occurred_at"] == "2026-05-11T08:15:00Z"
    assert events("erp", iso, berlin)[0]["occurred_at"] == "2026-05-11T06:15:00Z"


def test_an_odata_v2_envelope_and_a_plain_item_list_are_read() -> None:
    doc = document(line("701", 1, "S"))
    plain = {**doc, "to_MaterialDocumentItem": doc["to_MaterialDocumentItem"]["results"]}
    assert events("erp", {"d": doc}) == events("erp", doc) == events("erp", plain)


def test_special_stock_is_not_own_stock_and_is_ignored() -> None:
    result = normalize("erp", document(line("101", 50, "S", InventorySpecialStockType="K")))
    assert result.ignored == "SPECIAL_STOCK" and not result.events
    # Only the special stock line is left out of a mixed document.
    assert mapped(
        line("201", 1, "H", InventorySpecialStockType="E"), line("201", 2, "H", number=2)
    ) == [("ADJUSTMENT", "SKU-1", "DC01", -2, None, None)]


def test_blank_optional_fields_count_as_absent() -> None:
    padded = line("201", 2, "H", InventorySpecialStockType=" ", SalesOrder="  ")
    assert mapped(padded, reference=" ") == [("ADJUSTMENT", "SKU-1", "DC01", -2, None, None)]


def test_skipped_codes_are_left_to_the_system_that_feeds_that_fact() -> None:
    doc = document(line("601", 10, "H", SalesOrder="ORD-1"))
    result = normalize("erp", doc, Options(skip_codes=frozenset({"601"})))
    assert result.ignored == "SKIPPED_CODE" and not result.events


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        (document(line("Z91", 1, "H")), "UNKNOWN_CODE"),
        (document(line("201", 1, "H", InventorySpecialStockType="Z")), "UNKNOWN_CODE"),
        (document(line("201", 1, "H", stock="04")), "UNKNOWN_CODE"),
        (document(line("201", 1, "X")), "UNKNOWN_CODE"),
        (document(line("201", 1, "S")), "DIRECTION_MISMATCH"),
        (document(*pair("321", 5, "01", "01")), "STOCK_TYPE_MISMATCH"),
        (document(line("321", 5, "H", stock="02")), "UNBALANCED_DOCUMENT"),
        (document(line("301", 5, "H", IssuingOrReceivingPlant="DC02")), "UNBALANCED_DOCUMENT"),
        (document(line("642", 1, "S", IssuingOrReceivingPlant="ST12")), "NOT_MAPPABLE"),
        (document(line("601", 1, "H")), "MISSING_FIELD"),
        (document(line("641", 1, "H", PurchaseOrder="4500009000")), "MISSING_FIELD"),
        (document(line("201", 1, "H", QuantityInBaseUnit="1.500")), "FRACTIONAL_QUANTITY"),
        (document(line("201", 1, "H", QuantityInBaseUnit="-1")), "INVALID_FIELD"),
        (document(line("201", 1, "H"), CreationTime="25:00:00"), "INVALID_FIELD"),
        (document(line("201", 1, "H"), MaterialDocument=""), "MISSING_FIELD"),
        ({**document(), "to_MaterialDocumentItem": {"results": []}}, "MISSING_FIELD"),
        (
            document(line("641", 1, "H", IssuingOrReceivingPlant="DC01", PurchaseOrder="45")),
            "TRANSFER_TO_SAME_LOCATION",
        ),
    ],
)
def test_unmappable_documents_are_dead_lettered_with_a_reason(
    doc: dict[str, Any], code: str
) -> None:
    result = normalize("erp", doc)
    assert codes(result)[0] == code and not result.events


def test_one_bad_line_dead_letters_the_whole_document_with_every_problem() -> None:
    result = normalize(
        "erp",
        document(line("701", 1, "S"), line("Z91", 1, "H", number=2), line("999", 1, "H", number=3)),
    )
    assert not result.events
    assert codes(result) == ["UNKNOWN_CODE", "UNKNOWN_CODE"]
    assert result.violations[0].message.startswith("line 0002: GoodsMovementType 'Z91'")


def test_a_record_that_is_not_json_is_undecodable() -> None:
    assert codes(normalize("erp", b"{not json")) == ["UNDECODABLE"]
    assert codes(normalize("erp", b"[1, 2]")) == ["UNDECODABLE"]
