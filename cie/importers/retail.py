"""Turn the Online Retail order lines (one CSV file per month) into events.

Rules, applied per line and counted in the summary:

- A line whose invoice starts with ``A`` is a bad-debt adjustment: skipped.
- A line of an ordinary invoice with a negative quantity, or with no customer
  and a zero price, is a stock correction ("damaged", "found", ...): skipped.
- A line of a ``C`` invoice with a positive quantity contradicts itself: skipped.
- Every other line belongs to an order (ordinary invoice) or a cancellation
  (``C`` invoice, quantities made positive). Lines without a customer form
  guest orders: they count in analytics but in no customer profile.
- Zero-price lines of a customer's order are free items and are kept.
- Exact duplicate lines are kept as separate lines: the source cannot tell a
  repeated scan from a copy, and dropping real sales would be worse.

Event ids are UUIDv5 of the source record, so importing the same file again
yields the same ids and every projection ignores the repeats.
"""

import csv
import gzip
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

from cie.catalog import is_service_code
from schemas.events import CustomerRegistered, EventBase, OrderCancelled, OrderPlaced, ProductUpserted

log = logging.getLogger(__name__)

SOURCE = "import:online_retail"
# Fixed namespace for UUIDv5 event ids of this importer; changing it would re-key every event.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1f5e-7a43-4f4e-9d55-0b7a3c2e9a10")
SOURCE_TIME_ZONE = ZoneInfo("Europe/London")  # InvoiceDate is local UK time
CURRENCY = "GBP"


def event_id(kind: str, key: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"online_retail:{kind}:{key}")


def parse_invoice_date(text: str) -> datetime:
    local = datetime.fromisoformat(text).replace(tzinfo=SOURCE_TIME_ZONE)
    return local.astimezone(timezone.utc)


@dataclass
class _Invoice:
    number: str
    customer_id: str | None
    country: str
    occurred_at: datetime
    lines: list[dict] = field(default_factory=list)  # OrderLine fields, validated with the order


@dataclass
class _ProductState:
    description: str | None = None
    unit_price: Decimal | None = None
    last_seen: datetime | None = None
    dirty: bool = False  # changed since the last upsert event


class RetailImporter:
    """Stateful converter: feed it the month files in name order.

    State across files: customers already registered and each product's last
    published description and price, so that a file's events depend only on the
    files before it and re-reading all files reproduces the same events.
    """

    def __init__(self, received_at: datetime | None = None):
        self.received_at = received_at or datetime.now(timezone.utc)
        self.customers: set[str] = set()
        self.products: dict[str, _ProductState] = {}
        self.counts: Counter[str] = Counter()  # summary counters, named in SUMMARY_LABELS

    def events_for_file(self, path: Path) -> list[EventBase]:
        """Return the events of one month file, in the order they are published."""
        invoices = self._read_invoices(path)
        events: list[EventBase] = []
        for invoice in invoices.values():
            events.extend(self._invoice_events(invoice))
        events.extend(self._product_events())
        return events

    def _read_invoices(self, path: Path) -> dict[str, _Invoice]:
        invoices: dict[str, _Invoice] = {}  # invoice number -> invoice, in order of first line
        seen_lines: set[tuple] = set()
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                self.counts["lines_read"] += 1
                line_key = tuple(row.values())
                if line_key in seen_lines:
                    self.counts["duplicate_lines_kept"] += 1
                seen_lines.add(line_key)
                self._read_line(row, invoices)
        return invoices

    def _read_line(self, row: dict[str, str], invoices: dict[str, _Invoice]) -> None:
        number = row["InvoiceNo"].strip()
        quantity = int(row["Quantity"])
        price = Decimal(row["UnitPrice"])
        customer_id = row["CustomerID"].strip() or None
        is_cancellation = number.startswith("C")

        if number.startswith("A") or price < 0:
            self.counts["bad_debt_lines_skipped"] += 1
            return
        if not is_cancellation and (quantity < 0 or (customer_id is None and price == 0)):
            self.counts["stock_correction_lines_skipped"] += 1
            return
        if is_cancellation and quantity >= 0:
            self.counts["malformed_cancellation_lines_skipped"] += 1
            return
        if quantity == 0:
            self.counts["zero_quantity_lines_skipped"] += 1
            return

        invoice = invoices.get(number)
        if invoice is None:
            invoice = _Invoice(number, customer_id, row["Country"].strip(), parse_invoice_date(row["InvoiceDate"]))
            invoices[number] = invoice

        product_id = row["StockCode"].strip()
        description = row["Description"].strip() or None
        # Plain dicts here: the order model validates all lines at once, which
        # is several times faster than building one model per line.
        invoice.lines.append({
            "line_number": len(invoice.lines) + 1,
            "product_id": product_id,
            "description": description,
            "quantity": abs(quantity),
            "unit_price": price,
        })

        if customer_id is None:
            self.counts["guest_lines"] += 1
        if price == 0:
            self.counts["zero_price_lines_kept"] += 1
        self.counts["cancellation_lines" if is_cancellation else "order_lines"] += 1
        if not is_cancellation:
            self._observe_product(product_id, description, price, invoice.occurred_at)

    def _observe_product(self, product_id: str, description: str | None, price: Decimal, seen_at: datetime) -> None:
        state = self.products.setdefault(product_id, _ProductState())
        if description and description != state.description:
            state.description = description
            state.dirty = True
        if price > 0 and price != state.unit_price:
            state.unit_price = price
            state.dirty = True
        if state.last_seen is None or seen_at >= state.last_seen:
            state.last_seen = seen_at

    def _invoice_events(self, invoice: _Invoice) -> Iterator[EventBase]:
        if invoice.customer_id is not None and invoice.customer_id not in self.customers:
            self.customers.add(invoice.customer_id)
            yield CustomerRegistered(
                event_id=event_id("customer", invoice.customer_id),
                occurred_at=invoice.occurred_at,
                received_at=self.received_at,
                customer_id=invoice.customer_id,
                source=SOURCE,
                country=invoice.country,
            )

        is_cancellation = invoice.number.startswith("C")
        event_class = OrderCancelled if is_cancellation else OrderPlaced
        self.counts["cancellations" if is_cancellation else "orders"] += 1
        if invoice.customer_id is None:
            self.counts["guest_orders" if not is_cancellation else "guest_cancellations"] += 1
        yield event_class(
            event_id=event_id("invoice", invoice.number),
            occurred_at=invoice.occurred_at,
            received_at=self.received_at,
            customer_id=invoice.customer_id,
            source=SOURCE,
            order_id=invoice.number,
            country=invoice.country,
            currency=CURRENCY,
            lines=invoice.lines,
        )

    def _product_events(self) -> Iterator[EventBase]:
        """Emit one upsert per product whose description or price changed in this file."""
        for product_id, state in self.products.items():
            if not state.dirty:
                continue
            state.dirty = False
            version = f"{product_id}:{state.last_seen.isoformat()}:{state.description}:{state.unit_price}"
            yield ProductUpserted(
                event_id=event_id("product", version),
                occurred_at=state.last_seen,
                received_at=self.received_at,
                source=SOURCE,
                product_id=product_id,
                description=state.description,
                unit_price=state.unit_price,
                currency=CURRENCY,
                is_service=is_service_code(product_id),
            )


def retail_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("transactions_*.csv.gz"))
    if not files:
        raise FileNotFoundError(f"no transactions_*.csv.gz files in {folder}; point --data-dir at the online_retail folder")
    return files
