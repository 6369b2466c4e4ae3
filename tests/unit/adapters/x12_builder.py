"""Building X12 interchanges for tests, with whatever separators a sender uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Separators:
    element: str = "*"
    component: str = ">"
    segment: str = "~"
    newline: str = "\n"


def isa(control: str, sep: Separators = Separators()) -> str:
    fields = [
        "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "ACMESUPPLY".ljust(15), "ZZ",
        "DISTCO".ljust(15), "260511", "0600", "U", "00401", control, "0", "P", sep.component,
    ]  # fmt: skip
    header = sep.element.join(fields) + sep.segment
    assert len(header) == 106
    return header


def segments(lines: list[str], sep: Separators) -> str:
    """Segments written with ``*`` between elements, in the sender's separators."""
    return "".join(line.replace("*", sep.element) + sep.segment + sep.newline for line in lines)


def transaction_set(body: list[str], control: str = "0001", kind: str = "856") -> list[str]:
    """ST, the body and an SE that counts them."""
    return [f"ST*{kind}*{control}", *body, f"SE*{len(body) + 2}*{control}"]


def interchange(
    *sets: list[str], control: str = "000000905", group: str = "905", sep: Separators = Separators()
) -> str:
    """One interchange of one functional group holding ``sets`` (from ``transaction_set``)."""
    lines = [f"GS*SH*ACMESUPPLY*DISTCO*20260511*0600*{group}*X*004010"]
    for body in sets:
        lines.extend(body)
    lines += [f"GE*{len(sets)}*{group}", f"IEA*1*{control}"]
    return isa(control, sep) + sep.newline + segments(lines, sep)


def asn(
    *,
    purpose: str = "00",
    shipment: str = "SHP-1",
    items: list[tuple[str, str, str]] | None = None,
    ship_to: str = "N1*ST*DISTCO DC01*92*DC01",
    delivery: str = "DTM*017*20260513*1000*ET",
) -> list[str]:
    """An 856 body: shipment, one order, one pack, and items (LIN qualifier+id, SN1 qty, unit)."""
    body = [
        f"BSN*{purpose}*{shipment}*20260511*0600*0001",
        "HL*1**S",
        "TD5*B*2*RDWY*M",
        "DTM*011*20260511*0530*ET",
        delivery,
        ship_to,
        "HL*2*1*O",
        "PRF*4500001234",
        "HL*3*2*P",
        "MAN*GM*00012345670000000011",
    ]
    for n, (lin, quantity, unit) in enumerate(items or [("BP*SKU-1", "10", "EA")], 4):
        body += [f"HL*{n}*3*I", f"LIN**{lin}", f"SN1**{quantity}*{unit}"]
    return [line for line in body if line]
