"""EDI 856 ship notices: the HL tree, quantities, dates, references and what is rejected."""

from __future__ import annotations

import pytest

from tests.unit.adapters.support import DATA, brief, codes, normalize
from tests.unit.adapters.x12_builder import asn, interchange, transaction_set
from transforms.adapters import ADAPTERS, Options, Result
from transforms.validation import parse_event


def run(*sets: list[str], options: Options | None = None) -> list[Result]:
    text = interchange(*(transaction_set(body, f"{n:04d}") for n, body in enumerate(sets, 1)))
    return ADAPTERS["edi856"].normalize(text.encode(), options or Options())


def test_the_sample_file_maps_every_hl_level_it_holds() -> None:
    results = ADAPTERS["edi856"].normalize((DATA / "asn.x12").read_bytes(), Options())
    assert [r.source["transaction_set_control_number"] for r in results] == [
        "0001",
        "0002",
        "0001",
        "0002",
    ]
    first, second, replacement, gtin_only = results
    # Shipment -> 2 orders -> 3 packs -> 4 items: SKU-000001 is in three packs of two
    # orders (72 + 48 + 24), one ASN per shipment and key.
    assert [brief(e) for e in first.events] == [
        ("ASN", "SKU-000001", "DC01", 144, "SHP-2026-0511-001", None),
        ("ASN", "SKU-000002", "DC01", 60, "SHP-2026-0511-001", None),
    ]
    asn_event = first.events[0]
    assert asn_event["expected_at"] == "2026-05-13T14:00:00Z"  # DTM*017 10:00 ET, daylight time
    assert asn_event["occurred_at"] == "2026-05-11T06:00:00Z"  # BSN03/BSN04
    assert asn_event["correlation_id"] == "4500001234"  # PRF01 of the first order
    assert asn_event["event_id"] == "EDI:ACMESUPPLY:SHP-2026-0511-001:202605110600:SKU-000001@DC01"
    assert [brief(e) for e in second.events] == [
        ("ASN", "SKU-000003", "DC02", 30, "SHP-2026-0511-002", None)
    ]
    assert second.events[0]["expected_at"] == "2026-05-14T12:00:00Z"  # UT
    # The next day's interchange uses other separators and replaces the second shipment.
    assert [(e["quantity"], e["expected_at"]) for e in replacement.events] == [
        (36, "2026-05-15T08:00:00Z")
    ]
    assert replacement.events[0]["event_id"] != second.events[0]["event_id"]
    assert codes(gtin_only) == ["MISSING_FIELD"]
    assert gtin_only.source["line"] == 72
    for result in (first, second, replacement):
        for event in result.events:
            assert not isinstance(parse_event(event), list)


def test_a_redelivered_interchange_repeats_its_event_ids() -> None:
    data = (DATA / "asn.x12").read_bytes()
    once = ADAPTERS["edi856"].normalize(data, Options())
    assert once == ADAPTERS["edi856"].normalize(data, Options())


@pytest.mark.parametrize("purpose", ["00", "05", "07"])
def test_original_replacement_and_duplicate_notices_announce_their_quantities(purpose: str) -> None:
    (result,) = run(asn(purpose=purpose))
    assert [brief(e) for e in result.events] == [("ASN", "SKU-1", "DC01", 10, "SHP-1", None)]


def test_a_cancellation_sets_each_listed_item_to_zero() -> None:
    (result,) = run(asn(purpose="01"))
    assert [brief(e) for e in result.events] == [("ASN", "SKU-1", "DC01", 0, "SHP-1", None)]


def test_ship_to_and_delivery_date_are_inherited_from_the_nearest_level() -> None:
    body = asn(items=[("BP*SKU-1", "4", "EA")])
    # An order-level ship-to and date override the shipment's.
    order = body.index("HL*2*1*O")
    body[order + 1 : order + 1] = ["N1*ST*STORE 12*92*ST12", "DTM*017*20260514*0800*UT"]
    (result,) = run(body)
    assert [(e["location_id"], e["expected_at"]) for e in result.events] == [
        ("ST12", "2026-05-14T08:00:00Z")
    ]


