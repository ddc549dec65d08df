"""ClickHouse SQL of the read API, kept apart from the routes so tests can run it on other ClickHouse versions.

Templates take ``{db}`` (the database) and the placeholders named with them, filled
with str.format. Values go in as clickhouse-driver %(name)s parameters.
"""

from datetime import date


# Revenue per period. {period} is an expression from REVENUE_PERIODS and {where} comes from sales_filters().
REVENUE = """SELECT {period} AS period, toString(sum(gross_revenue)), toString(sum(cancelled_revenue)),
       sum(units_sold), sum(units_cancelled)
FROM {db}.sales_daily WHERE {where} GROUP BY period ORDER BY period"""

REVENUE_PERIODS = {"day": "day", "month": "toStartOfMonth(day)"}

# Products ranked. {order} is an expression from TOP_PRODUCTS_ORDER and {where} comes from sales_filters().
TOP_PRODUCTS = """SELECT product_id, sum(gross_revenue) - sum(cancelled_revenue) AS net_revenue,
       sum(units_sold) AS units_sold, sum(units_cancelled) AS units_cancelled
FROM {db}.sales_daily WHERE {where}
GROUP BY product_id ORDER BY {order} DESC, product_id LIMIT %(limit)s"""

TOP_PRODUCTS_ORDER = {"revenue": "net_revenue", "units": "units_sold - units_cancelled"}

SUMMARY_EVENTS_BY_TYPE = "SELECT event_type, uniqExact(event_id) FROM {db}.events GROUP BY event_type"

SUMMARY_EVENT_TIMES = "SELECT toString(min(occurred_at)), toString(max(occurred_at)), count() FROM {db}.events"

SUMMARY_NET_REVENUE = "SELECT toString(sum(gross_revenue) - sum(cancelled_revenue)) FROM {db}.sales_daily"

PRODUCT_SALES = """SELECT sum(units_sold), sum(units_cancelled), toString(sum(gross_revenue) - sum(cancelled_revenue)),
       toString(min(day)), toString(max(day)), sum(order_lines)
FROM {db}.sales_daily WHERE product_id = %(product_id)s"""


def sales_filters(start: date | None, end: date | None, country: str | None) -> tuple[str, dict]:
    """Return the WHERE condition on sales_daily for the optional filters, and its parameters."""
    conditions, params = ["1 = 1"], {}
    if start:
        conditions.append("day >= %(start)s")
        params["start"] = start
    if end:
        conditions.append("day <= %(end)s")
        params["end"] = end
    if country:
        conditions.append("country = %(country)s")
        params["country"] = country
    return " AND ".join(conditions), params


# Sentiment of one product per day, for one model version.
PRODUCT_SENTIMENT_DAILY = """SELECT day, sum(texts), sum(score_micros), sum(negative), sum(neutral), sum(positive)
FROM {db}.sentiment_daily
WHERE product_id = %(product_id)s AND model_version = %(model_version)s
GROUP BY day ORDER BY day"""
