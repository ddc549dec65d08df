"""The retail importer's events and counts, without Kafka."""

import pytest

from cie.importers.retail import RetailImporter, retail_files
from tests.conftest import RETAIL_SAMPLE, SHARED_RETAIL
from tests.retail_truth import compute


def _import(folder):
    importer = RetailImporter()
    events = [event for path in retail_files(folder) for event in importer.events_for_file(path)]
    return importer, events


@pytest.fixture(scope="module")
def full_import():
    if not SHARED_RETAIL.exists():
        pytest.fail(f"the shared retail data is missing at {SHARED_RETAIL}")
    return _import(SHARED_RETAIL)


def test_full_data_counts_match_its_readme(full_import):
    importer, _ = full_import
    # Figures published with the data set (shared data README).
    assert importer.counts["lines_read"] == 1_044_847
    assert len(importer.customers) == 5_942
    assert importer.counts["duplicate_lines_kept"] == 11_812


def test_full_data_lines_are_all_accounted_for(full_import):
    counts = full_import[0].counts
    kept = counts["order_lines"] + counts["cancellation_lines"]
    skipped = sum(value for name, value in counts.items() if name.endswith("_skipped"))
    assert kept + skipped == counts["lines_read"]


def test_one_registration_per_customer(full_import):
    _, events = full_import
    registered = [event.customer_id for event in events if event.event_type == "customer.registered"]
    assert len(registered) == len(set(registered)) == 5_942


def test_sample_orders_match_csv():
    importer, events = _import(RETAIL_SAMPLE)
    truth = compute(RETAIL_SAMPLE)
    placed = {event.order_id for event in events if event.event_type == "order.placed" and event.customer_id}
    cancelled = {event.order_id for event in events if event.event_type == "order.cancelled" and event.customer_id}
    assert placed == set().union(*(t.orders for t in truth.customers.values()))
    assert cancelled == set().union(*(t.cancellations for t in truth.customers.values()))


def test_sample_skips_each_kind_of_bad_line():
    importer, _ = _import(RETAIL_SAMPLE)
    assert importer.counts["stock_correction_lines_skipped"] >= 30
    assert importer.counts["bad_debt_lines_skipped"] >= 1
    assert importer.counts["malformed_cancellation_lines_skipped"] == 1


def test_event_ids_repeat_across_runs():
    _, first = _import(RETAIL_SAMPLE)
    _, second = _import(RETAIL_SAMPLE)
    assert [event.event_id for event in first] == [event.event_id for event in second]


def test_cancellation_quantities_are_positive():
    _, events = _import(RETAIL_SAMPLE)
    quantities = [line.quantity for event in events if event.event_type == "order.cancelled" for line in event.lines]
    assert quantities
    assert min(quantities) > 0


def test_service_codes_are_flagged():
    _, events = _import(RETAIL_SAMPLE)
    flags = {event.product_id: event.is_service for event in events if event.event_type == "product.upserted"}
    assert flags.get("POST") is True
    assert flags.get("85123A", False) is False
