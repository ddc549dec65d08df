"""Product catalogue projection in PostgreSQL, fed by the product-events topic.

Idempotency: the same claim-apply-offsets transaction as the profile projection.
The upsert keeps the version with the latest occurred_at, and on equal times the
later one in the log, so a replay in log order ends with the same row.
"""

import psycopg

from projections import postgres
from projections.records import EventRecord, LogRecord, last_offsets

PROJECTION = "catalog"


class CatalogProjection:
    name = PROJECTION

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def apply(self, events: list[EventRecord], records: list[LogRecord]) -> int:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            fresh = postgres.claim_new_events(cursor, PROJECTION, events, frozenset({"product.upserted"}))

            if fresh:
                cursor.executemany(
                    """
                    INSERT INTO products AS p (product_id, description, unit_price, currency, is_service, updated_at)
                    VALUES (%s, %s, %s, %s, %s, %s)
                    ON CONFLICT (product_id) DO UPDATE SET
                        description = coalesce(excluded.description, p.description),
                        unit_price = coalesce(excluded.unit_price, p.unit_price),
                        currency = excluded.currency,
                        is_service = excluded.is_service,
                        updated_at = excluded.updated_at
                    WHERE excluded.updated_at >= p.updated_at
                    """,
                    [
                        (e["product_id"], e.get("description"), e.get("unit_price"), e["currency"],
                         e["is_service"], e["occurred_at"])
                        for e in fresh
                    ],
                )
            postgres.store_offsets(cursor, PROJECTION, last_offsets(records))
        return len(fresh)
