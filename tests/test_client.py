"""The Python client (client/) against the live API on the projected retail sample, and its retries against a
scripted loopback server.

The live tests compare the client's models with the API's JSON and with
tests/retail_truth.py. Tests that post events change the totals, so they come
after the read tests (pytest runs a module's tests in file order).
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest

from customer_insight_client import (
    AsyncCustomerInsightAPI,
    CustomerInsightAPI,
    CustomerRegistered,
    ForbiddenError,
    NotFoundError,
    OrderLine,
    OrderPlaced,
    RateLimitedError,
    RetryPolicy,
    ReviewSubmitted,
    ServerError,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    ValidationError,
)
from customer_insight_client import models
from customer_insight_client.retry import parse_retry_after
from tests.conftest import REPO, RETAIL_SAMPLE, wait_until
from tests.retail_truth import compute
from tests.scripted_server import Scripted, ScriptedServer
from tests.test_api import KNOWN_PRODUCT, api  # noqa: F401  (the uvicorn fixture on the retail namespace)

TRUTH = compute(RETAIL_SAMPLE)
QUICKSTART = REPO / "client" / "examples" / "quickstart.py"
FAST_RETRIES = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05)
HEALTH_OK = {"status": "ok"}


@pytest.fixture(scope="module")
def api_key(retail_pipeline) -> str:
    """An admin key of the test namespace, or a placeholder while the API checks no keys."""
    return retail_pipeline.api_key("admin")


@pytest.fixture(scope="module")
def base_url(api) -> str:  # noqa: F811
    return str(api.base_url).rstrip("/")


@pytest.fixture(scope="module")
def client(base_url, api_key):
    with CustomerInsightAPI(api_key, base_url=base_url, timeout=60.0) as instance:
        yield instance


@pytest.fixture(scope="module")
def raw(base_url, api_key):
    """Plain httpx with the same key, to compare the client's models with the API's JSON."""
    with httpx.Client(base_url=base_url, timeout=60.0, headers={"Authorization": f"Bearer {api_key}"}) as http:
        yield http


@pytest.fixture(scope="module")
def routes(raw) -> set[tuple[str, str]]:
    """The (method, path) pairs that the live API serves."""
    paths = raw.get("/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def require_route(routes: set[tuple[str, str]], method: str, path: str) -> None:
    if (method, path) not in routes:
        pytest.skip(f"the API has no route {method} {path} yet")


def assert_matches_json(model, body) -> None:
    """Check that every field of the API's JSON object is in the model with the same JSON value."""
    dumped = model.model_dump(mode="json")
    assert {key: dumped.get(key) for key in body} == body


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Retries, against the scripted server


def test_retry_after_seconds_honoured():
    script = [Scripted(429, {"title": "Too Many Requests", "status": 429}, {"Retry-After": "1"}),
              Scripted(200, HEALTH_OK)]
    with ScriptedServer(script) as server, CustomerInsightAPI("key", base_url=server.base_url) as client:
        health = client.health()

    assert health.status == "ok"
    assert len(server.requests) == 2
    assert server.requests[1].at - server.requests[0].at >= 0.95


def test_retry_after_http_date_honoured():
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)
    script = [Scripted(503, {"title": "Kafka unavailable", "status": 503}, {"Retry-After": when}),
              Scripted(200, HEALTH_OK)]
    with ScriptedServer(script) as server, CustomerInsightAPI("key", base_url=server.base_url) as client:
        client.health()

    assert len(server.requests) == 2
    # The HTTP date has whole seconds, so the wait is between 1 and 2 s.
    assert server.requests[1].at - server.requests[0].at >= 0.9


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_status_then_success(status):
    script = [Scripted(status, {"status": status}), Scripted(status, {"status": status}), Scripted(200, HEALTH_OK)]
    with ScriptedServer(script) as server, \
            CustomerInsightAPI("key", base_url=server.base_url, retry_policy=FAST_RETRIES) as client:
        health = client.health()

    assert health.status == "ok"
    assert len(server.requests) == 3


