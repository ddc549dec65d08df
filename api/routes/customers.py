"""Customer profiles from the PostgreSQL projection, with the sealed traits decrypted for the response."""

import logging
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from api.formats import Money, UtcDateTime
from api.problems import not_found
from api.routes.deps import get_stores
from api.stores import Stores
from cie.crypto.events import open_traits
from cie.crypto.fields import DecryptionError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/customers", tags=["customers"])

CustomerIdPath = Annotated[str, Path(min_length=1, max_length=128, description="Customer id, e.g. 12347")]


class CustomerProfile(BaseModel):
    customer_id: str
    country: str | None
    registered_at: UtcDateTime | None
    traits: dict[str, str] | None  # null once the customer is erased
    first_order_at: UtcDateTime | None
    last_order_at: UtcDateTime | None
    order_count: int
    cancellation_count: int
    units_purchased: int
    units_cancelled: int
    gross_revenue: Money
    cancelled_revenue: Money
    net_revenue: Money
    average_order_value: Money | None
    distinct_products: int
    last_event_at: UtcDateTime | None
    erased: bool  # the customer's personal data was erased: traits and texts are null, counts stay


class CustomerPage(BaseModel):
    items: list[CustomerProfile]
    next_cursor: str | None  # pass as ?after= to get the next page


PROFILE_COLUMNS = """customer_id, country, registered_at, traits, first_order_at, last_order_at, order_count,
    cancellation_count, units_purchased, units_cancelled, gross_revenue, cancelled_revenue, net_revenue,
    average_order_value, distinct_products, last_event_at, erased_at"""


def open_profiles(stores: Stores, rows: list[dict]) -> list[dict]:
    """Decrypt the traits of profile rows; an erased customer (key destroyed) gets null traits and erased true."""
    keys = stores.keyring.keys(row["customer_id"] for row in rows if row["traits"])
    profiles = []
    for row in rows:
        customer_id = row["customer_id"]
        erased = row.pop("erased_at") is not None or (customer_id in keys and keys[customer_id] is None)
        traits = None if erased else {}
        if row["traits"] and not erased:
            try:
                traits = open_traits(row["traits"], keys[customer_id])
            except (DecryptionError, KeyError, ValueError):
                log.error("traits of customer %s do not decrypt under its data key; serving them as null", customer_id)
                traits = None
        profiles.append({**row, "traits": traits, "erased": erased})
    return profiles


@router.get("/{customer_id}", response_model=CustomerProfile, summary="One customer's profile")
def get_customer(customer_id: CustomerIdPath, stores: Stores = Depends(get_stores)):
    with stores.postgres.connection() as conn:
        row = conn.execute(f"SELECT {PROFILE_COLUMNS} FROM customers WHERE customer_id = %s", (customer_id,)).fetchone()
    if row is None:
        raise not_found("customer", customer_id)
    return open_profiles(stores, [row])[0]


@router.get("", response_model=CustomerPage, summary="Customers, by id, with simple filters")
def list_customers(
    stores: Stores = Depends(get_stores),
    country: Annotated[str | None, Query(max_length=64, description="Only customers in this country")] = None,
    min_orders: Annotated[int, Query(ge=0, description="Only customers with at least this many orders")] = 0,
    min_net_revenue: Annotated[Decimal | None, Query(description="Only customers with at least this net revenue")] = None,
    after: Annotated[str | None, Query(max_length=128, description="Cursor: the next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
):
    conditions = ["order_count >= %(min_orders)s"]
    params: dict = {"min_orders": min_orders, "limit": limit + 1}
    if country is not None:
        conditions.append("country = %(country)s")
        params["country"] = country
    if min_net_revenue is not None:
        conditions.append("net_revenue >= %(min_net_revenue)s")
        params["min_net_revenue"] = min_net_revenue
    if after is not None:
        conditions.append("customer_id > %(after)s")
        params["after"] = after
    query = (f"SELECT {PROFILE_COLUMNS} FROM customers WHERE {' AND '.join(conditions)} "
             "ORDER BY customer_id LIMIT %(limit)s")
    with stores.postgres.connection() as conn:
        rows = conn.execute(query, params).fetchall()
    next_cursor = rows[limit - 1]["customer_id"] if len(rows) > limit else None
    return {"items": open_profiles(stores, rows[:limit]), "next_cursor": next_cursor}
