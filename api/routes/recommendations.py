"""Product recommendations, read from the lists that the recommender worker keeps in Redis.

The worker (``cie worker --role recommender``) rewrites a customer's lists after
each of their events, so a request is a few Redis reads: no model runs here.
Products that became unrecommendable after a list was written (fully
cancelled, marked as a service) are in the ``blocked`` set and filtered out.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from api.problems import Problem, not_found
from api.routes.deps import get_stores
from api.stores import Stores
from cie.recommend.keys import RecoKeys, decode_reasons, reasons_field

router = APIRouter(tags=["recommendations"])

MAX_LIMIT = 50  # the worker keeps CIE_RECO_LIST_SIZE (default 50) products per list
Kind = Literal["all", "buy_again", "discover"]
CustomerIdPath = Annotated[str, Path(min_length=1, max_length=128, description="Customer id, e.g. 12347")]
ProductIdPath = Annotated[str, Path(min_length=1, max_length=128, description="Product id, e.g. 85123A")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Maximum number of products to return")]


class RecommendedProduct(BaseModel):
    product_id: str
    name: str | None
    score: float  # comparable within one list only; higher is better
    reason: str


class CustomerRecommendations(BaseModel):
    customer_id: str
    kind: Kind
    cold_start: bool  # no purchase history: the trending products of the customer's country
    country: str | None
    items: list[RecommendedProduct]


class SimilarProducts(BaseModel):
    product_id: str
    name: str | None
    items: list[RecommendedProduct]


def _not_ready() -> Problem:
    return Problem(503, "Recommendations not ready",
                   "the recommender has not written any lists yet; is `cie worker --role recommender` running?",
                   "recommendations-not-ready", headers={"Retry-After": "5"})


def _read_ranked(stores: Stores, list_key: str, reasons_key: str) -> tuple[list, dict[str, tuple[int, str]]]:
    """Read a trending or similar list: the sorted set, and its reasons hash (product -> "<rank>|<reason>")."""
    with stores.redis.pipeline(transaction=True) as pipe:
        pipe.zrevrange(list_key, 0, -1, withscores=True)
        pipe.hgetall(reasons_key)
        members, stored = pipe.execute()
    reasons = {}
    for product, value in stored.items():
        rank, _, reason = value.decode().partition("|")
        reasons[product.decode()] = (int(rank), reason)
    return members, reasons


def _ranked(stores: Stores, keys: RecoKeys, members: list, reasons: dict[str, tuple[int, str]],
            limit: int) -> list[dict]:
    """Drop blocked products from a sorted set's members, keep the worker's order, add reasons and names."""
    if not members:
        return []
    client = stores.redis
    products = [member.decode() for member, _ in members]
    blocked = client.smismember(keys.blocked, products)
    entries = []
    for (product, (_, score)), is_blocked in zip(zip(products, members), blocked):
        if is_blocked:
            continue
        rank, reason = reasons.get(product, (0, ""))
        entries.append((rank, product, score, reason))
    entries.sort(key=lambda entry: entry[0])  # the worker's order breaks score ties like the model
    entries = entries[:limit]
    names = client.hmget(keys.names, [product for _, product, _, _ in entries]) if entries else []
    return [{"product_id": product, "name": name.decode() if name else None, "score": score, "reason": reason}
            for (_, product, score, reason), name in zip(entries, names)]


def _profile_country(stores: Stores, customer_id: str) -> str | None:
    with stores.postgres.connection() as conn:
        row = conn.execute("SELECT country FROM customers WHERE customer_id = %s", (customer_id,)).fetchone()
    return row["country"] if row else None


@router.get("/v1/customers/{customer_id}/recommendations", response_model=CustomerRecommendations,
            summary="Products to recommend to one customer, with a reason for each")
def customer_recommendations(
    customer_id: CustomerIdPath,
    stores: Stores = Depends(get_stores),
    limit: Limit = 10,
    kind: Annotated[Kind, Query(description="all: both kinds merged; buy_again: products the customer buys "
                                            "again; discover: products the customer never bought")] = "all",
):
    keys = RecoKeys.from_settings(stores.settings)
    # One transaction, so that the list and its reasons in the meta hash come from the same write.
    with stores.redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.customer_meta(customer_id))
        pipe.zrevrange(keys.customer_list(customer_id, kind), 0, -1, withscores=True)
        meta, members = pipe.execute()
    if meta:
        country = meta.get(b"country", b"").decode() or None
        reasons = decode_reasons(meta.get(reasons_field(kind).encode()))
        items = _ranked(stores, keys, members, reasons, limit)
        return {"customer_id": customer_id, "kind": kind, "cold_start": meta.get(b"cold_start") == b"1",
                "country": country, "items": items}

    # Unknown to the recommender: the trending products of the customer's country (from the profile),
    # or of everyone. A new customer has nothing to buy again.
    if not stores.redis.exists(keys.trending(None)):
        raise _not_ready()
    country = _profile_country(stores, customer_id)
    items: list[dict] = []
    if kind != "buy_again":
        if country and stores.redis.exists(keys.trending(country)):
            members, reasons = _read_ranked(stores, keys.trending(country), keys.trending_reasons(country))
        else:
            members, reasons = _read_ranked(stores, keys.trending(None), keys.trending_reasons(None))
        items = _ranked(stores, keys, members, reasons, limit)
    return {"customer_id": customer_id, "kind": kind, "cold_start": True, "country": country, "items": items}


@router.get("/v1/products/{product_id}/similar", response_model=SimilarProducts,
            summary="Products bought by the same customers as this one")
def similar_products(product_id: ProductIdPath, stores: Stores = Depends(get_stores), limit: Limit = 10):
    keys = RecoKeys.from_settings(stores.settings)
    client = stores.redis
    with client.pipeline(transaction=False) as pipe:
        pipe.hget(keys.names, product_id)
        pipe.exists(keys.similar(product_id))
        pipe.sismember(keys.blocked, product_id)
        name, has_list, blocked = pipe.execute()
    if not (name or has_list or blocked):
        with stores.postgres.connection() as conn:
            row = conn.execute("SELECT description FROM products WHERE product_id = %s", (product_id,)).fetchone()
        if row is None:
            raise not_found("product", product_id)
        name = row["description"]
    elif isinstance(name, bytes):
        name = name.decode()
    members, reasons = _read_ranked(stores, keys.similar(product_id), keys.similar_reasons(product_id))
    items = _ranked(stores, keys, members, reasons, limit)
    return {"product_id": product_id, "name": name, "items": items}
