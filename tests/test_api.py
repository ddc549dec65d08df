"""The read and intake API, run as a uvicorn subprocess on the projected retail sample.

Expected values come from tests/retail_truth.py, computed from the CSV files
without the product code. The tests that post events change the totals, so they
come last in this file (pytest runs a module's tests in file order).
"""

import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, RETAIL_SAMPLE, wait_until
from tests.retail_truth import compute

TRUTH = compute(RETAIL_SAMPLE)
UVICORN = str(Path(sys.executable).parent / "uvicorn")
PROBLEM_JSON = "application/problem+json"

# Stock codes in the sample that are postage, fees and test items rather than goods.
SAMPLE_SERVICE_CODES = {"POST", "DOT", "M", "TEST001", "TEST002"}
# A product with a single description in the sample and no trailing spaces.
KNOWN_PRODUCT = ("84879", "ASSORTED COLOUR BIRD ORNAMENT")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(client: httpx.Client, process: subprocess.Popen, log_path: Path, timeout: float = 60.0,
                probe: str = "/readyz") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"uvicorn exited with code {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if client.get(probe).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{probe} did not return 200 within {timeout} s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def api(retail_pipeline):
    """An httpx client for a uvicorn process that serves the retail namespace."""
    port = _free_port()
    log_path = retail_pipeline.tmp / "api.log"
    process = subprocess.Popen(
        [UVICORN, "api.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=retail_pipeline.env, cwd=REPO, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    key = retail_pipeline.api_key("admin")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0, headers={"Authorization": f"Bearer {key}"})
    try:
        _wait_ready(client, process, log_path)
        yield client
    finally:
        client.close()
        _stop(process)


def _error_fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json().get("errors", [])]


def _order_placed(customer_id: str, **changes) -> dict:
    event = {
        "event_type": "order.placed",
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2024-03-01T10:00:00+00:00",
        "customer_id": customer_id,
        "order_id": f"api-{customer_id}",
        "country": "Iceland",
        "lines": [
            {"line_number": 1, "product_id": "API-TEST-1", "description": "TEST MUG", "quantity": 2,
             "unit_price": "3.50"},
            {"line_number": 2, "product_id": "API-TEST-2", "quantity": 1, "unit_price": "10.25"},
        ],
    }
    event.update(changes)
    return event


# Customers


def test_customer_totals_match_csv(api):
    response = api.get("/v1/customers/12347")
    body = response.json()
    truth = TRUTH.customers["12347"]

    assert response.status_code == 200
    assert body["order_count"] == len(truth.orders)
    assert Decimal(body["net_revenue"]) == truth.gross_revenue - truth.cancelled_revenue
    assert body["distinct_products"] == len(truth.products)
    assert datetime.fromisoformat(body["first_order_at"]) == truth.first_order_at
    assert datetime.fromisoformat(body["last_order_at"]) == truth.last_order_at


def test_demo_report_reads_the_api(api, retail_pipeline):
    key = retail_pipeline.api_key(["profiles:read", "analytics:read"], name="demo-report")
    result = retail_pipeline.run_cli("report", "--api-url", str(api.base_url).rstrip("/"), env={"CIE_API_KEY": key})
    assert result.returncode == 0, result.stderr
    assert '"customer_id": "12347"' in result.stdout
    assert "Top products by net revenue" in result.stdout
    assert "Stop everything: make down" in result.stdout


def test_unknown_customer_is_problem(api):
    response = api.get("/v1/customers/no-such-customer")
    body = response.json()

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == 404
    assert "no-such-customer" in body["detail"]


def test_customer_pages_cover_all(api):
    ids, page_sizes = [], []
    params = {"limit": 5}
    while True:
        response = api.get("/v1/customers", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["customer_id"] for item in page["items"]]
        page_sizes.append(len(page["items"]))
        if page["next_cursor"] is None:
            break
        params = {"limit": 5, "after": page["next_cursor"]}

    assert max(page_sizes) == 5
    assert len(ids) == len(set(ids))
    assert set(ids) == set(TRUTH.customers)


def test_customer_country_filter(api):
    everyone = api.get("/v1/customers", params={"limit": 500}).json()["items"]
    french = {item["customer_id"] for item in everyone if item["country"] == "France"}
    response = api.get("/v1/customers", params={"country": "France", "limit": 500})
    items = response.json()["items"]

    assert response.status_code == 200
    assert items
    assert {item["country"] for item in items} == {"France"}
    assert {item["customer_id"] for item in items} == french


@pytest.mark.parametrize("name, value", [("limit", "0"), ("limit", "abc"), ("min_orders", "-1")])
def test_customer_list_bad_param(api, name, value):
    response = api.get("/v1/customers", params={name: value})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert _error_fields(response) == [name]


# Products


def test_known_product_sales(api):
    product_id, description = KNOWN_PRODUCT
    response = api.get(f"/v1/products/{product_id}")
    body = response.json()

    assert response.status_code == 200
    assert body["description"] == description
    assert body["sales"]["units_sold"] == TRUTH.units_sold_by_product[product_id]


def test_unknown_product_is_404(api):
    response = api.get("/v1/products/NO-SUCH-PRODUCT")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


# Analytics


def test_monthly_revenue_sums_to_csv(api):
    response = api.get("/v1/analytics/revenue", params={"granularity": "month"})
    points = response.json()

    assert response.status_code == 200
    assert all(datetime.fromisoformat(point["period"]).day == 1 for point in points)
    assert sum(Decimal(point["net_revenue"]) for point in points) == sum(TRUTH.net_revenue_by_country.values())


def test_revenue_start_after_end(api):
    response = api.get("/v1/analytics/revenue", params={"start": "2011-02-01", "end": "2011-01-01"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "start" in _error_fields(response)


def test_revenue_bad_date(api):
    response = api.get("/v1/analytics/revenue", params={"start": "2011-13-01"})

    assert response.status_code == 422
    assert _error_fields(response) == ["start"]


@pytest.mark.parametrize("path", ["/v1/analytics/revenue", "/v1/analytics/top-products"])
@pytest.mark.parametrize("name, value", [("start", "0293-11-01"), ("end", "2150-01-01")])
def test_date_outside_clickhouse_range(api, path, name, value):
    response = api.get(path, params={name: value})

    assert response.status_code == 422
    assert _error_fields(response) == [name]


def test_top_products_ranked(api):
    response = api.get("/v1/analytics/top-products", params={"limit": 5})
    revenues = [Decimal(item["net_revenue"]) for item in response.json()]

    assert response.status_code == 200
    assert 0 < len(revenues) <= 5
    assert revenues == sorted(revenues, reverse=True)


def test_top_products_exclude_services(api):
    default = api.get("/v1/analytics/top-products", params={"limit": 100}).json()
    with_services = api.get("/v1/analytics/top-products", params={"limit": 100, "include_services": "true"}).json()

    assert not {item["product_id"] for item in default} & SAMPLE_SERVICE_CODES
    assert {item["product_id"] for item in with_services} & SAMPLE_SERVICE_CODES


def test_summary_counts_customers(api):
    response = api.get("/v1/analytics/summary")

    assert response.status_code == 200
    assert response.json()["customers"] == len(TRUTH.customers)


# Formats of money and times

MONEY = re.compile(r"^-?\d+\.\d{3}$")
UTC_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A date followed by a time of day, with T or a space; any such string must match UTC_DATETIME.
DATETIME_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
MONEY_KEY = re.compile(r"(revenue|price|order_value)$")
TIME_KEY = re.compile(r"(_at|^window_end)$")
DATE_KEY = re.compile(r"(_on|^period|^day)$")

# (path, whether its JSON must contain a money field, whether it must contain a time)
FORMAT_PATHS = [
    ("/v1/customers/12347", True, True),
    ("/v1/customers?limit=20", True, True),
    (f"/v1/products/{KNOWN_PRODUCT[0]}", True, True),
    ("/v1/analytics/revenue?granularity=month", True, False),
    ("/v1/analytics/revenue?granularity=day", True, False),
    ("/v1/analytics/top-products?limit=100&include_services=true", True, False),
    ("/v1/analytics/top-products?limit=100&by=units", True, False),
    ("/v1/analytics/summary", True, True),
    ("/v1/customers/12347/sentiment", False, False),
]


def _walk(value, where: str = ""):
    """Yield (location, key, value) for every member of every object in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key}", key, item
            yield from _walk(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]")


@pytest.mark.parametrize("path, has_money, has_time", FORMAT_PATHS, ids=[path for path, *_ in FORMAT_PATHS])
def test_money_and_time_formats(api, path, has_money, has_time):
    response = api.get(path)
    members = [(where, key, value) for where, key, value in _walk(response.json()) if value is not None]
    money = [(where, value) for where, key, value in members if MONEY_KEY.search(key)]
    times = [(where, value) for where, key, value in members if TIME_KEY.search(key)]
    dates = [(where, value) for where, key, value in members if DATE_KEY.search(key)]
    datetime_like = [(where, value) for where, _, value in members
                     if isinstance(value, str) and DATETIME_LIKE.match(value)]

    assert response.status_code == 200, response.text
    assert money or not has_money, "no money field to check"
    assert times or not has_time, "no time field to check"
    for where, value in money:
        assert isinstance(value, str) and MONEY.match(value), f"{where} = {value!r} is not money with 3 decimals"
    for where, value in times + datetime_like:
        assert isinstance(value, str) and UTC_DATETIME.match(value), f"{where} = {value!r} is not ISO 8601 UTC"
    for where, value in dates:
        assert isinstance(value, str) and DATE.match(value), f"{where} = {value!r} is not an ISO 8601 date"


# Health and OpenAPI


def test_healthz(api):
    assert api.get("/healthz").status_code == 200


def test_readyz_checks(api):
    response = api.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "clickhouse": "ok", "kafka": "ok", "redis": "ok"}


@pytest.mark.parametrize("path", [
    "/healthz", "/readyz", "/v1/customers", "/v1/customers/{customer_id}", "/v1/products/{product_id}",
    "/v1/analytics/revenue", "/v1/analytics/top-products", "/v1/analytics/summary", "/v1/events", "/v1/events:batch",
    "/v1/customers/{customer_id}/recommendations", "/v1/products/{product_id}/similar",
])
def test_openapi_lists_path(api, path):
    assert path in api.get("/openapi.json").json()["paths"]


# Event intake: invalid events


def test_event_negative_quantity(api):
    event = _order_placed("api-invalid")
    event["lines"][0]["quantity"] = -1
    response = api.post("/v1/events", json=event)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert _error_fields(response) == ["lines[0].quantity"]


def test_event_unknown_type(api):
    response = api.post("/v1/events", json=_order_placed("api-invalid", event_type="order.exploded"))

    assert response.status_code == 422
    assert _error_fields(response) == ["event_type"]


def test_event_missing_occurred_at(api):
    event = _order_placed("api-invalid")
    del event["occurred_at"]
    response = api.post("/v1/events", json=event)

    assert response.status_code == 422
    assert _error_fields(response) == ["occurred_at"]


def test_event_naive_occurred_at(api):
    response = api.post("/v1/events", json=_order_placed("api-invalid", occurred_at="2024-03-01T10:00:00"))

    assert response.status_code == 422
    assert _error_fields(response) == ["occurred_at"]


def test_batch_over_limit(api):
    events = [_order_placed(f"api-batch-{number}") for number in range(501)]
    response = api.post("/v1/events:batch", json={"events": events})

    assert response.status_code == 422
    assert _error_fields(response) == ["events"]


def test_batch_error_names_event(api):
    valid = _order_placed("api-invalid")
    invalid = _order_placed("api-invalid")
    invalid["lines"][1]["quantity"] = 0
    response = api.post("/v1/events:batch", json={"events": [valid, invalid]})

    assert response.status_code == 422
    assert _error_fields(response) == ["events[1].lines[1].quantity"]


def test_batch_empty(api):
    response = api.post("/v1/events:batch", json={"events": []})

    assert response.status_code == 422
    assert _error_fields(response) == ["events"]


# Event intake through Kafka and the worker. These tests add a customer, so they run last.


@pytest.fixture(scope="module")
def new_customer():
    return {"customer_id": f"api-{uuid.uuid4().hex[:8]}", "order": None}


def test_posted_order_reaches_profile(api, new_customer):
    customer_id = new_customer["customer_id"]
    registered = {"event_type": "customer.registered", "event_id": str(uuid.uuid4()),
                  "occurred_at": "2024-03-01T09:00:00+00:00", "customer_id": customer_id, "country": "Iceland"}
    order = _order_placed(customer_id)
    new_customer["order"] = order

    registered_response = api.post("/v1/events", json=registered)
    order_response = api.post("/v1/events", json=order)

    assert registered_response.status_code == 202
    assert registered_response.json() == {"event_ids": [registered["event_id"]]}
    assert order_response.status_code == 202
    assert order_response.json() == {"event_ids": [order["event_id"]]}

    def profile():
        response = api.get(f"/v1/customers/{customer_id}")
        return response.json() if response.status_code == 200 and response.json()["order_count"] else None

    body = wait_until(profile, timeout=60, message=f"the order of customer {customer_id} in its profile")
    assert body["order_count"] == 1
    assert Decimal(body["net_revenue"]) == Decimal("17.25")
    assert body["country"] == "Iceland"


def test_repeated_event_counted_once(api, new_customer, retail_pipeline):
    order = new_customer["order"]
    if order is None:
        pytest.skip("test_posted_order_reaches_profile did not post the order")

    response = api.post("/v1/events", json=order)
    retail_pipeline.wait_caught_up()
    body = api.get(f"/v1/customers/{new_customer['customer_id']}").json()

    assert response.status_code == 202
    assert response.json() == {"event_ids": [order["event_id"]]}
    assert body["order_count"] == 1
    assert Decimal(body["net_revenue"]) == Decimal("17.25")
