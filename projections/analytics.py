"""Analytics projection in ClickHouse: event and order-line facts, daily sales aggregates.

ClickHouse has no transactions, so idempotency comes from look-ups before each
insert. Only one worker writes a partition at a time, and an event id always
maps to the same partition (its key is derived from the event), so the look-up
cannot race with another writer:

1. Look up which of the batch's order events already have lines in order_lines
   (by day and event_id, the table's primary key prefix) and insert lines only
   for the others. The materialized view adds the same rows to sales_daily, in
   the same INSERT.
2. Look up which event ids are already in events and insert the others.
3. Insert the batch's highest offsets into projection_offsets.

A crash between steps leaves work that the redelivered batch completes without
repeating what was done. Both fact tables are ReplacingMergeTree on their keys
as a second guard, but sales_daily sums what it receives, so step 1 is what
keeps revenue exact.

NOTE: a ClickHouse server crash in the middle of one INSERT that spans several
months can keep some months' parts and lose others; that batch then needs a
replay to be exact.
"""

import logging
from datetime import date, datetime, timezone
from typing import Any

from clickhouse_driver import Client

from projections.records import EventRecord, LogRecord, last_offsets

log = logging.getLogger(__name__)

PROJECTION = "analytics"
ORDER_EVENT_TYPES = ("order.placed", "order.cancelled")
SCORE_EVENT_TYPE = "sentiment.scored"


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()


class AnalyticsProjection:
    name = PROJECTION

    def __init__(self, client: Client, database: str):
        self.client = client
        self.database = database

    def close(self) -> None:
        self.client.disconnect()

    def apply(self, events: list[EventRecord], records: list[LogRecord]) -> int:
        first_seen: dict[str, EventRecord] = {}
        for item in events:
            first_seen.setdefault(item.event_id, item)

        # 1. Order lines, for order events that have none stored yet.
        orders = [item for item in first_seen.values() if item.event_type in ORDER_EVENT_TYPES]
        if orders:
            stored = self._stored_ids("order_lines", orders)
            rows = [row for item in orders if item.event_id not in stored for row in self._line_rows(item)]
            if rows:
                self.client.execute(f"INSERT INTO {self.database}.order_lines VALUES", rows)

        # 1b. Sentiment scores, the same way (the view feeds sentiment_daily).
        scores = [item for item in first_seen.values() if item.event_type == SCORE_EVENT_TYPE]
        if scores:
            stored = self._stored_ids("sentiment_scores", scores)
            rows = [self._score_row(item) for item in scores if item.event_id not in stored]
            if rows:
                self.client.execute(f"INSERT INTO {self.database}.sentiment_scores VALUES", rows)

        # 2. One fact row per event.
        stored_events = self._stored_events(list(first_seen))
        fresh = [item for item_id, item in first_seen.items() if item_id not in stored_events]
        if fresh:
            self.client.execute(f"INSERT INTO {self.database}.events VALUES", [self._event_row(item) for item in fresh])

        # 3. Offsets, for lag and for replays that resume.
        offsets = last_offsets(records)
        if offsets:
            self.client.execute(
                f"INSERT INTO {self.database}.projection_offsets VALUES",
                [(PROJECTION, topic, partition, offset) for (topic, partition), offset in offsets.items()],
            )
        return len(fresh)

    def _stored_ids(self, table: str, items: list[EventRecord]) -> set[str]:
        """Return which events already have rows in a fact table ordered by (day, event_id)."""
        days = sorted({_utc_day(item.event["occurred_at"]) for item in items})
        ids = [item.event_id for item in items]
        rows = self.client.execute(
            f"SELECT DISTINCT toString(event_id) FROM {self.database}.{table} "
            "WHERE day IN %(days)s AND event_id IN %(ids)s",
            {"days": tuple(days), "ids": tuple(ids)},
        )
        return {row[0] for row in rows}

    def _stored_events(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = self.client.execute(
            f"SELECT toString(event_id) FROM {self.database}.events WHERE event_id IN %(ids)s",
            {"ids": tuple(ids)},
        )
        return {row[0] for row in rows}

    @staticmethod
    def _line_rows(item: EventRecord) -> list[tuple[Any, ...]]:
        event = item.event
        sign = -1 if event["event_type"] == "order.cancelled" else 1
        occurred_at = event["occurred_at"]
        rows = []
        for line in event["lines"]:
            quantity = sign * line["quantity"]
            rows.append((
                event["event_id"], event["event_type"], event["order_id"], event.get("customer_id") or "",
                event.get("country") or "", occurred_at, _utc_day(occurred_at), line["line_number"],
                line["product_id"], quantity, line["unit_price"], quantity * line["unit_price"],
            ))
        return rows

    @staticmethod
    def _score_row(item: EventRecord) -> tuple[Any, ...]:
        event = item.event
        return (
            event["event_id"], event["customer_id"], event.get("product_id") or "", event["source_event_type"],
            event["occurred_at"], _utc_day(event["occurred_at"]), event["score"], event["label"],
            event["confidence"], event["model_name"], event["model_version"],
        )

    @staticmethod
    def _event_row(item: EventRecord) -> tuple[Any, ...]:
        event = item.event
        return (
            event["event_id"], event["event_type"], event["occurred_at"], event.get("customer_id") or "",
            event["source"], item.record.topic, item.record.partition, item.record.offset,
        )


def applied_offsets(client: Client, database: str) -> dict[tuple[str, int], int]:
    rows = client.execute(
        f"SELECT topic, partition, max(offset) FROM {database}.projection_offsets "
        "WHERE projection = %(projection)s GROUP BY topic, partition",
        {"projection": PROJECTION},
    )
    return {(topic, partition): offset for topic, partition, offset in rows}
