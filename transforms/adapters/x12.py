"""ASC X12 interchanges: envelopes, segments and separators, for any transaction set.

The separators are the sender's, read from the fixed-width ISA header: the element
separator is its 4th character, the component (sub-element) separator its 105th, the
segment terminator its 106th. Line breaks after terminators are tolerated. Control
numbers and counts are checked (SE01 and SE02 against the set, GE01/GE02 and
IEA01/IEA02 against the envelope): a set that fails is dead-lettered alone; a broken
envelope dead-letters the whole interchange, as an X12 acknowledgement would reject it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from transforms.adapters import reasons
from transforms.validation import Violation

ISA_LENGTH: Final = 106
"""ISA is fixed width: 3 + 16 separators + 86 data characters, then the terminator."""
_TAG: Final = re.compile(r"[A-Z][A-Z0-9]{1,2}")


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str
    component: str
    segment: str


@dataclass(frozen=True, slots=True)
class Segment:
    tag: str
    elements: tuple[str, ...]
    """The data elements after the tag: ``elements[0]`` is element 01."""
    offset: int
    """Where the segment starts in the decoded input."""

    def el(self, position: int) -> str:
        """Element ``position`` (1-based, as X12 numbers them), trimmed; "" when absent."""
        return self.elements[position - 1].strip() if position <= len(self.elements) else ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The interchange (ISA) and functional group (GS) a transaction set came in."""

    sender: str
    receiver: str
    interchange_control_number: str
    group_control_number: str
    functional_id: str
    version: str

    def source(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "interchange_control_number": self.interchange_control_number,
            "group_control_number": self.group_control_number,
        }


@dataclass(frozen=True, slots=True)
class TransactionSet:
    envelope: Envelope
    delimiters: Delimiters
    segments: tuple[Segment, ...]
    """ST through SE."""
    raw: bytes
    """The set's text exactly as received, ST through SE's terminator."""
    line: int
    """1-based line of the input where ST starts."""

    @property
    def control_number(self) -> str:
        return self.segments[0].el(2)


@dataclass(frozen=True, slots=True)
class Broken:
    """Input that cannot be read as transaction sets: a dead letter."""

    violations: tuple[Violation, ...]
    raw: bytes
    line: int
    source: dict[str, Any] = field(default_factory=dict)


class _Syntax(Exception):  # noqa: N818 - internal control flow, never escapes this module
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.violation = Violation(code, message)


def transaction_sets(data: bytes) -> Iterator[TransactionSet | Broken]:
    """Every transaction set of every interchange in ``data``, in order."""
    text = data.decode("latin-1")  # X12 is ASCII; latin-1 never fails and keeps offsets
    position = 0
    while True:
        start = _skip_space(text, position)
        if start >= len(text):
            return
        if not text.startswith("ISA", start):
            found = text.find("ISA", start)
            end = len(text) if found < 0 else found
            yield _broken(
                text, start, end, reasons.X12_SYNTAX, "not an X12 interchange (no ISA header)"
            )
            position = end
            continue
        try:
            delimiters = _delimiters(text, start)
        except _Syntax as err:
            found = text.find("ISA", start + 3)
            end = len(text) if found < 0 else found
            yield _broken(text, start, end, err.violation.code, str(err))
            position = end
            continue
        segments, end = _interchange_segments(text, start, delimiters)
        try:
            yield from _interchange(text, segments, delimiters)
        except _Syntax as err:
            yield _broken(text, start, end, err.violation.code, str(err), _isa_source(segments))
        position = end


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n\ufeff":
        position += 1
    return position


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _broken(
    text: str, start: int, end: int, code: str, message: str, source: dict[str, Any] | None = None
) -> Broken:
    raw = text[start:end].rstrip().encode("latin-1")
    return Broken((Violation(code, message),), raw, _line(text, start), source or {})


def _delimiters(text: str, start: int) -> Delimiters:
    header = text[start : start + ISA_LENGTH]
    if len(header) < ISA_LENGTH:
        raise _Syntax(reasons.X12_SYNTAX, "ISA header is shorter than its fixed 106 characters")
    element, component, segment = header[3], header[104], header[105]
    fields = header[:105].split(element)
    if len(fields) != 17 or fields[16] != component:
        raise _Syntax(
            reasons.X12_SYNTAX,
            f"ISA header is not 16 fixed-width elements separated by {element!r}",
        )
    if element.isalnum() or len({element, component, segment}) != 3:
        raise _Syntax(
            reasons.X12_SYNTAX,
            f"ISA separators are not distinct punctuation: element {element!r}, "
            f"component {component!r}, segment {segment!r}",
        )
    return Delimiters(element, component, segment)


