"""Topic names and the rule that routes each event to its topic and key."""

from dataclasses import dataclass
from typing import Any

from cie.settings import Settings

PRODUCT_EVENT_TYPES = frozenset({"product.upserted"})
# Derived events live on topics of their own, so that rebuilding them never needs themselves.
SENTIMENT_EVENT_TYPES = frozenset({"sentiment.scored"})


@dataclass(frozen=True)
class Topics:
    customer_events: str  # keyed by customer_id (order_id for guest orders); one customer stays in one partition
    product_events: str  # keyed by product_id
    sentiment_scored: str  # derived sentiment.scored events, keyed by customer_id
    dead_letter: str  # records no projection could read, with the reason in headers
    import_ledger: str  # compacted; key "<importer>:<file>:<sha256>", value the file's summary as JSON

    @classmethod
    def from_settings(cls, settings: Settings) -> "Topics":
        prefix = settings.topic_prefix
        return cls(
            customer_events=f"{prefix}.customer-events",
            product_events=f"{prefix}.product-events",
            sentiment_scored=f"{prefix}.sentiment-scored",
            dead_letter=f"{prefix}.dead-letter",
            import_ledger=f"{prefix}.import-ledger",
        )

    @property
    def event_topics(self) -> list[str]:
        """Topics that projections consume, in the order a replay reads them."""
        return [self.product_events, self.customer_events, self.sentiment_scored]


def route_event(topics: Topics, record: dict[str, Any]) -> tuple[str, bytes]:
    """Return the topic and message key of an event record."""
    if record["event_type"] in PRODUCT_EVENT_TYPES:
        return topics.product_events, record["product_id"].encode()
    if record["event_type"] in SENTIMENT_EVENT_TYPES:
        return topics.sentiment_scored, record["customer_id"].encode()
    if record.get("customer_id"):
        return topics.customer_events, record["customer_id"].encode()
    if record.get("order_id"):
        return topics.customer_events, f"order:{record['order_id']}".encode()
    raise ValueError(f"event {record['event_id']} of type {record['event_type']} has neither customer_id nor order_id to key it by")
