"""Products from the catalogue projection, with sales totals from ClickHouse."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from api import queries
from api.formats import Money, UtcDateTime, money
from api.problems import not_found
from api.routes.deps import get_stores
from api.stores import Stores

router = APIRouter(prefix="/v1/products", tags=["products"])


class ProductSales(BaseModel):
    units_sold: int
    units_cancelled: int
    net_revenue: Money
    first_sold_on: date | None
    last_sold_on: date | None


class Product(BaseModel):
    product_id: str
    description: str | None
    unit_price: Money | None
    currency: str
    is_service: bool
    updated_at: UtcDateTime
    sales: ProductSales


@router.get("/{product_id}", response_model=Product, summary="One product with its sales totals")
def get_product(product_id: Annotated[str, Path(min_length=1, max_length=128)], stores: Stores = Depends(get_stores)):
    with stores.postgres.connection() as conn:
        row = conn.execute(
            "SELECT product_id, description, unit_price, currency, is_service, updated_at FROM products WHERE product_id = %s",
            (product_id,),
        ).fetchone()
    if row is None:
        raise not_found("product", product_id)
    database = stores.settings.clickhouse_database
    with stores.clickhouse() as client:
        units_sold, units_cancelled, net_revenue, first_day, last_day, lines = client.execute(
            queries.PRODUCT_SALES.format(db=database), {"product_id": product_id},
        )[0]
    row["sales"] = {
        "units_sold": units_sold,
        "units_cancelled": units_cancelled,
        "net_revenue": money(net_revenue),
        "first_sold_on": first_day if lines else None,
        "last_sold_on": last_day if lines else None,
    }
    return row
