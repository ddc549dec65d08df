"""Order-independent fingerprints of each projection's state, to compare a replay with the live state.

Each checksum covers the rows a reader sees (aggregates summed, facts
deduplicated), not the physical layout, so ClickHouse parts that have not yet
merged do not change it.
"""

import hashlib

from clickhouse_driver import Client

from projections import postgres
from cie.settings import Settings

POSTGRES_QUERIES = {
    # projection -> queries whose rows, in this order, make up its state
    "profiles": [
        "SELECT c::text FROM customers AS c ORDER BY customer_id",
        "SELECT p::text FROM customer_products AS p ORDER BY customer_id, product_id",
    ],
    "catalog": ["SELECT p::text FROM products AS p ORDER BY product_id"],
    "sentiment": [
        "SELECT s::text FROM customer_sentiment AS s ORDER BY customer_id, model_version",
        "SELECT t::text FROM scored_texts AS t ORDER BY event_id",
    ],
}

CLICKHOUSE_QUERIES = [
    """SELECT day, country, product_id, sum(units_sold), sum(units_cancelled),
              toString(sum(gross_revenue)), toString(sum(cancelled_revenue)), sum(order_lines)
       FROM {db}.sales_daily GROUP BY day, country, product_id ORDER BY day, country, product_id""",
    """SELECT event_type, uniqExact(event_id), min(occurred_at), max(occurred_at)
       FROM {db}.events GROUP BY event_type ORDER BY event_type""",
    """SELECT event_type, uniqExact(event_id), count(), sum(quantity), toString(sum(revenue))
       FROM (SELECT event_type, event_id, line_number, any(quantity) AS quantity, any(revenue) AS revenue
             FROM {db}.order_lines GROUP BY event_type, event_id, line_number)
       GROUP BY event_type ORDER BY event_type""",
    """SELECT day, product_id, model_version, sum(texts), sum(score_micros), sum(negative), sum(neutral), sum(positive)
       FROM {db}.sentiment_daily GROUP BY day, product_id, model_version ORDER BY day, product_id, model_version""",
]


def _digest(rows) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(tuple(row)).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def postgres_checksum(settings: Settings, projection: str, schema: str) -> str:
    with postgres.connect(settings, schema) as conn:
        rows = [row for query in POSTGRES_QUERIES[projection] for row in conn.execute(query)]
    return _digest(rows)


def clickhouse_checksum(client: Client, database: str) -> str:
    rows = [row for query in CLICKHOUSE_QUERIES for row in client.execute(query.format(db=database))]
    return _digest(rows)


def checksum(settings: Settings, projection: str, schema: str, database: str, client: Client) -> str:
    if projection == "analytics":
        return clickhouse_checksum(client, database)
    return postgres_checksum(settings, projection, schema)
