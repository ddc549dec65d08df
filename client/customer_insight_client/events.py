"""Events a client can send to ``POST /v1/events``, as typed models or plain dicts.

Every event carries ``event_id``, its idempotency key: the projections apply an
event id once, however often it arrives. The models generate one (uuid4) when
they are built, and ``event_json`` adds one to a dict that has none. The
client can therefore send the same body again after a timeout or a 503, and
the event is still counted once. To retry a failed call yourself, send the same model
object or set ``event_id`` in the dict, because a new call with a dict that
has no ``event_id`` gets a new id.

The models check types only; the server checks the rest (positive
quantities, a timezone in ``occurred_at``, unique line numbers) and responds with
422 naming the field, raised as ``ValidationError``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python


class EventModel(BaseModel):
    """Envelope fields shared by every event. ``occurred_at`` needs a timezone (e.g. ``datetime.now(timezone.utc)``)."""

    model_config = ConfigDict(extra="allow")

    event_id: UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime
    customer_id: str | None = None
    source: str | None = None


class CustomerRegistered(EventModel):
    event_type: Literal["customer.registered"] = "customer.registered"
    customer_id: str
    country: str | None = None
    traits: dict[str, str] | None = None


class CustomerTraitsUpdated(EventModel):
    event_type: Literal["customer.traits_updated"] = "customer.traits_updated"
    customer_id: str
    country: str | None = None
    traits: dict[str, str] | None = None


class ProductUpserted(EventModel):
    event_type: Literal["product.upserted"] = "product.upserted"
    product_id: str
    description: str | None = None
    unit_price: Decimal | None = None
    currency: str | None = None
    is_service: bool | None = None


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    line_number: int
    product_id: str
    quantity: int
    unit_price: Decimal
    description: str | None = None


class OrderPlaced(EventModel):
    event_type: Literal["order.placed"] = "order.placed"
    order_id: str
    lines: list[OrderLine]
    country: str | None = None
    currency: str | None = None


class OrderCancelled(EventModel):
    event_type: Literal["order.cancelled"] = "order.cancelled"
    order_id: str
    lines: list[OrderLine]
    cancelled_order_id: str | None = None
    country: str | None = None
    currency: str | None = None


class ReviewSubmitted(EventModel):
    event_type: Literal["review.submitted"] = "review.submitted"
    customer_id: str
    review_id: str
    product_id: str
    text: str
    rating: int | None = None
    title: str | None = None


class SupportMessageSent(EventModel):
    event_type: Literal["support.message_sent"] = "support.message_sent"
    customer_id: str
    ticket_id: str
    channel: Literal["email", "chat", "phone", "social", "form"]
    text: str


Event = Union[CustomerRegistered, CustomerTraitsUpdated, ProductUpserted, OrderPlaced, OrderCancelled,
              ReviewSubmitted, SupportMessageSent]


def event_json(event: EventModel | Mapping[str, Any]) -> dict[str, Any]:
    """Return the JSON object to send for an event, with an ``event_id`` (uuid4) added when it has none.

    Unset optional fields are left out so that the server applies its defaults.
    A dict is copied, never changed; its datetimes, Decimals and UUIDs become JSON strings.
    """
    if isinstance(event, BaseModel):
        return event.model_dump(mode="json", exclude_none=True)
    if not isinstance(event, Mapping):
        raise TypeError(f"an event must be a dict or an event model, got {type(event).__name__}")
    body = to_jsonable_python(dict(event))
    if not body.get("event_id"):
        body["event_id"] = str(uuid.uuid4())
    return body
