"""Score every text a customer writes and publish sentiment.scored events.

The scorer is a stream processor, not a projection: its output is events on
the sentiment-scored topic, and the sentiment projections build on those. Each
output event id is UUIDv5 of the source event id and the model version, so a
batch re-read after a crash yields the same events and the projections count
them once. A batch is acknowledged only after Kafka has acknowledged its output.

Texts arrive sealed under the customer's data key. The scorer opens them in
memory only, and seals the excerpt it publishes under the same key. A text whose
key is destroyed (the customer was erased) or that does not open is skipped
with a log line naming the event id: it gets no score, and the stream goes on.
"""

import logging
import uuid
from datetime import datetime, timezone

from cie.crypto.events import open_text
from cie.crypto.fields import DataKey, DecryptionError, seal
from cie.crypto.keyring import KeyRing
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


def scored_text(title: str | None, text: str) -> str:
    """Return the text of a review (title and body) or support message that the model scores."""
    return f"{title}. {text}" if title else text


class SentimentScorer:
    def __init__(self, model, publisher: EventPublisher, dead_letters: DeadLetterSink, keyring: KeyRing):
        self.model = model  # cie.sentiment.model.SentimentModel
        self.publisher = publisher
        self.dead_letters = dead_letters
        self.keyring = keyring

    def _open_texts(self, texts: list) -> list[tuple[object, DataKey, str, str | None]]:
        """Return (event record, data key, text, title) of each text that can be opened; log the others by event id."""
        # Events written before encryption carry plain text, and their excerpt is sealed under a new key.
        keys = self.keyring.keys({item.event["customer_id"] for item in texts}, create=True)
        opened, erased, unreadable = [], [], []
        for item in texts:
            key = keys.get(item.event["customer_id"])
            if key is None:
                erased.append(item.event_id)
                continue
            try:
                opened.append((item, key, open_text(item.event, "text", key), open_text(item.event, "title", key)))
            except DecryptionError:
                unreadable.append(item.event_id)
        if erased:
            log.warning("skipped %d texts of erased customers, no score published; event ids: %s",
                        len(erased), ", ".join(erased[:20]))
        if unreadable:
            log.warning("skipped %d texts that do not decrypt under their customer's data key; event ids: %s",
                        len(unreadable), ", ".join(unreadable[:20]))
        return opened

    def process(self, records: list[LogRecord]) -> int:
        """Score the text events of a batch, publish their scores and wait for Kafka; return how many."""
        # 1. Decode; records no one can read were already dead-lettered by the projections.
        events, _ = decode_records(records)
        erased_now = [item.event["customer_id"] for item in events if item.event_type == "customer.erased"]
        self.keyring.forget(erased_now)
        texts = self._open_texts([item for item in events if item.event_type in TEXT_EVENT_TYPES])
        if not texts:
            return 0

        # 2. Score in one batch. A model error on this data must not stop the stream,
        #    so the batch's text events are dead-lettered with the error instead.
        try:
            scores = self.model.score_batch([scored_text(title, text) for _, _, text, title in texts])
        except Exception as error:
            first = texts[0][0].record
            log.error("model %s %s failed on a batch of %d texts from %s[%d]@%d: %s",
                      self.model.name, self.model.version, len(texts), first.topic, first.partition, first.offset,
                      type(error).__name__)
            for item, _, _, _ in texts:
                self.dead_letters.send(item.record, f"scoring failed: {error!r}", NAME)
            self.dead_letters.flush()
            return 0

        # 3. Publish and wait for every acknowledgement before the batch is acknowledged.
        received_at = datetime.now(timezone.utc)
        for (item, key, text, _), score in zip(texts, scores):
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
                "excerpt": None,
                "encrypted_excerpt": seal(key, "excerpt", text[:EXCERPT_LENGTH]),
            })
        self.publisher.flush()
        return len(texts)
