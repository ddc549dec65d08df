"""The retail sample through the real Kafka, worker, PostgreSQL and ClickHouse."""

from decimal import Decimal

import psycopg
import pytest

from cie.kafka import end_offsets
from projections import clickhouse, postgres
from projections.checksums import checksum
from projections.replay import replay_and_compare
from tests.conftest import RETAIL_SAMPLE
from tests.retail_truth import compute

TRUTH = compute(RETAIL_SAMPLE)


def _profiles(space) -> dict[str, dict]:
    with postgres.connect(space.settings, row_factory=psycopg.rows.dict_row) as conn:
        return {row["customer_id"]: row for row in conn.execute("SELECT * FROM customers")}


def _checksums(space) -> dict[str, str]:
    client = clickhouse.client(space.settings)
    return {
        name: checksum(space.settings, name, space.settings.postgres_schema, space.settings.clickhouse_database, client)
        for name in ("profiles", "catalog", "analytics")
    }


def test_every_customer_has_a_profile(retail_pipeline):
    assert set(_profiles(retail_pipeline)) == set(TRUTH.customers)


@pytest.mark.parametrize("column, expected", [
    ("order_count", lambda truth: len(truth.orders)),
    ("cancellation_count", lambda truth: len(truth.cancellations)),
    ("units_purchased", lambda truth: truth.units_purchased),
    ("units_cancelled", lambda truth: truth.units_cancelled),
    ("gross_revenue", lambda truth: truth.gross_revenue),
    ("cancelled_revenue", lambda truth: truth.cancelled_revenue),
    ("net_revenue", lambda truth: truth.gross_revenue - truth.cancelled_revenue),
    ("distinct_products", lambda truth: len(truth.products)),
    ("first_order_at", lambda truth: truth.first_order_at),
    ("last_order_at", lambda truth: truth.last_order_at),
])
def test_profile_totals_match_csv(retail_pipeline, column, expected):
    profiles = _profiles(retail_pipeline)
    wrong = {
        customer_id: (profiles[customer_id][column], expected(truth))
        for customer_id, truth in TRUTH.customers.items()
        if profiles[customer_id][column] != expected(truth)
    }
    assert wrong == {}


def test_average_order_value_is_net_over_orders(retail_pipeline):
    profile = _profiles(retail_pipeline)["12347"]
    truth = TRUTH.customers["12347"]
    expected = ((truth.gross_revenue - truth.cancelled_revenue) / len(truth.orders)).quantize(Decimal("0.001"))
    assert profile["average_order_value"] == expected


def test_revenue_by_country_matches_csv(retail_pipeline):
    client = clickhouse.client(retail_pipeline.settings)
    rows = client.execute(
        f"SELECT country, sum(gross_revenue) - sum(cancelled_revenue) "
        f"FROM {retail_pipeline.settings.clickhouse_database}.sales_daily GROUP BY country"
    )
    assert {country: Decimal(value) for country, value in rows} == TRUTH.net_revenue_by_country


def test_units_by_product_match_csv(retail_pipeline):
    client = clickhouse.client(retail_pipeline.settings)
    rows = client.execute(
        f"SELECT product_id, sum(units_sold) FROM {retail_pipeline.settings.clickhouse_database}.sales_daily "
        "GROUP BY product_id HAVING sum(units_sold) > 0"
    )
    assert dict(rows) == TRUTH.units_sold_by_product


def test_second_import_publishes_nothing(retail_pipeline):
    result = retail_pipeline.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "events published: 0 " in result.stdout


def test_republishing_changes_no_total(retail_pipeline):
    space = retail_pipeline
    before = _checksums(space)
    topics = space.topics.event_topics
    records_before = sum(end_offsets(space.settings, topics).values())

    result = space.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE), "--force")
    assert result.returncode == 0, result.stderr
    space.wait_caught_up()

    assert sum(end_offsets(space.settings, topics).values()) == 2 * records_before
    assert _checksums(space) == before


def test_replay_rebuilds_the_live_state(retail_pipeline):
    report = replay_and_compare(retail_pipeline.settings, progress=False, live_timeout=120)
    assert report.checksums["profiles"][0] == report.checksums["profiles"][1]
    assert report.checksums["catalog"][0] == report.checksums["catalog"][1]
    assert report.checksums["analytics"][0] == report.checksums["analytics"][1]
