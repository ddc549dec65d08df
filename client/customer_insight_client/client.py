"""The synchronous client, on ``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from customer_insight_client import endpoints, models
from customer_insight_client._base import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, ClientBase
from customer_insight_client.endpoints import Call, Granularity, RankBy, RecommendationKind
from customer_insight_client.events import EventModel
from customer_insight_client.retry import RetryPolicy

T = TypeVar("T")


class CustomerInsightAPI(ClientBase):
    """Client of the Customer Insight API.

    >>> with CustomerInsightAPI(os.environ["CIE_API_KEY"]) as api:  # doctest: +SKIP
    ...     api.get_customer("12347").net_revenue

    Args:
        api_key: sent as ``Authorization: Bearer <api_key>``.
        base_url: the API's address.
        timeout: seconds for connecting and for each read, or an ``httpx.Timeout``.
        max_retries: retries after the first try on 429, 502, 503, 504, connection errors and timeouts,
            with exponential backoff and jitter, or after the server's ``Retry-After``.
        retry_policy: replaces the default policy built from ``max_retries``.
        headers: extra headers for every request.

    Errors raise subclasses of ``CustomerInsightError`` (see ``customer_insight_client.errors``).
    """

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
                 max_retries: int = 3, *, retry_policy: RetryPolicy | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(api_key, base_url, timeout, max_retries, retry_policy, headers)
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout, headers=self.headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CustomerInsightAPI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        """Send ``call``, retrying as the retry policy allows, and parse the final response."""
        retry = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, params=call.params, json=call.json)
            except httpx.TransportError as error:
                time.sleep(self._delay_after_error(call, retry, error))
                retry += 1
                continue
            delay = self._delay_after_response(call, retry, response)
            if delay is None:
                return self._result(call, response)
            time.sleep(delay)
            retry += 1

    # Customers

    def get_customer(self, customer_id: str) -> models.Customer:
        """Return a customer's profile; raise ``NotFoundError`` for an unknown id."""
        return self._send(endpoints.get_customer(customer_id))

    def list_customers(self, *, country: str | None = None, min_orders: int | None = None,
                       min_net_revenue: Decimal | float | str | None = None, after: str | None = None,
                       limit: int | None = None) -> models.CustomerPage:
        """Return one page of customers ordered by id; pass the page's ``next_cursor`` as ``after`` for the next."""
        return self._send(endpoints.list_customers(country=country, min_orders=min_orders,
                                                   min_net_revenue=min_net_revenue, after=after, limit=limit))

    def iter_customers(self, *, country: str | None = None, min_orders: int | None = None,
                       min_net_revenue: Decimal | float | str | None = None,
                       page_size: int = 500) -> Iterator[models.Customer]:
        """Yield every customer that matches the filters, fetching pages of ``page_size`` as needed."""
        after = None
        while True:
            page = self.list_customers(country=country, min_orders=min_orders, min_net_revenue=min_net_revenue,
                                       after=after, limit=page_size)
            yield from page.items
            if page.next_cursor is None:
                return
            after = page.next_cursor

    def get_customer_sentiment(self, customer_id: str, *, recent: int | None = None) -> models.CustomerSentiment:
        """Return a customer's time-decayed sentiment, its trend and up to ``recent`` scored texts."""
        return self._send(endpoints.get_customer_sentiment(customer_id, recent=recent))

    def get_recommendations(self, customer_id: str, limit: int = 10,
                            kind: RecommendationKind = "all") -> models.Recommendations:
        """Return up to ``limit`` products for a customer: ``buy_again``, ``discover`` or ``all``."""
        return self._send(endpoints.get_recommendations(customer_id, limit=limit, kind=kind))

    def erase_customer(self, customer_id: str) -> models.ErasureAccepted:
        """Request erasure of a customer's personal data; the projections apply it after the call returns."""
        return self._send(endpoints.erase_customer(customer_id))

    # Products

    def get_product(self, product_id: str) -> models.Product:
        """Return a catalogue entry with its sales totals; raise ``NotFoundError`` for an unknown id."""
        return self._send(endpoints.get_product(product_id))

    def get_similar_products(self, product_id: str, limit: int | None = None) -> models.SimilarProducts:
        """Return the products most similar to ``product_id``."""
        return self._send(endpoints.get_similar_products(product_id, limit=limit))

    def get_product_sentiment(self, product_id: str, *, days: int | None = None) -> models.ProductSentiment:
        """Return the sentiment of texts about a product, overall and for the latest ``days`` days."""
        return self._send(endpoints.get_product_sentiment(product_id, days=days))

    # Analytics

    def get_revenue(self, *, start: date | str | None = None, end: date | str | None = None,
                    country: str | None = None, granularity: Granularity = "day") -> list[models.RevenuePoint]:
        """Return revenue and units per day or month between ``start`` and ``end`` (inclusive, UTC)."""
        return self._send(endpoints.get_revenue(start=start, end=end, country=country, granularity=granularity))

    def get_top_products(self, *, start: date | str | None = None, end: date | str | None = None,
                         country: str | None = None, by: RankBy = "revenue", limit: int = 10,
                         include_services: bool = False) -> list[models.TopProduct]:
        """Return the top ``limit`` products by net revenue or units; postage and fees need ``include_services``."""
        return self._send(endpoints.get_top_products(start=start, end=end, country=country, by=by, limit=limit,
                                                     include_services=include_services))

    def get_summary(self) -> models.Summary:
        """Return the event counts per type and the projection totals."""
        return self._send(endpoints.get_summary())

    # Sentiment scoring

    def analyze_sentiment(self, texts: str | Iterable[str]) -> models.SentimentAnalysis:
        """Score one text or up to 100 texts without storing them; results are in the order of ``texts``."""
        return self._send(endpoints.analyze_sentiment(texts))

    # Events

    def send_event(self, event: EventModel | Mapping[str, Any]) -> models.Accepted:
        """Send one event; an ``event_id`` is added when missing so that retries are deduplicated."""
        return self._send(endpoints.send_event(event))

    def send_events(self, events: Iterable[EventModel | Mapping[str, Any]]) -> models.Accepted:
        """Send 1 to 500 events in one request; Kafka has acknowledged all of them when it returns."""
        return self._send(endpoints.send_events(events))

    # Health

    def health(self) -> models.Health:
        """Return the liveness status; raise ``TransportError`` when the API does not respond."""
        return self._send(endpoints.health())

    def readiness(self) -> models.Readiness:
        """Return whether the API reaches PostgreSQL, ClickHouse and Kafka (``.ready``), with each check."""
        return self._send(endpoints.readiness())
