"""The API's operations as transport-free request descriptions, shared by the sync and async clients.

Each function returns a ``Call``: the method, path, query and JSON body of one
request and the function that turns the decoded response body into models.
The clients only send calls and check statuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from customer_insight_client import models
from customer_insight_client.events import EventModel, event_json

T = TypeVar("T")

RecommendationKind = Literal["all", "buy_again", "discover"]
Granularity = Literal["day", "month"]
RankBy = Literal["revenue", "units"]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its response.

    ``result_statuses`` are error statuses whose body is still a result (``/readyz`` returns 503 with
    its checks); they are neither retried nor raised.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, str] | None = None
    json: Any = None
    result_statuses: frozenset[int] = field(default_factory=frozenset)


def _segment(value: str) -> str:
    """Quote an id for one path segment: "BANK CHARGES" -> "BANK%20CHARGES", "a/b" -> "a%2Fb"."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _query(**values: Any) -> dict[str, str]:
    """Build query parameters, leaving out ``None``; booleans become "true"/"false", dates ISO 8601."""
    params = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, (date, Decimal, int, float, str)):
            params[name] = value.isoformat() if isinstance(value, date) else str(value)
        else:
            raise TypeError(f"query parameter {name} must be a str, number, bool or date, got {type(value).__name__}")
    return params


def _model(model: type[BaseModel]) -> Callable[[Any], Any]:
    return model.model_validate


def _list_of(model: type[BaseModel]) -> Callable[[Any], Any]:
    return TypeAdapter(list[model]).validate_python


# Customers


def get_customer(customer_id: str) -> Call[models.Customer]:
    return Call("GET", f"/v1/customers/{_segment(customer_id)}", _model(models.Customer))


def list_customers(*, country: str | None = None, min_orders: int | None = None,
                   min_net_revenue: Decimal | float | str | None = None, after: str | None = None,
                   limit: int | None = None) -> Call[models.CustomerPage]:
    params = _query(country=country, min_orders=min_orders, min_net_revenue=min_net_revenue, after=after, limit=limit)
    return Call("GET", "/v1/customers", _model(models.CustomerPage), params=params)


def get_customer_sentiment(customer_id: str, *, recent: int | None = None) -> Call[models.CustomerSentiment]:
    return Call("GET", f"/v1/customers/{_segment(customer_id)}/sentiment", _model(models.CustomerSentiment),
                params=_query(recent=recent))


def get_recommendations(customer_id: str, *, limit: int = 10,
                        kind: RecommendationKind = "all") -> Call[models.Recommendations]:
    return Call("GET", f"/v1/customers/{_segment(customer_id)}/recommendations", _model(models.Recommendations),
                params=_query(limit=limit, kind=kind))


def erase_customer(customer_id: str) -> Call[models.ErasureAccepted]:
    return Call("DELETE", f"/v1/customers/{_segment(customer_id)}", _model(models.ErasureAccepted))


# Products


def get_product(product_id: str) -> Call[models.Product]:
    return Call("GET", f"/v1/products/{_segment(product_id)}", _model(models.Product))


def get_similar_products(product_id: str, *, limit: int | None = None) -> Call[models.SimilarProducts]:
    return Call("GET", f"/v1/products/{_segment(product_id)}/similar", _model(models.SimilarProducts),
                params=_query(limit=limit))


def get_product_sentiment(product_id: str, *, days: int | None = None) -> Call[models.ProductSentiment]:
    return Call("GET", f"/v1/products/{_segment(product_id)}/sentiment", _model(models.ProductSentiment),
                params=_query(days=days))


# Analytics


def get_revenue(*, start: date | str | None = None, end: date | str | None = None, country: str | None = None,
                granularity: Granularity = "day") -> Call[list[models.RevenuePoint]]:
    params = _query(start=start, end=end, country=country, granularity=granularity)
    return Call("GET", "/v1/analytics/revenue", _list_of(models.RevenuePoint), params=params)


def get_top_products(*, start: date | str | None = None, end: date | str | None = None, country: str | None = None,
                     by: RankBy = "revenue", limit: int = 10,
                     include_services: bool = False) -> Call[list[models.TopProduct]]:
    params = _query(start=start, end=end, country=country, by=by, limit=limit, include_services=include_services)
    return Call("GET", "/v1/analytics/top-products", _list_of(models.TopProduct), params=params)


def get_summary() -> Call[models.Summary]:
    return Call("GET", "/v1/analytics/summary", _model(models.Summary))


# Sentiment scoring


def analyze_sentiment(texts: str | Iterable[str]) -> Call[models.SentimentAnalysis]:
    text_list = [texts] if isinstance(texts, str) else list(texts)
    if not all(isinstance(text, str) for text in text_list):
        raise TypeError("texts must be a string or an iterable of strings")
    return Call("POST", "/v1/sentiment:analyze", _model(models.SentimentAnalysis), json={"texts": text_list})


# Events


def send_event(event: EventModel | Mapping[str, Any]) -> Call[models.Accepted]:
    return Call("POST", "/v1/events", _model(models.Accepted), json=event_json(event))


def send_events(events: Iterable[EventModel | Mapping[str, Any]]) -> Call[models.Accepted]:
    return Call("POST", "/v1/events:batch", _model(models.Accepted), json={"events": [event_json(e) for e in events]})


# Health


def health() -> Call[models.Health]:
    return Call("GET", "/healthz", _model(models.Health))


def readiness() -> Call[models.Readiness]:
    return Call("GET", "/readyz", _model(models.Readiness), result_statuses=frozenset({503}))
