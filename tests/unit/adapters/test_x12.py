"""X12 envelopes: separators from the ISA header, control numbers, broken interchanges."""

from __future__ import annotations

from tests.unit.adapters.x12_builder import (
    Separators,
    asn,
    interchange,
    isa,
    segments,
    transaction_set,
)
from transforms.adapters import x12


def parse(text: str) -> list[x12.TransactionSet | x12.Broken]:
    return list(x12.transaction_sets(text.encode("latin-1")))


def test_separators_are_read_from_the_isa_header() -> None:
    for sep in (
        Separators(),
        Separators("|", "^", "~", "\r\n"),
        Separators("^", ":", "'", ""),
        Separators("*", ">", "\n", ""),  # a line break as the terminator
    ):
        (ts,) = parse(interchange(transaction_set(asn()), sep=sep))
        assert isinstance(ts, x12.TransactionSet), ts
        assert ts.delimiters == x12.Delimiters(sep.element, sep.component, sep.segment)
        assert [s.tag for s in ts.segments][:4] == ["ST", "BSN", "HL", "TD5"]
        assert ts.segments[1].el(2) == "SHP-1"
        assert ts.envelope.sender == "ACMESUPPLY"  # the ISA's padding is trimmed
        assert ts.envelope.interchange_control_number == "000000905"


def test_several_sets_and_interchanges_in_one_input_keep_their_order_and_lines() -> None:
    first = interchange(transaction_set(asn(), "0001"), transaction_set(asn(), "0002"))
    second = interchange(transaction_set(asn(shipment="SHP-2")), control="000000906", group="906")
    sets = [s for s in parse(first + second) if isinstance(s, x12.TransactionSet)]
    assert [(s.envelope.interchange_control_number, s.control_number) for s in sets] == [
        ("000000905", "0001"),
        ("000000905", "0002"),
        ("000000906", "0001"),
    ]
    assert [s.line for s in sets] == [3, 18, 37]
    assert sets[0].raw.startswith(b"ST*856*0001~") and sets[0].raw.endswith(b"SE*15*0001~")


def test_element_positions_are_one_based_and_absent_elements_are_empty() -> None:
    (ts,) = parse(interchange(transaction_set(asn())))
    assert isinstance(ts, x12.TransactionSet)
    hl = ts.segments[2]
    assert (hl.tag, hl.el(1), hl.el(2), hl.el(3), hl.el(9)) == ("HL", "1", "", "S", "")


def test_a_wrong_segment_count_dead_letters_that_set_only() -> None:
    good = transaction_set(asn(), "0001")
    bad = transaction_set(asn(), "0002")
    bad[-1] = "SE*99*0002"
    first, second = parse(interchange(good, bad))
    assert isinstance(first, x12.TransactionSet)
    assert isinstance(second, x12.Broken)
    assert second.violations[0].code == "X12_CONTROL_MISMATCH"
    assert second.source["transaction_set_control_number"] == "0002"
    assert second.raw.startswith(b"ST*856*0002~")


def test_se_must_name_its_st() -> None:
    body = transaction_set(asn())
    body[-1] = body[-1].replace("*0001", "*0009")
    (broken,) = parse(interchange(body))
    assert isinstance(broken, x12.Broken) and broken.violations[0].code == "X12_CONTROL_MISMATCH"


def test_a_broken_envelope_dead_letters_the_whole_interchange() -> None:
    text = interchange(transaction_set(asn(), "0001"), transaction_set(asn(), "0002"))
    for wrong in (
        text.replace("GE*2*905", "GE*3*905"),
        text.replace("GE*2*905", "GE*2*999"),
        text.replace("IEA*1*000000905", "IEA*1*000000777"),
        text.replace("IEA*1*000000905", "IEA*2*000000905"),
    ):
        (broken,) = parse(wrong)
        assert isinstance(broken, x12.Broken)
        assert broken.violations[0].code == "X12_CONTROL_MISMATCH"
        assert broken.raw.startswith(b"ISA*") and b"\nIEA*" in broken.raw
        assert broken.source["interchange_control_number"] == "000000905"


def test_structure_errors_dead_letter_the_interchange() -> None:
    text = interchange(transaction_set(asn()))
    for wrong, message in (
        (text.replace("IEA*1*000000905~\n", ""), "has no IEA"),
        (text.replace("SE*15*0001~\n", ""), "has no SE"),
        (text.replace("GS*SH", "GX*SH"), "expected GS or IEA"),
        (text.replace("HL*1**S", "hl*1**S"), "not a segment tag"),
    ):
        (broken,) = parse(wrong)
        assert isinstance(broken, x12.Broken), message
        assert broken.violations[0].code == "X12_SYNTAX"
        assert message in broken.violations[0].message


def test_text_that_is_not_an_interchange_is_dead_lettered_and_the_next_one_read() -> None:
    good = interchange(transaction_set(asn()))
    junk, ts = parse("hello, this is not EDI\n" + good)
    assert isinstance(junk, x12.Broken) and junk.raw == b"hello, this is not EDI"
    assert junk.violations[0].code == "X12_SYNTAX"
    assert isinstance(ts, x12.TransactionSet)


def test_an_isa_header_that_is_not_fixed_width_is_rejected() -> None:
    short = isa("000000905").replace("ACMESUPPLY     ", "ACMESUPPLY")
    (broken,) = parse(short + segments(["GS*SH", "GE*0*1", "IEA*0*000000905"], Separators()))
    assert isinstance(broken, x12.Broken)
    assert broken.violations[0].code == "X12_SYNTAX"
    assert "ISA" in broken.violations[0].message
    assert list(x12.transaction_sets(b"  \r\n")) == []