def test_retries_bounded_by_max_retries():
    problem = {"type": "urn:cie:problem:kafka-unavailable", "title": "Kafka unavailable", "status": 503,
               "detail": "events were not acknowledged by Kafka"}
    script = [Scripted(503, problem)] * 3
    policy = RetryPolicy(max_retries=2, backoff_base=0.01)
    with ScriptedServer(script) as server, \
            CustomerInsightAPI("key", base_url=server.base_url, retry_policy=policy) as client:
        with pytest.raises(ServerError) as caught:
            client.get_summary()

    assert len(server.requests) == 3
    assert caught.value.status == 503
    assert caught.value.type == "urn:cie:problem:kafka-unavailable"
    assert caught.value.detail == "events were not acknowledged by Kafka"


def test_rate_limited_error_after_retries():
    script = [Scripted(429, {"title": "Too Many Requests", "status": 429}, {"Retry-After": "0"})] * 2
    with ScriptedServer(script) as server, CustomerInsightAPI("key", base_url=server.base_url, max_retries=1) as client:
        with pytest.raises(RateLimitedError) as caught:
            client.get_summary()

    assert len(server.requests) == 2
    assert caught.value.retry_after == 0
    assert caught.value.status == 429


def test_long_retry_after_raised_at_once():
    script = [Scripted(429, {"title": "Too Many Requests", "status": 429}, {"Retry-After": "3600"})]
    with ScriptedServer(script) as server, CustomerInsightAPI("key", base_url=server.base_url) as client:
        with pytest.raises(RateLimitedError) as caught:
            client.get_summary()

    assert len(server.requests) == 1
    assert caught.value.retry_after == 3600
    assert "3600" in str(caught.value)


def test_server_error_500_not_retried():
    script = [Scripted(500, {"title": "Internal Server Error", "status": 500})]
    with ScriptedServer(script) as server, CustomerInsightAPI("key", base_url=server.base_url) as client:
        with pytest.raises(ServerError):
            client.get_summary()

    assert len(server.requests) == 1


def test_event_retry_keeps_event_id():
    accepted = {"event_ids": ["00000000-0000-4000-8000-000000000001"]}
    script = [Scripted(503, {"status": 503}, {"Retry-After": "0"}), Scripted(202, accepted)]
    event = {"event_type": "customer.registered", "customer_id": "c1", "occurred_at": "2024-03-01T09:00:00Z"}
    with ScriptedServer(script) as server, CustomerInsightAPI("key", base_url=server.base_url) as client:
        client.send_event(event)

    first, second = (json.loads(request.body) for request in server.requests)
    assert uuid.UUID(first["event_id"]).version == 4
    assert second == first
    assert "event_id" not in event


def test_read_timeout_retried_then_raised():
    script = [Scripted(200, HEALTH_OK, delay=1.0)] * 2
    policy = RetryPolicy(max_retries=1, backoff_base=0.01)
    with ScriptedServer(script) as server, \
            CustomerInsightAPI("key", base_url=server.base_url, timeout=0.2, retry_policy=policy) as client:
        with pytest.raises(TransportError) as caught:
            client.health()

    assert len(server.requests) == 2
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_connection_refused_is_transport_error():
    base_url = f"http://127.0.0.1:{_closed_port()}"
    with CustomerInsightAPI("key", base_url=base_url, retry_policy=FAST_RETRIES) as client:
        with pytest.raises(TransportError) as caught:
            client.health()

    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert base_url in str(caught.value)


def test_async_client_retries():
    script = [Scripted(429, {"status": 429}, {"Retry-After": "0"}), Scripted(200, HEALTH_OK)]

    async def call(base_url: str) -> models.Health:
        async with AsyncCustomerInsightAPI("key", base_url=base_url) as client:
            return await client.health()

    with ScriptedServer(script) as server:
        health = asyncio.run(call(server.base_url))

    assert health.status == "ok"
    assert len(server.requests) == 2


def test_bearer_key_sent():
    with ScriptedServer([Scripted(200, HEALTH_OK)]) as server, \
            CustomerInsightAPI("secret-key", base_url=server.base_url) as client:
        client.health()

    assert server.requests[0].headers["Authorization"] == "Bearer secret-key"
    assert "secret-key" not in repr(client)


