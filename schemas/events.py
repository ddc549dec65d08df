"""Pydantic models that validate events at the edges (API, importers) before they reach Kafka.

The Avro schemas are the contract on the wire; these models add the rules Avro
cannot state (positive quantities, aware timestamps, non-empty orders) and give
HTTP clients errors that name the field.
"""

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_validator

# Accepted identifiers: retail numbers ("12347"), marketplace ids ("A3SGXH7AUHU8GW"),
# stock codes with spaces ("BANK CHARGES"). Control characters are never allowed.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=3)]
Text = Annotated[str, StringConstraints(max_length=1000)]

# Clocks drift; an event from further in the future than this is a client bug.
MAX_CLOCK_SKEW = timedelta(hours=24)


class EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(default_factory=uuid4, description="Idempotency key; send the same id again to retry safely.")
    occurred_at: AwareDatetime = Field(description="When it happened (ISO 8601 with a UTC offset).")
    received_at: AwareDatetime | None = Field(None, description="Set by the platform when it accepts the event.")
    customer_id: Identifier | None = None
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "api"

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value - datetime.now(timezone.utc) > MAX_CLOCK_SKEW:
            raise ValueError(f"occurred_at {value.isoformat()} is more than {MAX_CLOCK_SKEW} in the future")
        return value

    def to_record(self, received_at: datetime | None = None) -> dict[str, Any]:
        """Return the dict that the Avro codec writes, with received_at filled in."""
        record = self.model_dump()
        record["event_id"] = str(self.event_id)
        record["received_at"] = self.received_at or received_at or datetime.now(timezone.utc)
        return record


class CustomerRegistered(EventBase):
    event_type: Literal["customer.registered"] = "customer.registered"
    customer_id: Identifier
    country: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    traits: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Text] = Field(default_factory=dict, max_length=50)


class CustomerTraitsUpdated(EventBase):
    event_type: Literal["customer.traits_updated"] = "customer.traits_updated"
    customer_id: Identifier
    country: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    traits: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Text] = Field(default_factory=dict, max_length=50)


class ProductUpserted(EventBase):
    event_type: Literal["product.upserted"] = "product.upserted"
    customer_id: None = None
    product_id: Identifier
    description: Text | None = None
    unit_price: Money | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "GBP"
    is_service: bool = False


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    line_number: int = Field(ge=1)
    product_id: Identifier
    description: Text | None = None
    quantity: int = Field(gt=0, le=10_000_000)
    unit_price: Money


class _OrderEvent(EventBase):
    order_id: Identifier
    country: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "GBP"
    lines: list[OrderLine] = Field(min_length=1, max_length=10_000)

    @field_validator("lines")
    @classmethod
    def _unique_line_numbers(cls, lines: list[OrderLine]) -> list[OrderLine]:
        numbers = [line.line_number for line in lines]
        if len(set(numbers)) != len(numbers):
            raise ValueError("line_number values must be unique within an order")
        return lines


class OrderPlaced(_OrderEvent):
    event_type: Literal["order.placed"] = "order.placed"


class OrderCancelled(_OrderEvent):
    event_type: Literal["order.cancelled"] = "order.cancelled"
    cancelled_order_id: Identifier | None = None


# Longest text a customer may send in one review or message; longer texts are rejected, not cut.
MAX_TEXT_LENGTH = 20_000
CustomerText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH, strip_whitespace=True)]


class ReviewSubmitted(EventBase):
    event_type: Literal["review.submitted"] = "review.submitted"
    customer_id: Identifier
    review_id: Identifier
    product_id: Identifier
    rating: int | None = Field(None, ge=1, le=5)
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    text: CustomerText


class SupportMessageSent(EventBase):
    event_type: Literal["support.message_sent"] = "support.message_sent"
    customer_id: Identifier
    ticket_id: Identifier
    channel: Literal["email", "chat", "phone", "social", "form"]
    text: CustomerText


class SentimentScored(EventBase):
    """Derived event, produced by the sentiment agent only; the API does not accept it."""

    event_type: Literal["sentiment.scored"] = "sentiment.scored"
    customer_id: Identifier
    source_event_id: UUID
    source_event_type: str
    product_id: Identifier | None = None
    score: float = Field(ge=-1, le=1)
    label: Literal["negative", "neutral", "positive"]
    confidence: float = Field(ge=0, le=1)
    model_name: str
    model_version: str
    excerpt: str


class CustomerErased(EventBase):
    """Erasure of a customer's personal data, produced by ``DELETE /v1/customers/{id}`` only."""

    event_type: Literal["customer.erased"] = "customer.erased"
    customer_id: Identifier
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


Event = Annotated[
    Union[CustomerRegistered, CustomerTraitsUpdated, ProductUpserted, OrderPlaced, OrderCancelled,
          ReviewSubmitted, SupportMessageSent],
    Field(discriminator="event_type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
# The event_type tag of every member of the Event union.
EVENT_TYPES = frozenset(model.model_fields["event_type"].default for model in get_args(get_args(Event)[0]))

# Event types that carry text a customer wrote, scored by the sentiment agent.
TEXT_EVENT_TYPES = frozenset({"review.submitted", "support.message_sent"})
