"""Customer sentiment projection in PostgreSQL, fed by the sentiment-scored topic.

Idempotency: the claim-apply-offsets transaction of the profile projection.
Each customer's current sentiment is a time-decayed mean in event time with a
half-life of HALF_LIFE. The sums are kept decayed to the latest event time seen
(the anchor): a newer score decays the sums to its own time and adds itself
with weight 1; an older score (out of order) is added with its decayed weight.
All of a customer's scores are in one partition, so a replay folds them in the
same order and computes the same floating-point values.

Excerpts are stored sealed, as the events carry them, and not at all for a
customer who is erased by the time the score is applied. The profile projection
clears the excerpts already stored when it applies an erasure.
"""

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import psycopg

from cie.crypto.fields import seal_deterministic
from cie.crypto.keyring import KeyRing, erased_among
from projections import postgres
from projections.records import EventRecord, LogRecord, last_offsets

log = logging.getLogger(__name__)

PROJECTION = "sentiment"
HALF_LIFE = timedelta(days=30)
# A mean score splits [-1, 1] into thirds for its label.
MEAN_LABEL_CUT = 1 / 3


def label_for_mean(score: float) -> str:
    """Label of a customer's or product's mean score: negative below -1/3, positive above 1/3."""
    if score <= -MEAN_LABEL_CUT:
        return "negative"
    if score >= MEAN_LABEL_CUT:
        return "positive"
    return "neutral"


@dataclass(frozen=True)
class DecayedMean:
    anchor_at: datetime
    weighted_sum: float
    weight_total: float
    scored_count: int
    negative_count: int
    last_negative_at: datetime | None

    @property
    def score(self) -> float:
        return self.weighted_sum / self.weight_total

    def add(self, score: float, label: str, at: datetime) -> "DecayedMean":
        negative = label == "negative"
        last_negative_at = self.last_negative_at
        if negative and (last_negative_at is None or at > last_negative_at):
            last_negative_at = at
        common = {"scored_count": self.scored_count + 1, "negative_count": self.negative_count + negative,
                  "last_negative_at": last_negative_at}
        if at >= self.anchor_at:
            factor = 0.5 ** ((at - self.anchor_at) / HALF_LIFE)
            return replace(self, anchor_at=at, weighted_sum=self.weighted_sum * factor + score,
                           weight_total=self.weight_total * factor + 1.0, **common)
        weight = 0.5 ** ((self.anchor_at - at) / HALF_LIFE)
        return replace(self, weighted_sum=self.weighted_sum + score * weight,
                       weight_total=self.weight_total + weight, **common)

    @classmethod
    def first(cls, score: float, label: str, at: datetime) -> "DecayedMean":
        return cls(at, score, 1.0, 1, int(label == "negative"), at if label == "negative" else None)


class SentimentProjection:
    name = PROJECTION

    def __init__(self, conn: psycopg.Connection, keyring: KeyRing):
        self.conn = conn
        self.keyring = keyring  # reads keys in the live schema, also during a replay

    def close(self) -> None:
        self.conn.close()
        self.keyring.close()

    def apply(self, events: list[EventRecord], records: list[LogRecord]) -> int:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            # 1. Claim event ids.
            fresh = postgres.claim_new_events(cursor, PROJECTION, events, frozenset({"sentiment.scored"}))

            # 2. Store every scored text, with its excerpt sealed unless the customer is erased.
            excerpts = self._sealed_excerpts(cursor, fresh)
            if fresh:
                cursor.executemany(
                    """
                    INSERT INTO scored_texts (event_id, customer_id, model_name, model_version, source_event_id,
                        source_event_type, product_id, occurred_at, score, label, confidence, encrypted_excerpt)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (event_id) DO NOTHING
                    """,
                    [(e["event_id"], e["customer_id"], e["model_name"], e["model_version"], e["source_event_id"],
                      e["source_event_type"], e.get("product_id"), e["occurred_at"], e["score"], e["label"],
                      e["confidence"], excerpt) for e, excerpt in zip(fresh, excerpts)],
                )

            # 3. Fold the scores into each customer's decayed mean, in log order.
            keys = sorted({(e["customer_id"], e["model_version"]) for e in fresh})
            state = self._load(cursor, keys)
            for e in fresh:
                key = (e["customer_id"], e["model_version"])
                current = state.get(key)
                state[key] = (DecayedMean.first(e["score"], e["label"], e["occurred_at"]) if current is None
                              else current.add(e["score"], e["label"], e["occurred_at"]))
            self._store(cursor, {key: state[key] for key in keys})

            # 4. Offsets.
            postgres.store_offsets(cursor, PROJECTION, last_offsets(records))
        return len(fresh)

    def _sealed_excerpts(self, cursor: psycopg.Cursor, fresh: list[dict]) -> list[bytes | None]:
        """Return the excerpt to store for each event: None for erased customers, else the sealed bytes.

        Plain excerpts of events written before encryption are sealed here with a
        nonce derived from the event id, so a replay stores the same bytes.
        """
        erased = erased_among(cursor, self.keyring.schema, {e["customer_id"] for e in fresh})
        legacy = {e["customer_id"] for e in fresh if e.get("encrypted_excerpt") is None and e.get("excerpt")}
        keys = self.keyring.keys(legacy - erased, create=True)
        excerpts = []
        for e in fresh:
            customer = e["customer_id"]
            if customer in erased:
                excerpts.append(None)
            elif e.get("encrypted_excerpt") is not None:
                excerpts.append(e["encrypted_excerpt"])
            elif e.get("excerpt") and keys.get(customer) is not None:
                excerpts.append(seal_deterministic(keys[customer], "excerpt", e["excerpt"], str(e["event_id"])))
            else:
                excerpts.append(None)
        return excerpts

    @staticmethod
    def _load(cursor: psycopg.Cursor, keys: list[tuple[str, str]]) -> dict[tuple[str, str], DecayedMean]:
        if not keys:
            return {}
        cursor.execute(
            """
            SELECT customer_id, model_version, anchor_at, weighted_sum, weight_total, scored_count,
                   negative_count, last_negative_at
            FROM customer_sentiment
            WHERE (customer_id, model_version) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
            FOR UPDATE
            """,
            ([customer for customer, _ in keys], [version for _, version in keys]),
        )
        return {(row[0], row[1]): DecayedMean(*row[2:]) for row in cursor.fetchall()}

    @staticmethod
    def _store(cursor: psycopg.Cursor, state: dict[tuple[str, str], DecayedMean]) -> None:
        if not state:
            return
        cursor.executemany(
            """
            INSERT INTO customer_sentiment (customer_id, model_version, anchor_at, weighted_sum, weight_total,
                scored_count, negative_count, last_negative_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (customer_id, model_version) DO UPDATE SET
                anchor_at = excluded.anchor_at, weighted_sum = excluded.weighted_sum,
                weight_total = excluded.weight_total, scored_count = excluded.scored_count,
                negative_count = excluded.negative_count, last_negative_at = excluded.last_negative_at
            """,
            [(customer, version, mean.anchor_at, mean.weighted_sum, mean.weight_total, mean.scored_count,
              mean.negative_count, mean.last_negative_at) for (customer, version), mean in state.items()],
        )
