"""Revenue and product analytics from the ClickHouse projection."""

from datetime import date
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api import queries
from api.formats import Money, UtcDateTime, clickhouse_time, money
from api.problems import Problem
from api.routes.deps import get_stores
from api.stores import Stores

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


class Granularity(str, Enum):
    day = "day"
    month = "month"


class RankBy(str, Enum):
    revenue = "revenue"
    units = "units"


class RevenuePoint(BaseModel):
    period: date
    gross_revenue: Money
    cancelled_revenue: Money
    net_revenue: Money
    units_sold: int
    units_cancelled: int


class TopProduct(BaseModel):
    product_id: str
    description: str | None
    net_revenue: Money
    units_sold: int
    units_cancelled: int


class Summary(BaseModel):
    events: dict[str, int]  # event type -> distinct events
    customers: int
    products: int
    orders: int
    cancellations: int
    net_revenue: Money
    first_event_at: UtcDateTime | None
    last_event_at: UtcDateTime | None


# The range of ClickHouse's Date type (days since 1970 in a UInt16); the day columns cannot hold other dates.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2149, 6, 6)

DAY_RANGE = f"{FIRST_DAY} to {LAST_DAY}"

StartQuery = Annotated[date | None, Query(description=f"First day included (UTC), YYYY-MM-DD, {DAY_RANGE}")]
EndQuery = Annotated[date | None, Query(description=f"Last day included (UTC), YYYY-MM-DD, {DAY_RANGE}")]
CountryQuery = Annotated[str | None, Query(max_length=64, description="Only this country")]


def _filters(start: date | None, end: date | None, country: str | None) -> tuple[str, dict]:
    out_of_range = [(name, day) for name, day in (("start", start), ("end", end))
                    if day is not None and not FIRST_DAY <= day <= LAST_DAY]
    if out_of_range:
        detail = "; ".join(f"{name} {day} is outside {DAY_RANGE}" for name, day in out_of_range)
        errors = [{"field": name, "location": "query", "message": f"must be within {DAY_RANGE}"}
                  for name, _ in out_of_range]
        raise Problem(422, "Invalid request", detail, "validation", errors=errors)
    if start and end and start > end:
        raise Problem(422, "Invalid request", f"start {start} is after end {end}", "validation",
                      errors=[{"field": "start", "location": "query", "message": "must not be after end"}])
    return queries.sales_filters(start, end, country)


@router.get("/revenue", response_model=list[RevenuePoint], summary="Revenue and units per day or month")
def revenue(start: StartQuery = None, end: EndQuery = None, country: CountryQuery = None,
            granularity: Granularity = Granularity.day, stores: Stores = Depends(get_stores)):
    where, params = _filters(start, end, country)
    period = queries.REVENUE_PERIODS[granularity.value]
    database = stores.settings.clickhouse_database
    with stores.clickhouse() as client:
        rows = client.execute(queries.REVENUE.format(db=database, period=period, where=where), params)
    return [
        {"period": period_, "gross_revenue": money(gross), "cancelled_revenue": money(cancelled),
         "net_revenue": money(gross) - money(cancelled), "units_sold": sold, "units_cancelled": cancelled_units}
        for period_, gross, cancelled, sold, cancelled_units in rows
    ]


@router.get("/top-products", response_model=list[TopProduct], summary="Products ranked by net revenue or units")
def top_products(start: StartQuery = None, end: EndQuery = None, country: CountryQuery = None,
                 by: RankBy = RankBy.revenue,
                 limit: Annotated[int, Query(ge=1, le=100, description="How many products")] = 10,
                 include_services: Annotated[bool, Query(description="Include postage, fees and adjustments")] = False,
                 stores: Stores = Depends(get_stores)):
    where, params = _filters(start, end, country)
    order = queries.TOP_PRODUCTS_ORDER[by.value]
    database = stores.settings.clickhouse_database
    excluded: set[str] = set()
    if not include_services:
        with stores.postgres.connection() as conn:
            excluded = {row["product_id"] for row in conn.execute("SELECT product_id FROM products WHERE is_service")}
    params.update({"limit": limit + len(excluded)})
    with stores.clickhouse() as client:
        rows = client.execute(queries.TOP_PRODUCTS.format(db=database, where=where, order=order), params)
    rows = [row for row in rows if row[0] not in excluded][:limit]
    with stores.postgres.connection() as conn:
        names = {row["product_id"]: row["description"] for row in conn.execute(
            "SELECT product_id, description FROM products WHERE product_id = ANY(%s)", ([row[0] for row in rows],))}
    return [{"product_id": product_id, "description": names.get(product_id), "net_revenue": net,
             "units_sold": sold, "units_cancelled": cancelled} for product_id, net, sold, cancelled in rows]


@router.get("/summary", response_model=Summary, summary="What went through the pipeline")
def summary(stores: Stores = Depends(get_stores)):
    database = stores.settings.clickhouse_database
    with stores.clickhouse() as client:
        by_type = dict(client.execute(queries.SUMMARY_EVENTS_BY_TYPE.format(db=database)))
        first, last = client.execute(queries.SUMMARY_EVENT_TIMES.format(db=database))[0][:2]
        net = client.execute(queries.SUMMARY_NET_REVENUE.format(db=database))[0][0]
    with stores.postgres.connection() as conn:
        customers = conn.execute("SELECT count(*) AS n FROM customers").fetchone()["n"]
        products = conn.execute("SELECT count(*) AS n FROM products").fetchone()["n"]
    return {
        "events": by_type,
        "customers": customers,
        "products": products,
        "orders": by_type.get("order.placed", 0),
        "cancellations": by_type.get("order.cancelled", 0),
        "net_revenue": money(net),
        "first_event_at": clickhouse_time(first) if by_type else None,
        "last_event_at": clickhouse_time(last) if by_type else None,
    }