def _interchange_segments(
    text: str, start: int, delimiters: Delimiters
) -> tuple[list[Segment], int]:
    """The segments from ISA through IEA (or to the end of the input), and where they end."""
    segments: list[Segment] = []
    position = start
    while position < len(text):
        begin = _skip_space(text, position)
        if begin >= len(text):
            position = begin
            break
        stop = text.find(delimiters.segment, begin)
        stop = len(text) if stop < 0 else stop
        parts = text[begin:stop].split(delimiters.element)
        segments.append(Segment(parts[0].strip(), tuple(parts[1:]), begin))
        position = stop + 1
        if segments[-1].tag == "IEA":
            break
    return segments, min(position, len(text))


def _isa_source(segments: list[Segment]) -> dict[str, Any]:
    isa = segments[0]
    return {"sender": isa.el(6), "interchange_control_number": isa.el(13)}


def _interchange(
    text: str, segments: list[Segment], delimiters: Delimiters
) -> Iterator[TransactionSet | Broken]:
    """Check the envelope, then yield its sets; a broken envelope raises before any set."""
    isa = segments[0]
    if segments[-1].tag != "IEA":
        raise _Syntax(reasons.X12_SYNTAX, f"interchange {isa.el(13)} has no IEA trailer")
    for segment in segments:
        if not _TAG.fullmatch(segment.tag):
            raise _Syntax(reasons.X12_SYNTAX, f"not a segment tag: {segment.tag[:20]!r}")
    out: list[TransactionSet | Broken] = []
    groups = 0
    index = 1
    while segments[index].tag == "GS":
        gs = segments[index]
        envelope = Envelope(
            sender=isa.el(6),
            receiver=isa.el(8),
            interchange_control_number=isa.el(13),
            group_control_number=gs.el(6),
            functional_id=gs.el(1),
            version=gs.el(8),
        )
        index += 1
        sets = 0
        while segments[index].tag == "ST":
            end = index
            while segments[end].tag not in {"SE", "GE", "IEA"}:
                end += 1
                if segments[end].tag in {"ST", "GS"}:
                    raise _Syntax(reasons.X12_SYNTAX, f"set {segments[index].el(2)} has no SE")
            if segments[end].tag != "SE":
                raise _Syntax(reasons.X12_SYNTAX, f"set {segments[index].el(2)} has no SE")
            out.append(_transaction_set(text, segments[index : end + 1], envelope, delimiters))
            sets += 1
            index = end + 1
        ge = segments[index]
        if ge.tag != "GE":
            raise _Syntax(
                reasons.X12_SYNTAX, f"expected ST or GE in group {gs.el(6)}, got {ge.tag}"
            )
        if ge.el(1) != str(sets) or ge.el(2) != gs.el(6):
            raise _Syntax(
                reasons.X12_CONTROL_MISMATCH,
                f"GE*{ge.el(1)}*{ge.el(2)} does not close group {gs.el(6)} of {sets} sets",
            )
        groups += 1
        index += 1
    iea = segments[index]
    if iea.tag != "IEA":
        raise _Syntax(reasons.X12_SYNTAX, f"expected GS or IEA, got {iea.tag}")
    if iea.el(1) != str(groups) or iea.el(2) != isa.el(13):
        raise _Syntax(
            reasons.X12_CONTROL_MISMATCH,
            f"IEA*{iea.el(1)}*{iea.el(2)} does not close interchange {isa.el(13)} "
            f"of {groups} groups",
        )
    yield from out


def _transaction_set(
    text: str, segments: list[Segment], envelope: Envelope, delimiters: Delimiters
) -> TransactionSet | Broken:
    st, se = segments[0], segments[-1]
    end = text.find(delimiters.segment, se.offset) + 1
    raw = text[st.offset : end].encode("latin-1")
    line = _line(text, st.offset)
    source = {**envelope.source(), "transaction_set_control_number": st.el(2), "line": line}
    if se.el(1) != str(len(segments)) or se.el(2) != st.el(2):
        return Broken(
            (
                Violation(
                    reasons.X12_CONTROL_MISMATCH,
                    f"SE*{se.el(1)}*{se.el(2)} does not close set {st.el(2)} "
                    f"of {len(segments)} segments",
                ),
            ),
            raw,
            line,
            source,
        )
    return TransactionSet(envelope, delimiters, tuple(segments), raw, line)