def test_dates_without_a_time_code_are_in_the_source_time_zone() -> None:
    (result,) = run(asn(delivery="DTM*017*20260513*1000"), options=Options(timezone="Asia/Tokyo"))
    assert result.events[0]["expected_at"] == "2026-05-13T01:00:00Z"
    assert result.events[0]["occurred_at"] == "2026-05-10T21:00:00Z"  # BSN 06:00 Tokyo


def test_vendor_and_upc_numbers_alone_are_never_guessed_into_a_sku() -> None:
    (result,) = run(asn(items=[("BP*SKU-1", "1", "EA"), ("VP*ACM-1*UP*0123", "2", "EA")]))
    assert codes(result) == ["MISSING_FIELD"] and not result.events
    assert "qualifiers present: UP, VP" in result.violations[0].message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (asn(purpose="99"), "UNKNOWN_CODE"),
        (asn(items=[("BP*SKU-1", "2", "CA")]), "UNSUPPORTED_UNIT"),
        (asn(items=[("BP*SKU-1", "2.5", "EA")]), "FRACTIONAL_QUANTITY"),
        (asn(ship_to="N1*ST*DC01*UL*0614141000012"), "UNKNOWN_CODE"),
        (asn(ship_to="N1*ST*DISTCO DC01"), "UNKNOWN_CODE"),
        (asn(ship_to=""), "MISSING_FIELD"),
        (asn(delivery=""), "MISSING_FIELD"),
        (asn(delivery="DTM*017*20260513*1000*XX"), "UNKNOWN_CODE"),
        (asn(delivery="DTM*017*20261313*1000*UT"), "INVALID_FIELD"),
        (asn(shipment=""), "MISSING_FIELD"),
        ([line.replace("HL*4*3*I", "HL*4*3*Z") for line in asn()], "UNKNOWN_CODE"),
        ([line.replace("HL*4*3*I", "HL*4*9*I") for line in asn()], "HL_STRUCTURE"),
        ([line.replace("HL*2*1*O", "HL*1*1*O") for line in asn()], "HL_STRUCTURE"),
        ([line.replace("HL*1**S", "HL*1**O") for line in asn()], "HL_STRUCTURE"),
        ([line for line in asn() if not line.startswith("SN1")], "MISSING_FIELD"),
        ([line for line in asn() if not line.startswith("LIN")], "MISSING_FIELD"),
        (asn()[:6], "MISSING_FIELD"),  # no item level at all
        (asn()[1:], "X12_SYNTAX"),  # no BSN
    ],
)
def test_unmappable_notices_are_dead_lettered_with_a_reason(body: list[str], code: str) -> None:
    (result,) = run(body)
    assert codes(result)[0] == code and not result.events
    assert result.raw.startswith(b"ST*856*0001~")


def test_other_transaction_sets_are_not_read_as_ship_notices() -> None:
    text = interchange(transaction_set(["BEG*00*SA*4500001234**20260511"], kind="850"))
    (result,) = ADAPTERS["edi856"].normalize(text.encode(), Options())
    assert codes(result) == ["UNSUPPORTED_TRANSACTION_SET"]


def test_a_skipped_purpose_maps_to_nothing() -> None:
    (result,) = run(asn(purpose="07"), options=Options(skip_codes=frozenset({"07"})))
    assert result.ignored == "SKIPPED_CODE" and not result.events


def test_a_broken_envelope_is_one_dead_letter_with_its_coordinates() -> None:
    text = interchange(transaction_set(asn())).replace("IEA*1*000000905", "IEA*1*000000001")
    (result,) = ADAPTERS["edi856"].normalize(text.encode(), Options())
    assert codes(result) == ["X12_CONTROL_MISMATCH"]
    assert result.source == {
        "sender": "ACMESUPPLY",
        "interchange_control_number": "000000905",
        "line": 1,
    }
    assert normalize("edi856", b"not x12 at all").violations[0].code == "X12_SYNTAX"
    assert normalize("edi856", b" \r\n").violations[0].message == "no interchange"
