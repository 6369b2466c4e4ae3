"""Reason codes of the source-system adapters (docs/adapters.md lists them).

A dead-lettered raw record carries one or more of the first group; an event an adapter
built that ``parse_event`` rejects carries the validation codes of docs/semantics.md
instead. A record that is understood but deliberately maps to no event is *ignored*
with one of the second group; it is counted, never dead-lettered.
"""

from __future__ import annotations

from typing import Final

from transforms import validation

UNDECODABLE: Final = validation.UNDECODABLE  # the contract's code: not JSON, not an object
# Dead letters: the record cannot be mapped as it is.
MISSING_FIELD: Final = "MISSING_FIELD"
INVALID_FIELD: Final = "INVALID_FIELD"
UNKNOWN_CODE: Final = "UNKNOWN_CODE"
FRACTIONAL_QUANTITY: Final = "FRACTIONAL_QUANTITY"
UNSUPPORTED_UNIT: Final = "UNSUPPORTED_UNIT"
DIRECTION_MISMATCH: Final = "DIRECTION_MISMATCH"
STOCK_TYPE_MISMATCH: Final = "STOCK_TYPE_MISMATCH"
UNBALANCED_DOCUMENT: Final = "UNBALANCED_DOCUMENT"
NOT_MAPPABLE: Final = "NOT_MAPPABLE"
X12_SYNTAX: Final = "X12_SYNTAX"
X12_CONTROL_MISMATCH: Final = "X12_CONTROL_MISMATCH"
UNSUPPORTED_TRANSACTION_SET: Final = "UNSUPPORTED_TRANSACTION_SET"
HL_STRUCTURE: Final = "HL_STRUCTURE"

DEAD_LETTER_CODES: Final = (
    UNDECODABLE,
    MISSING_FIELD,
    INVALID_FIELD,
    UNKNOWN_CODE,
    FRACTIONAL_QUANTITY,
    UNSUPPORTED_UNIT,
    DIRECTION_MISMATCH,
    STOCK_TYPE_MISMATCH,
    UNBALANCED_DOCUMENT,
    NOT_MAPPABLE,
    X12_SYNTAX,
    X12_CONTROL_MISMATCH,
    UNSUPPORTED_TRANSACTION_SET,
    HL_STRUCTURE,
)

# Ignored: understood, and deliberately no event.
NO_ATP_EFFECT: Final = "NO_ATP_EFFECT"
SPECIAL_STOCK: Final = "SPECIAL_STOCK"
SKIPPED_CODE: Final = "SKIPPED_CODE"

IGNORED_CODES: Final = (NO_ATP_EFFECT, SPECIAL_STOCK, SKIPPED_CODE)