def test_unknown_fields_kept():
    body = {"customer_id": "c1", "country": "Iceland", "order_count": 2, "net_revenue": "10.500",
            "loyalty_tier": "gold"}
    with ScriptedServer([Scripted(200, body)]) as server, CustomerInsightAPI("key", base_url=server.base_url) as client:
        customer = client.get_customer("c1")

    assert customer.loyalty_tier == "gold"
    assert customer.net_revenue == Decimal("10.500")
    assert server.requests[0].path == "/v1/customers/c1"


def test_unreadable_body_unexpected_response():
    with ScriptedServer([Scripted(200, {"country": "Iceland"})]) as server, \
            CustomerInsightAPI("key", base_url=server.base_url) as client:
        with pytest.raises(UnexpectedResponseError) as caught:
            client.get_customer("c1")

    assert caught.value.status == 200
    assert "customer_id" in str(caught.value)


def test_forbidden_names_scope():
    problem = {"type": "urn:cie:problem:forbidden", "title": "Forbidden", "status": 403,
               "detail": "the key lacks the scope events:write", "required_scope": "events:write"}
    with ScriptedServer([Scripted(403, problem)]) as server, \
            CustomerInsightAPI("key", base_url=server.base_url) as client:
        with pytest.raises(ForbiddenError) as caught:
            client.send_event({"event_type": "customer.registered", "customer_id": "c1",
                               "occurred_at": "2024-03-01T09:00:00Z"})

    assert caught.value.required_scope == "events:write"
    assert "events:write" in str(caught.value)
    assert len(server.requests) == 1


def test_id_quoted_in_path():
    with ScriptedServer([Scripted(200, {"product_id": "A/B C", "description": "MUG"})]) as server, \
            CustomerInsightAPI("key", base_url=server.base_url) as client:
        product = client.get_product("A/B C")

    assert server.requests[0].path == "/v1/products/A%2FB%20C"
    assert product.name == "MUG"


