"""Customer profile projection in PostgreSQL, fed by the customer-events topic.

Idempotency: each batch runs in one transaction that (1) claims the batch's
event ids in ``applied_events``, (2) applies only the events whose claim was new,
and (3) stores the batch's highest offsets. A crash before commit loses the whole
batch, which Kafka redelivers; a redelivery after commit finds every id claimed.

Traits are stored sealed, as the events carry them. customer.erased events
destroy the customer's data key and clear the personal fields in the same
transaction (projections/erasure.py); traits of an already erased customer are
never stored, so a replay after an erasure stores none either.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cie.crypto.events import TRAIT_EVENT_TYPES, stored_traits
from cie.crypto.keyring import KeyRing, erased_among
from projections import postgres
from projections.erasure import erase_customers
from projections.records import EventRecord, LogRecord, last_offsets

log = logging.getLogger(__name__)

PROJECTION = "profiles"


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


@dataclass
class _CustomerDelta:
    """Changes to one customer row from one batch; added to the stored row."""

    country: str | None = None
    country_updated_at: datetime | None = None
    registered_at: datetime | None = None
    traits: dict[str, str] = field(default_factory=dict)  # trait name -> base64 of the sealed value
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    order_count: int = 0
    cancellation_count: int = 0
    units_purchased: int = 0
    units_cancelled: int = 0
    gross_revenue: Decimal = Decimal(0)
    cancelled_revenue: Decimal = Decimal(0)
    last_event_at: datetime | None = None
    erased_at: datetime | None = None

    def set_country(self, country: str | None, at: datetime) -> None:
        if country and (self.country_updated_at is None or at >= self.country_updated_at):
            self.country = country
            self.country_updated_at = at


@dataclass
class _ProductDelta:
    order_count: int = 0
    units_purchased: int = 0
    units_cancelled: int = 0
    first_purchased_at: datetime | None = None
    last_purchased_at: datetime | None = None


class ProfileProjection:
    """Apply customer events to ``customers`` and ``customer_products``."""

    name = PROJECTION

    def __init__(self, conn: psycopg.Connection, keyring: KeyRing):
        self.conn = conn
        self.keyring = keyring  # reads and destroys keys in the live schema, also during a replay

    def close(self) -> None:
        self.conn.close()
        self.keyring.close()

    def apply(self, events: list[EventRecord], records: list[LogRecord]) -> int:
        """Apply a batch in one transaction; return how many events were new.

        ``records`` is every record of the batch, including rejected ones, so the
        stored offsets cover the whole batch.
        """
        with self.conn.transaction(), self.conn.cursor() as cursor:
            # 1. Claim event ids; the first occurrence of an id in the batch wins.
            fresh = postgres.claim_new_events(cursor, PROJECTION, events)

            # 2. Traits of erased customers are dropped; plain traits of events written
            #    before encryption are sealed here, which needs the customer's key.
            trait_events = [event for event in fresh if event["event_type"] in TRAIT_EVENT_TYPES]
            erased = erased_among(cursor, self.keyring.schema, {event["customer_id"] for event in trait_events})
            legacy = {event["customer_id"] for event in trait_events if event.get("traits")} - erased
            keys = self.keyring.keys(legacy, create=True)

            # 3. Fold the new events into per-customer and per-product deltas.
            customers: dict[str, _CustomerDelta] = defaultdict(_CustomerDelta)
            products: dict[tuple[str, str], _ProductDelta] = defaultdict(_ProductDelta)
            for event in fresh:
                self._fold(event, customers, products, erased, keys)

            # 4. Upsert the deltas, recount distinct products of touched customers, apply erasures.
            self._upsert_customers(cursor, customers)
            self._upsert_customer_products(cursor, products)
            self._recount_distinct_products(cursor, {customer for customer, _ in products})
            erasures = [event for event in fresh if event["event_type"] == "customer.erased"]
            erase_customers(cursor, self.keyring.schema, erasures)

            # 5. Record how far this projection has read.
            postgres.store_offsets(cursor, PROJECTION, last_offsets(records))
        self.keyring.forget(event["customer_id"] for event in erasures)
        return len(fresh)

    @staticmethod
    def _fold(event: dict[str, Any], customers: dict[str, _CustomerDelta],
              products: dict[tuple[str, str], _ProductDelta], erased: set[str], keys: dict) -> None:
        customer_id = event.get("customer_id")
        if not customer_id:
            return  # guest orders have no profile
        at = event["occurred_at"]
        delta = customers[customer_id]
        delta.last_event_at = _latest(delta.last_event_at, at)
        event_type = event["event_type"]

        keep_traits = customer_id not in erased and delta.erased_at is None
        if event_type == "customer.registered":
            delta.registered_at = _earliest(delta.registered_at, at)
            delta.set_country(event.get("country"), at)
            if keep_traits:
                delta.traits.update(stored_traits(event, keys.get(customer_id)))
        elif event_type == "customer.traits_updated":
            delta.set_country(event.get("country"), at)
            if keep_traits:
                delta.traits.update(stored_traits(event, keys.get(customer_id)))
        elif event_type == "customer.erased":
            delta.erased_at = _earliest(delta.erased_at, at)
            delta.traits.clear()
        elif event_type == "order.placed":
            delta.order_count += 1
            delta.first_order_at = _earliest(delta.first_order_at, at)
            delta.last_order_at = _latest(delta.last_order_at, at)
            for line in event["lines"]:
                delta.units_purchased += line["quantity"]
                delta.gross_revenue += line["quantity"] * line["unit_price"]
                product = products[(customer_id, line["product_id"])]
                product.units_purchased += line["quantity"]
                product.first_purchased_at = _earliest(product.first_purchased_at, at)
                product.last_purchased_at = _latest(product.last_purchased_at, at)
            for product_id in {line["product_id"] for line in event["lines"]}:
                products[(customer_id, product_id)].order_count += 1
        elif event_type == "order.cancelled":
            delta.cancellation_count += 1
            for line in event["lines"]:
                delta.units_cancelled += line["quantity"]
                delta.cancelled_revenue += line["quantity"] * line["unit_price"]
                products[(customer_id, line["product_id"])].units_cancelled += line["quantity"]

    @staticmethod
    def _upsert_customers(cursor: psycopg.Cursor, customers: dict[str, _CustomerDelta]) -> None:
        if not customers:
            return
        cursor.executemany(
            """
            INSERT INTO customers AS c (
                customer_id, country, country_updated_at, registered_at, traits,
                first_order_at, last_order_at, order_count, cancellation_count,
                units_purchased, units_cancelled, gross_revenue, cancelled_revenue, last_event_at, erased_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (customer_id) DO UPDATE SET
                country = CASE
                    WHEN excluded.country_updated_at IS NOT NULL
                     AND (c.country_updated_at IS NULL OR excluded.country_updated_at >= c.country_updated_at)
                    THEN excluded.country ELSE c.country END,
                country_updated_at = greatest(c.country_updated_at, excluded.country_updated_at),
                registered_at = least(c.registered_at, excluded.registered_at),
                traits = CASE WHEN c.erased_at IS NOT NULL OR excluded.erased_at IS NOT NULL
                              THEN '{}'::jsonb ELSE c.traits || excluded.traits END,
                first_order_at = least(c.first_order_at, excluded.first_order_at),
                last_order_at = greatest(c.last_order_at, excluded.last_order_at),
                order_count = c.order_count + excluded.order_count,
                cancellation_count = c.cancellation_count + excluded.cancellation_count,
                units_purchased = c.units_purchased + excluded.units_purchased,
                units_cancelled = c.units_cancelled + excluded.units_cancelled,
                gross_revenue = c.gross_revenue + excluded.gross_revenue,
                cancelled_revenue = c.cancelled_revenue + excluded.cancelled_revenue,
                last_event_at = greatest(c.last_event_at, excluded.last_event_at),
                erased_at = least(c.erased_at, excluded.erased_at)
            """,
            [
                (customer_id, d.country, d.country_updated_at, d.registered_at, Jsonb(d.traits),
                 d.first_order_at, d.last_order_at, d.order_count, d.cancellation_count,
                 d.units_purchased, d.units_cancelled, d.gross_revenue, d.cancelled_revenue, d.last_event_at,
                 d.erased_at)
                for customer_id, d in customers.items()
            ],
        )

    @staticmethod
    def _upsert_customer_products(cursor: psycopg.Cursor, products: dict[tuple[str, str], _ProductDelta]) -> None:
        if not products:
            return
        cursor.executemany(
            """
            INSERT INTO customer_products AS p (
                customer_id, product_id, order_count, units_purchased, units_cancelled,
                first_purchased_at, last_purchased_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (customer_id, product_id) DO UPDATE SET
                order_count = p.order_count + excluded.order_count,
                units_purchased = p.units_purchased + excluded.units_purchased,
                units_cancelled = p.units_cancelled + excluded.units_cancelled,
                first_purchased_at = least(p.first_purchased_at, excluded.first_purchased_at),
                last_purchased_at = greatest(p.last_purchased_at, excluded.last_purchased_at)
            """,
            [
                (customer_id, product_id, d.order_count, d.units_purchased, d.units_cancelled,
                 d.first_purchased_at, d.last_purchased_at)
                for (customer_id, product_id), d in products.items()
            ],
        )

    @staticmethod
    def _recount_distinct_products(cursor: psycopg.Cursor, customer_ids: set[str]) -> None:
        if not customer_ids:
            return
        cursor.execute(
            """
            UPDATE customers AS c SET distinct_products = counted.products
            FROM (
                SELECT customer_id, count(*) FILTER (WHERE order_count > 0) AS products
                FROM customer_products WHERE customer_id = ANY(%s) GROUP BY customer_id
            ) AS counted
            WHERE c.customer_id = counted.customer_id
            """,
            (sorted(customer_ids),),
        )
