"""Recommender input events built from the Online Retail month files.

The events come from ``RetailImporter``, so they follow the platform's import
rules (bad-debt and stock-correction lines skipped, cancellations as
``order.cancelled`` with positive quantities, guest orders without a customer).
They are turned into the plain dicts that a stream worker gets from the Avro
codec and sorted by event time, which keeps the source order within a minute.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from cie.importers.retail import RetailImporter, retail_files
from schemas.events import OrderCancelled, OrderPlaced, ProductUpserted

# The importer stamps received_at; the recommender never reads it, so a fixed
# value keeps the built events independent of the wall clock.
FIXED_RECEIVED_AT = datetime(2000, 1, 1, tzinfo=timezone.utc)
_DROPPED_FIELDS = {"event_id", "received_at", "source", "currency"}


def retail_events(folder: Path) -> list[dict]:
    """Return the order, cancellation and product events of every month file, sorted by ``occurred_at``."""
    importer = RetailImporter(received_at=FIXED_RECEIVED_AT)
    events: list[dict] = []
    for path in retail_files(folder):
        for event in importer.events_for_file(path):
            if isinstance(event, (OrderPlaced, OrderCancelled, ProductUpserted)):
                events.append(event.model_dump(exclude=_DROPPED_FIELDS))
    events.sort(key=lambda event: event["occurred_at"])
    return events
