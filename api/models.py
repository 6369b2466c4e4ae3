"""Request and answer models: they validate requests and document answers in OpenAPI.

Answers are built as plain dicts and sent with orjson (the tests check them against these
models through the OpenAPI spec), which keeps pydantic off the answer path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from transforms.promise import DEFAULT_CONFIDENCE
from transforms.timeutil import format_iso, parse_iso

MAX_LOCATIONS = 100
MAX_LINES = 500

ID_MAX = 200
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
PromiseClass = Literal[
    "IMMEDIATE", "CONDITIONAL_ON_TRANSFER", "CONDITIONAL_ON_INBOUND", "BACKORDER"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _iso_time(value: str) -> str:
    try:
        format_iso(parse_iso(value))  # in UTC too, the time must fall in years 1 to 9999
    except (ValueError, OverflowError):
        raise ValueError(
            f"not an ISO-8601 time such as 2026-05-11T08:00:00Z (years 1 to 9999 UTC): {value!r}"
        ) from None
    return value


# No coercion: "5", 5.0 or true is not a quantity, and a number is not a time.
Quantity = Annotated[int, Strict(), Field(ge=1, le=1_000_000_000, description="units wanted")]
Confidence = Annotated[float, Strict(), Field(ge=0, le=1)]
Time = Annotated[
    str,
    AfterValidator(_iso_time),
    Field(json_schema_extra={"format": "date-time"}, examples=["2026-05-11T08:00:00Z"]),
]


class PromiseRequest(_Strict):
    """One line: can ``quantity`` units of ``item_id`` be promised, when and from where."""

    item_id: Id
    quantity: Quantity
    locations: list[Id] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LOCATIONS,
        json_schema_extra={"uniqueItems": True},
        description="candidate locations in order of preference (default: every location "
        "of the item, or the channel's)",
    )
    channel: Id | None = Field(
        default=None, description="sell through this channel of the policy: its share applies"
    )
    at: Time | None = Field(
        default=None, description="promise time t, ISO-8601 (default: now); no offset = UTC"
    )
    confidence: Confidence = Field(
        default=DEFAULT_CONFIDENCE, description="ASNs below this are not waited for"
    )


class PromiseBatchRequest(_Strict):
    """The lines of a cart or an order, answered from one read of the store."""

    lines: list[PromiseRequest] = Field(min_length=1, max_length=MAX_LINES)
    at: Time | None = Field(
        default=None, description="promise time of lines without their own (default: now)"
    )


class SupplyEntryModel(BaseModel):
    reference_id: str
    kind: Literal["TRANSFER", "ASN"]
    quantity: int
    expected_at: str | None
    confidence: float | None


class SnapshotModel(BaseModel):
    """A snapshot as the stream job and ``atp replay`` write it."""

    item_id: str
    location_id: str
    on_hand: int
    quarantined: int
    allocated: int
    reserved: int
    safety_stock: int
    in_transit: int
    inbound: int
    available: int
    version: int
    as_of: str | None
    revision: int
    duplicates: int
    last_event_id: str | None
    correlation_id: str | None
    supply: list[SupplyEntryModel]


class SnapshotAnswer(BaseModel):
    snapshot: SnapshotModel
    as_of: str | None = Field(description="event time of the snapshot")
    age_ms: int | None = Field(
        description="wall-clock now minus as_of (negative if the sources' clocks are ahead)"
    )


class Totals(BaseModel):
    on_hand: int
    quarantined: int
    allocated: int
    reserved: int
    safety_stock: int
    in_transit: int
    inbound: int
    available: int


class ItemAnswer(BaseModel):
    item_id: str
    locations: list[SnapshotAnswer]
    network: Totals = Field(description="sums over the item's locations")
    as_of: str | None = Field(description="the oldest as_of among the locations")
    age_ms: int | None


class SnapshotUsed(BaseModel):
    location_id: str
    version: int
    revision: int
    as_of: str | None


class PromiseAnswer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    item_id: str
    quantity: int
    promise_class: PromiseClass = Field(alias="class")
    date: str | None = Field(description="promise date; null for a backorder")
    location_id: str | None = Field(description="the location that promises; null for a backorder")
    available: int = Field(description="available at that location (capped by the channel)")
    channel: str | None
    channel_available: int | None = Field(description="the channel's ATP, when a channel is given")
    at: str
    confidence: float
    supply_used: list[str] = Field(description="supply references waited for, in order")
    snapshots: list[SnapshotUsed] = Field(description="the snapshots read, one per location")


class PromiseBatchAnswer(BaseModel):
    lines: list[PromiseAnswer]
    ship_complete_date: str | None = Field(
        description="the latest line date; null if any line is a backorder"
    )


class FieldError(BaseModel):
    loc: str = Field(description="where, e.g. body.lines[2].quantity")
    message: str
    type: str


class ErrorAnswer(BaseModel):
    detail: str
    correlation_id: str


class ValidationErrorAnswer(BaseModel):
    detail: str
    errors: list[FieldError]
    correlation_id: str


class Status(BaseModel):
    status: str
    detail: str | None = None
