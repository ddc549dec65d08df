"""Turn the public product-review data sets into review events.

Two sources, each a CSV file:

- Amazon Fine Food Reviews: ``UserId`` is the customer id, ``ProductId`` the
  product, ``Score`` the rating, ``Time`` (Unix seconds, midnight UTC) the event
  time, ``Summary`` the title and ``Text`` the body (with HTML, removed here).
  The same review posted twice (same user, product, day and text, sometimes
  with another title) gets one event id, so projections count it once; the
  first copy in the file is kept.
- Datafiniti Consumer Reviews of Amazon Products: ``reviews.username`` is only a
  display name ("Mike" is many people), so the customer id is
  ``datafiniti:<username>``, a weak key. Rows that are exact copies of another
  row get one event id. Rows without a username are skipped. One product
  upsert per product carries its name.
"""

import csv
import hashlib
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from cie.sentiment.text import clean_text
from schemas.events import EventBase, ProductUpserted, ReviewSubmitted

EVENT_ID_NAMESPACE = uuid.UUID("0b6f3e1e-2d0a-4c55-8f3b-6a3f1e9c7d21")  # fixed: changing it re-keys every event
FINE_FOOD = "amazon_fine_food_reviews"
DATAFINITI = "datafiniti_amazon_reviews"


def _event_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, ":".join(parts))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ReviewImporter:
    def __init__(self, received_at: datetime | None = None):
        self.received_at = received_at or datetime.now(timezone.utc)
        self.counts: Counter[str] = Counter()  # summary counters
        self._event_ids: set[uuid.UUID] = set()

    def events_for_file(self, path: Path) -> list[EventBase]:
        if path.parent.name == FINE_FOOD:
            return self._fine_food(path)
        if path.parent.name == DATAFINITI:
            return self._datafiniti(path)
        raise ValueError(f"no review importer for {path}; expected a file under {FINE_FOOD}/ or {DATAFINITI}/")

    def _keep(self, event_id: uuid.UUID) -> bool:
        if event_id in self._event_ids:
            self.counts["duplicate_reviews_merged"] += 1
            return False
        self._event_ids.add(event_id)
        return True

    def _fine_food(self, path: Path) -> list[EventBase]:
        events: list[EventBase] = []
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                self.counts["fine_food_rows"] += 1
                text = clean_text(row["Text"])
                occurred_at = datetime.fromtimestamp(int(row["Time"]), timezone.utc)
                event_id = _event_id(FINE_FOOD, row["UserId"], row["ProductId"], row["Time"], _digest(text))
                if not text:
                    self.counts["empty_reviews_skipped"] += 1
                    continue
                if not self._keep(event_id):
                    continue
                events.append(ReviewSubmitted(
                    event_id=event_id, occurred_at=occurred_at, received_at=self.received_at,
                    customer_id=row["UserId"], source=f"import:{FINE_FOOD}", review_id=f"fine_food:{row['Id']}",
                    product_id=row["ProductId"], rating=int(row["Score"]),
                    title=clean_text(row["Summary"]) or None, text=text,
                ))
        return events

    def _datafiniti(self, path: Path) -> list[EventBase]:
        events: list[EventBase] = []
        products: dict[str, tuple[datetime, str]] = {}  # asin -> (latest review time, product name)
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                self.counts["datafiniti_rows"] += 1
                username = row["reviews.username"].strip()
                text = clean_text(row["reviews.text"])
                if not username or not text:
                    self.counts["reviews_without_user_or_text_skipped"] += 1
                    continue
                event_id = _event_id(DATAFINITI, _digest("\x1f".join(row.values())))
                if not self._keep(event_id):
                    continue
                occurred_at = datetime.fromisoformat(row["reviews.date"].replace("Z", "+00:00"))
                product_id = row["asins"].strip()
                events.append(ReviewSubmitted(
                    event_id=event_id, occurred_at=occurred_at, received_at=self.received_at,
                    customer_id=f"datafiniti:{username}", source=f"import:{DATAFINITI}",
                    review_id=f"datafiniti:{event_id.hex[:16]}", product_id=product_id,
                    rating=int(float(row["reviews.rating"])), title=clean_text(row["reviews.title"]) or None,
                    text=text,
                ))
                if product_id not in products or occurred_at >= products[product_id][0]:
                    products[product_id] = (occurred_at, clean_text(row["name"]))
        for product_id, (seen_at, name) in sorted(products.items()):
            events.append(ProductUpserted(
                event_id=_event_id(DATAFINITI, "product", product_id, name), occurred_at=seen_at,
                received_at=self.received_at, source=f"import:{DATAFINITI}", product_id=product_id,
                description=name, currency="USD",
            ))
        return events


def review_files(data_root: Path) -> list[Path]:
    files = [data_root / FINE_FOOD / "reviews.csv", data_root / DATAFINITI / "reviews.csv"]
    missing = [str(path) for path in files if not path.exists()]
    if missing:
        raise FileNotFoundError(f"missing review files: {', '.join(missing)}; point --data-dir at the shared data folder")
    return files
