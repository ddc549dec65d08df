"""Response models of the API.

Fields that a newer server adds are kept (``extra="allow"``) and readable as
attributes, so an old client keeps working against a new server. Money is
``Decimal``, as the API sends it (as a string with 3 decimals).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

Label = Literal["negative", "neutral", "positive"]


class APIModel(BaseModel):
    """Base of every response model: unknown fields are kept as attributes."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _NamedProduct(APIModel):
    """A product whose ``name`` falls back to its catalogue description when the server sends no name."""

    @model_validator(mode="before")
    @classmethod
    def _name_from_description(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None and data.get("description") is not None:
            return {**data, "name": data["description"]}
        return data


class _ItemList(APIModel):
    """A list response that also accepts a bare JSON list as its ``items``."""

    @model_validator(mode="before")
    @classmethod
    def _items_from_list(cls, data: Any) -> Any:
        return {"items": data} if isinstance(data, list) else data


# Customers


class Customer(APIModel):
    """A customer's profile: orders, units and revenue from the order events."""

    customer_id: str
    name: str | None = None  # personal field, null for erased customers and for customers who never gave one
    country: str | None = None
    registered_at: datetime | None = None
    traits: dict[str, str] | None = None
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    order_count: int = 0
    cancellation_count: int = 0
    units_purchased: int = 0
    units_cancelled: int = 0
    gross_revenue: Decimal = Decimal(0)
    cancelled_revenue: Decimal = Decimal(0)
    net_revenue: Decimal = Decimal(0)
    average_order_value: Decimal | None = None
    distinct_products: int = 0
    last_event_at: datetime | None = None
    erased: bool = False


class CustomerPage(APIModel):
    """One page of customers; pass ``next_cursor`` as ``after`` to get the next page."""

    items: list[Customer]
    next_cursor: str | None = None


# Products


class ProductSales(APIModel):
    units_sold: int
    units_cancelled: int
    net_revenue: Decimal
    first_sold_on: date | None = None
    last_sold_on: date | None = None


class Product(_NamedProduct):
    """A catalogue entry with its sales totals. ``name`` is the catalogue description unless the server sends a name."""

    product_id: str
    name: str | None = None
    description: str | None = None
    unit_price: Decimal | None = None
    currency: str | None = None
    is_service: bool = False
    updated_at: datetime | None = None
    sales: ProductSales | None = None


# Analytics


class RevenuePoint(APIModel):
    """Revenue and units of one day or month (``period`` is its first day)."""

    period: date
    gross_revenue: Decimal
    cancelled_revenue: Decimal
    net_revenue: Decimal
    units_sold: int
    units_cancelled: int


class TopProduct(_NamedProduct):
    """A product in a top-N ranking by net revenue or units."""

    product_id: str
    name: str | None = None
    description: str | None = None
    net_revenue: Decimal
    units_sold: int
    units_cancelled: int


class Summary(APIModel):
    """Pipeline totals: distinct events per type, and the customers, products, orders and revenue of the projections."""

    events: dict[str, int]  # event type -> distinct events
    customers: int
    products: int
    orders: int
    cancellations: int
    net_revenue: Decimal
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None


# Sentiment


class ModelInfo(APIModel):
    """The sentiment model that produced a score."""

    name: str
    version: str


class ScoredText(APIModel):
    source_event_id: str
    source_event_type: str
    product_id: str | None = None
    occurred_at: datetime
    score: float  # in [-1, 1]
    label: Label
    confidence: float
    excerpt: str


class Trend(APIModel):
    """Mean score of the last ``window_days`` days of event time against the window before."""

    window_days: int
    window_end: datetime
    mean_last_window: float | None = None
    mean_previous_window: float | None = None
    change: float | None = None


class CustomerSentiment(APIModel):
    """A customer's time-decayed mean sentiment, its trend and the most recent scored texts.

    ``score`` and ``label`` are ``None`` for a customer with no scored text.
    """

    customer_id: str
    model: ModelInfo
    score: float | None = None
    label: Label | None = None
    half_life_days: float
    scored_count: int = 0
    negative_count: int = 0
    last_negative_at: datetime | None = None
    trend: Trend | None = None
    recent: list[ScoredText] = Field(default_factory=list)


class LabelCounts(APIModel):
    negative: int
    neutral: int
    positive: int


class DailySentiment(APIModel):
    day: date
    texts: int
    mean_score: float
    labels: LabelCounts


class ProductSentiment(APIModel):
    """Mean sentiment and label counts of the texts about a product, overall and per day."""

    product_id: str
    model: ModelInfo
    texts: int
    mean_score: float | None = None
    labels: LabelCounts
    daily: list[DailySentiment] = Field(default_factory=list)


class SentimentResult(APIModel):
    """The score of one analyzed text: ``score`` in [-1, 1], its label and the model's confidence."""

    score: float
    label: Label
    confidence: float


class SentimentAnalysis(APIModel):
    """Scores of the analyzed texts, in the order they were sent."""

    model: ModelInfo
    results: list[SentimentResult]


# Recommendations


class Recommendation(_NamedProduct):
    """A recommended or similar product with its score and the reason it was chosen."""

    product_id: str
    name: str | None = None
    score: float | None = None
    reason: str | None = None


class Recommendations(_ItemList):
    """Products recommended to a customer. ``cold_start`` is true when the customer had no history to rank by."""

    customer_id: str | None = None
    kind: str | None = None
    cold_start: bool = False
    items: list[Recommendation]


class SimilarProducts(_ItemList):
    """Products similar to ``product_id``, most similar first."""

    product_id: str | None = None
    items: list[Recommendation]


# Events and erasure


class Accepted(APIModel):
    """The ids of events that Kafka acknowledged; the projections apply them shortly after."""

    event_ids: list[UUID]


class ErasureAccepted(APIModel):
    """An accepted erasure request: the id of the erasure event that the projections will apply."""

    event_id: UUID | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_event_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event_id") is None and data.get("event_ids"):
            return {**data, "event_id": data["event_ids"][0]}
        return data


# Health


class Health(APIModel):
    """Liveness of the API process."""

    status: str


class Readiness(APIModel):
    """Readiness of the stores behind the API; ``ready`` is true when every check is ``"ok"``."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status == "ready"