def test_parse_retry_after():
    now = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)

    assert parse_retry_after("7", now) == 7
    assert parse_retry_after("Fri, 01 Mar 2024 12:00:30 GMT", now) == 30
    assert parse_retry_after("Fri, 01 Mar 2024 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_empty_key_rejected():
    with pytest.raises(ValueError, match="api_key"):
        CustomerInsightAPI("")


# Reads, against the live API


def test_get_customer_matches_truth(client):
    customer = client.get_customer("12347")
    truth = TRUTH.customers["12347"]

    assert isinstance(customer, models.Customer)
    assert customer.customer_id == "12347"
    assert customer.order_count == len(truth.orders)
    assert customer.net_revenue == truth.gross_revenue - truth.cancelled_revenue
    assert isinstance(customer.net_revenue, Decimal)
    assert customer.distinct_products == len(truth.products)
    assert customer.first_order_at == truth.first_order_at
    assert customer.last_order_at == truth.last_order_at
    assert customer.erased is False


def test_get_customer_matches_json(client, raw):
    assert_matches_json(client.get_customer("12347"), raw.get("/v1/customers/12347").json())


def test_list_customers_page(client, raw):
    page = client.list_customers(limit=5)
    body = raw.get("/v1/customers", params={"limit": 5}).json()

    assert isinstance(page, models.CustomerPage)
    assert [customer.customer_id for customer in page.items] == [item["customer_id"] for item in body["items"]]
    assert page.next_cursor == body["next_cursor"]


def test_iter_customers_covers_all(client):
    ids = [customer.customer_id for customer in client.iter_customers(page_size=7)]

    assert len(ids) == len(set(ids))
    assert set(ids) == set(TRUTH.customers)
    assert ids == sorted(ids)


def test_list_customers_filters(client):
    french = list(client.iter_customers(country="France"))
    big = client.list_customers(min_orders=3, min_net_revenue=Decimal("1000"), limit=500).items

    assert french
    assert {customer.country for customer in french} == {"France"}
    assert big
    assert all(customer.order_count >= 3 and customer.net_revenue >= 1000 for customer in big)


def test_get_product_known(client, raw):
    product_id, description = KNOWN_PRODUCT
    product = client.get_product(product_id)

    assert isinstance(product, models.Product)
    assert product.name == description
    assert product.sales.units_sold == TRUTH.units_sold_by_product[product_id]
    assert_matches_json(product, raw.get(f"/v1/products/{product_id}").json())


def test_get_revenue_monthly(client, raw):
    points = client.get_revenue(granularity="month")

    assert all(isinstance(point, models.RevenuePoint) for point in points)
    assert all(point.period.day == 1 for point in points)
    assert sum(point.net_revenue for point in points) == sum(TRUTH.net_revenue_by_country.values())
    assert [point.model_dump(mode="json") for point in points] == \
        raw.get("/v1/analytics/revenue", params={"granularity": "month"}).json()


def test_get_revenue_date_filters(client):
    points = client.get_revenue(start=date(2011, 1, 1), end="2011-01-31", country="United Kingdom")

    assert points
    assert all(date(2011, 1, 1) <= point.period <= date(2011, 1, 31) for point in points)


def test_get_top_products(client, raw):
    products = client.get_top_products(limit=5, by="units", include_services=True)
    body = raw.get("/v1/analytics/top-products",
                   params={"limit": 5, "by": "units", "include_services": "true"}).json()

    assert len(products) == len(body) == 5
    for product, item in zip(products, body):
        assert_matches_json(product, item)
        assert product.name == item["description"]


def test_get_summary(client, raw):
    summary = client.get_summary()

    assert isinstance(summary, models.Summary)
    assert summary.customers == len(TRUTH.customers)
    assert_matches_json(summary, raw.get("/v1/analytics/summary").json())


def test_customer_sentiment_without_texts(client, raw):
    sentiment = client.get_customer_sentiment("12347", recent=3)

    assert isinstance(sentiment, models.CustomerSentiment)
    assert sentiment.customer_id == "12347"
    assert sentiment.model.name
    assert_matches_json(sentiment, raw.get("/v1/customers/12347/sentiment", params={"recent": 3}).json())


def test_product_sentiment_without_texts(client):
    sentiment = client.get_product_sentiment(KNOWN_PRODUCT[0], days=7)

    assert isinstance(sentiment, models.ProductSentiment)
    assert sentiment.texts == 0
    assert sentiment.mean_score is None


def test_analyze_sentiment_list(client, raw):
    texts = ["Arrived quickly and works perfectly, I love it.", "Broken on arrival, a waste of money."]
    analysis = client.analyze_sentiment(texts)

    assert isinstance(analysis, models.SentimentAnalysis)
    assert [result.label for result in analysis.results] == ["positive", "negative"]
    assert analysis.results[0].score > 0 > analysis.results[1].score
    assert analysis.model_dump(mode="json") == raw.post("/v1/sentiment:analyze", json={"texts": texts}).json()


def test_analyze_sentiment_single_text(client):
    analysis = client.analyze_sentiment("Terrible, it broke after one day.")

    assert len(analysis.results) == 1
    assert analysis.results[0].label == "negative"


def test_health_and_readiness(client):
    readiness = client.readiness()

    assert client.health().status == "ok"
    assert readiness.ready
    assert readiness.checks == {"postgres": "ok", "clickhouse": "ok", "kafka": "ok", "redis": "ok"}


# Recommendations and similar products, skipped while the API has no such routes


def test_get_recommendations(client, raw, routes):
    require_route(routes, "GET", "/v1/customers/{customer_id}/recommendations")
    recommendations = client.get_recommendations("12347", limit=5, kind="all")
    body = raw.get("/v1/customers/12347/recommendations", params={"limit": 5, "kind": "all"}).json()

    assert isinstance(recommendations, models.Recommendations)
    assert 0 < len(recommendations.items) <= 5
    assert all(item.product_id and item.score is not None for item in recommendations.items)
    assert [item.product_id for item in recommendations.items] == \
        [item["product_id"] for item in (body["items"] if isinstance(body, dict) else body)]


def test_get_recommendations_kinds(client, routes):
    require_route(routes, "GET", "/v1/customers/{customer_id}/recommendations")
    buy_again = client.get_recommendations("12347", kind="buy_again", limit=10)
    purchased = TRUTH.customers["12347"].products

    assert buy_again.items
    assert {item.product_id for item in buy_again.items} <= purchased


def test_get_similar_products(client, routes):
    require_route(routes, "GET", "/v1/products/{product_id}/similar")
    similar = client.get_similar_products(KNOWN_PRODUCT[0], limit=5)

    assert isinstance(similar, models.SimilarProducts)
    assert 0 < len(similar.items) <= 5
    assert KNOWN_PRODUCT[0] not in {item.product_id for item in similar.items}


# Error mapping, against the live API


def test_unknown_customer_not_found(client):
    with pytest.raises(NotFoundError) as caught:
        client.get_customer("no-such-customer")
    error = caught.value

    assert error.status == 404
    assert error.type == "urn:cie:problem:not-found"
    assert error.title == "Customer not found"
    assert "no-such-customer" in error.detail
    assert error.body["instance"] == "/v1/customers/no-such-customer"
    assert "no-such-customer" in str(error)


def test_unknown_product_not_found(client):
    with pytest.raises(NotFoundError) as caught:
        client.get_product("NO SUCH/PRODUCT")

    assert caught.value.status == 404


@pytest.mark.parametrize("call, field", [
    (lambda client: client.list_customers(limit=0), "limit"),
    (lambda client: client.list_customers(min_orders=-1), "min_orders"),
    (lambda client: client.get_top_products(limit=101), "limit"),
    (lambda client: client.get_revenue(start="2011-02-01", end="2011-01-01"), "start"),
    (lambda client: client.analyze_sentiment([]), "texts"),
])
def test_invalid_request_names_field(client, call, field):
    with pytest.raises(ValidationError) as caught:
        call(client)
    error = caught.value

    assert error.status == 422
    assert field in error.fields
    assert all(item.message for item in error.errors)


def test_invalid_event_names_field(client):
    event = {"event_type": "order.placed", "customer_id": "client-invalid", "order_id": "o-1",
             "occurred_at": "2024-03-01T10:00:00Z",
             "lines": [{"line_number": 1, "product_id": "P1", "quantity": -1, "unit_price": "1.00"}]}
    with pytest.raises(ValidationError) as caught:
        client.send_event(event)

    assert caught.value.fields == ["lines[0].quantity"]
    assert caught.value.errors[0].location == "body"


def test_bad_key_unauthorized(base_url):
    with CustomerInsightAPI("not-a-key", base_url=base_url) as stranger:
        with pytest.raises(UnauthorizedError) as caught:
            stranger.get_summary()

    assert caught.value.status == 401
    assert "www-authenticate" in caught.value.headers


def test_missing_scope_forbidden(base_url, retail_pipeline):
    make_key = retail_pipeline.api_key
    event = {"event_type": "customer.registered", "customer_id": "client-scope", "occurred_at": "2024-03-01T09:00:00Z"}
    with CustomerInsightAPI(make_key("profiles:read"), base_url=base_url) as reader:
        with pytest.raises(ForbiddenError) as caught:
            reader.send_event(event)

    assert caught.value.status == 403
    assert caught.value.required_scope == "events:write"


# The async client, against the live API


def test_async_client_reads(base_url, api_key, client):
    async def read_all():
        async with AsyncCustomerInsightAPI(api_key, base_url=base_url, timeout=60.0) as async_client:
            customer, page, summary = await asyncio.gather(
                async_client.get_customer("12347"), async_client.list_customers(limit=3), async_client.get_summary())
            ids = [item.customer_id async for item in async_client.iter_customers(page_size=50)]
            analysis = await async_client.analyze_sentiment(["I love it."])
            with pytest.raises(NotFoundError):
                await async_client.get_product("NO-SUCH-PRODUCT")
            return customer, page, summary, ids, analysis

    customer, page, summary, ids, analysis = asyncio.run(read_all())

    assert customer == client.get_customer("12347")
    assert page == client.list_customers(limit=3)
    assert summary == client.get_summary()
    assert set(ids) == set(TRUTH.customers)
    assert analysis.results[0].label == "positive"


# Events through Kafka and the worker. These tests add customers, so they run last.


@pytest.fixture(scope="module")
def new_customer_id() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"


def _order(customer_id: str) -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id, order_id=f"order-{customer_id}", country="Iceland",
        occurred_at=datetime(2024, 3, 1, 10, tzinfo=timezone.utc),
        lines=[OrderLine(line_number=1, product_id="CLIENT-P1", quantity=2, unit_price=Decimal("3.50")),
               OrderLine(line_number=2, product_id="CLIENT-P2", quantity=1, unit_price=Decimal("10.25"))],
    )


