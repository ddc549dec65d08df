"""Totals computed straight from the retail CSV files, independently of the importer.

The tests compare projections with these numbers. The rules are restated here
from the documented import rules, on purpose without importing the product code.
"""

import csv
import gzip
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


@dataclass
class CustomerTruth:
    orders: set = field(default_factory=set)
    cancellations: set = field(default_factory=set)
    units_purchased: int = 0
    units_cancelled: int = 0
    gross_revenue: Decimal = Decimal(0)
    cancelled_revenue: Decimal = Decimal(0)
    products: set = field(default_factory=set)
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None


@dataclass
class RetailTruth:
    customers: dict[str, CustomerTruth]
    net_revenue_by_country: dict[str, Decimal]  # includes guest orders
    units_sold_by_product: dict[str, int]


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=LONDON).astimezone(timezone.utc)


def compute(folder: Path) -> RetailTruth:
    customers: dict[str, CustomerTruth] = defaultdict(CustomerTruth)
    by_country: dict[str, Decimal] = defaultdict(Decimal)
    units: dict[str, int] = defaultdict(int)
    for path in sorted(folder.glob("transactions_*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                invoice, customer = row["InvoiceNo"], row["CustomerID"]
                quantity, price = int(row["Quantity"]), Decimal(row["UnitPrice"])
                product = row["StockCode"].strip()
                if invoice.startswith("A") or price < 0:
                    continue
                cancelled = invoice.startswith("C")
                if cancelled and quantity > 0:
                    continue
                if not cancelled and (quantity <= 0 or (not customer and price == 0)):
                    continue

                amount = quantity * price  # negative for cancellations
                by_country[row["Country"].strip()] += amount
                if not cancelled:
                    units[product] += quantity
                if not customer:
                    continue
                truth = customers[customer]
                if cancelled:
                    truth.cancellations.add(invoice)
                    truth.units_cancelled -= quantity
                    truth.cancelled_revenue -= amount
                else:
                    at = _utc(row["InvoiceDate"])
                    truth.orders.add(invoice)
                    truth.units_purchased += quantity
                    truth.gross_revenue += amount
                    truth.products.add(product)
                    truth.first_order_at = min(filter(None, [truth.first_order_at, at]))
                    truth.last_order_at = max(filter(None, [truth.last_order_at, at]))
    return RetailTruth(dict(customers), dict(by_country), dict(units))
