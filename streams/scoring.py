"""Score every text a customer writes and publish sentiment.scored events.

The scorer is a stream processor, not a projection: its output is events on
the sentiment-scored topic, and the sentiment projections build on those. Each
output event id is UUIDv5 of the source event id and the model version, so a
batch re-read after a crash yields the same events and the projections count
them once. A batch is acknowledged only after Kafka has acknowledged its output.
"""

import logging
import uuid
from datetime import datetime, timezone

from cie.kafka import EventPublisher
from projections.deadletter import DeadLetterSink
from projections.records import LogRecord, decode_records
from schemas.events import TEXT_EVENT_TYPES

log = logging.getLogger(__name__)

SCORE_ID_NAMESPACE = uuid.UUID("5d3c7a0e-81c4-4c9e-a2e4-0f6d2b9a4e11")  # fixed: changing it re-keys every score
EXCERPT_LENGTH = 280
NAME = "sentiment-scorer"


def score_event_id(source_event_id: str, model_name: str, model_version: str) -> uuid.UUID:
    return uuid.uuid5(SCORE_ID_NAMESPACE, f"{source_event_id}:{model_name}:{model_version}")


def scored_text(event: dict) -> str:
    """Return the text of a review (title and body) or support message that the model scores."""
    title = event.get("title")
    return f"{title}. {event['text']}" if title else event["text"]


class SentimentScorer:
    def __init__(self, model, publisher: EventPublisher, dead_letters: DeadLetterSink):
        self.model = model  # cie.sentiment.model.SentimentModel
        self.publisher = publisher
        self.dead_letters = dead_letters

    def process(self, records: list[LogRecord]) -> int:
        """Score the text events of a batch, publish their scores and wait for Kafka; return how many."""
        # 1. Decode; records no one can read were already dead-lettered by the projections.
        events, _ = decode_records(records)
        texts = [item for item in events if item.event_type in TEXT_EVENT_TYPES]
        if not texts:
            return 0

        # 2. Score in one batch. A model error on this data must not stop the stream,
        #    so the batch's text events are dead-lettered with the error instead.
        try:
            scores = self.model.score_batch([scored_text(item.event) for item in texts])
        except Exception as error:
            log.error("model %s %s failed on a batch of %d texts from %s[%d]@%d: %r",
                      self.model.name, self.model.version, len(texts), texts[0].record.topic,
                      texts[0].record.partition, texts[0].record.offset, error)
            for item in texts:
                self.dead_letters.send(item.record, f"scoring failed: {error!r}", NAME)
            self.dead_letters.flush()
            return 0

        # 3. Publish and wait for every acknowledgement before the batch is acknowledged.
        received_at = datetime.now(timezone.utc)
        for item, score in zip(texts, scores):
            event = item.event
            self.publisher.publish({
                "event_id": str(score_event_id(item.event_id, self.model.name, self.model.version)),
                "event_type": "sentiment.scored",
                "occurred_at": event["occurred_at"],
                "received_at": received_at,
                "customer_id": event["customer_id"],
                "source": NAME,
                "source_event_id": item.event_id,
                "source_event_type": item.event_type,
                "product_id": event.get("product_id"),
                "score": float(score.score),
                "label": score.label,
                "confidence": float(score.confidence),
                "model_name": self.model.name,
                "model_version": self.model.version,
                "excerpt": event["text"][:EXCERPT_LENGTH],
            })
        self.publisher.flush()
        return len(texts)