def test_send_events_reach_profile(client, retail_pipeline, new_customer_id):
    registered = CustomerRegistered(customer_id=new_customer_id, country="Iceland",
                                    occurred_at=datetime(2024, 3, 1, 9, tzinfo=timezone.utc))
    order = _order(new_customer_id)
    accepted = client.send_events([registered, order])
    repeated = client.send_event(order)
    retail_pipeline.wait_caught_up()
    customer = client.get_customer(new_customer_id)

    assert accepted.event_ids == [registered.event_id, order.event_id]
    assert repeated.event_ids == [order.event_id]
    assert customer.order_count == 1
    assert customer.net_revenue == Decimal("17.25")
    assert customer.country == "Iceland"


def found_or_none(method, *args):
    try:
        return method(*args)
    except NotFoundError:
        return None


def test_sent_review_scored(client, raw, new_customer_id):
    review = ReviewSubmitted(customer_id=new_customer_id, review_id=f"review-{new_customer_id}",
                             product_id="CLIENT-P1", rating=1, title="Awful",
                             text="Terrible quality, it broke the first day and support never answered.",
                             occurred_at=datetime(2024, 3, 2, tzinfo=timezone.utc))
    client.send_event(review)

    # Both return 404 until the projection has the first score.
    sentiment = wait_until(lambda: (s := found_or_none(client.get_customer_sentiment, new_customer_id)) and
                           s.scored_count and s, timeout=120, message=f"the review of {new_customer_id} to be scored")
    product = wait_until(lambda: (p := found_or_none(client.get_product_sentiment, "CLIENT-P1")) and p.texts and p,
                         timeout=60, message="the review in the product's sentiment")

    assert sentiment.label == "negative"
    assert sentiment.recent[0].source_event_id == str(review.event_id)
    assert_matches_json(sentiment, raw.get(f"/v1/customers/{new_customer_id}/sentiment").json())
    assert product.labels.negative == 1
    assert_matches_json(product, raw.get("/v1/products/CLIENT-P1/sentiment").json())


def test_erase_customer(client, retail_pipeline, new_customer_id):
    client.send_event(_order(new_customer_id))
    retail_pipeline.wait_caught_up()
    accepted = client.erase_customer(new_customer_id)
    retail_pipeline.wait_caught_up()
    customer = client.get_customer(new_customer_id)

    assert isinstance(accepted, models.ErasureAccepted)
    assert accepted.event_id is not None
    assert customer.erased is True
    assert customer.name is None
    with pytest.raises(NotFoundError):
        client.erase_customer(f"never-{new_customer_id}")


# The README's quickstart, run as written


def test_readme_embeds_quickstart():
    readme = (REPO / "client" / "README.md").read_text()
    code = QUICKSTART.read_text().split('"""', 2)[2].strip()
    blocks = [block.split("```", 1)[0].strip() for block in readme.split("```python\n")[1:]]

    assert code in blocks


def test_quickstart_runs(base_url, api_key, routes):
    env = {**os.environ, "CIE_API_KEY": api_key, "CIE_API_URL": base_url}
    result = subprocess.run([sys.executable, str(QUICKSTART)], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=120)

    assert "customer 12347 in Iceland" in result.stdout, result.stderr
    if ("GET", "/v1/customers/{customer_id}/recommendations") not in routes:
        # Until recommendations are merged, the quickstart stops at that call with a 404.
        assert result.returncode != 0
        assert "NotFoundError" in result.stderr, result.stderr
        assert "/recommendations" in result.stderr, result.stderr
        pytest.skip("the quickstart ran up to get_recommendations; the API has no recommendations route yet")
    assert result.returncode == 0, result.stderr
    assert "positive" in result.stdout
    assert "negative" in result.stdout
    assert "event accepted" in result.stdout
    assert "not found" in result.stdout
