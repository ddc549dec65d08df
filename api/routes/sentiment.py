"""Sentiment of customers and products, and scoring of texts on request."""

import asyncio
import logging
import threading
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, StringConstraints

from api import queries
from api.formats import UtcDateTime
from api.problems import Problem, not_found
from api.routes.deps import get_stores
from api.stores import Stores
from cie.crypto.fields import DecryptionError, open_sealed
from projections.sentiment import HALF_LIFE, label_for_mean

log = logging.getLogger(__name__)

router = APIRouter(tags=["sentiment"])

TREND_WINDOW = timedelta(days=30)
MAX_ANALYZE_TEXTS = 100
MAX_ANALYZE_LENGTH = 5_000
Label = Literal["negative", "neutral", "positive"]

_model = None
_model_lock = threading.Lock()


def sentiment_model():
    """Load the product's sentiment model once per process, on first use."""
    global _model
    with _model_lock:
        if _model is None:
            from cie.sentiment.model import load_model

            _model = load_model()
        return _model


class ModelInfo(BaseModel):
    name: str
    version: str


class ScoredText(BaseModel):
    source_event_id: str
    source_event_type: str
    product_id: str | None
    occurred_at: UtcDateTime
    score: float
    label: Label
    confidence: float
    excerpt: str | None  # null once the customer is erased


class Trend(BaseModel):
    window_days: int
    window_end: UtcDateTime  # the customer's latest scored text; windows count back from it in event time
    mean_last_window: float | None
    mean_previous_window: float | None
    change: float | None  # mean_last_window - mean_previous_window


class CustomerSentiment(BaseModel):
    customer_id: str
    model: ModelInfo
    score: float | None  # time-decayed mean of the customer's scores, half-life in half_life_days
    label: Label | None
    half_life_days: float
    scored_count: int
    negative_count: int
    last_negative_at: UtcDateTime | None
    trend: Trend | None
    recent: list[ScoredText]


class LabelCounts(BaseModel):
    negative: int
    neutral: int
    positive: int


class DailySentiment(BaseModel):
    day: str
    texts: int
    mean_score: float
    labels: LabelCounts


class ProductSentiment(BaseModel):
    product_id: str
    model: ModelInfo
    texts: int
    mean_score: float | None
    labels: LabelCounts
    daily: list[DailySentiment]


AnalyzeText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ANALYZE_LENGTH)]


class AnalyzeRequest(BaseModel):
    texts: list[AnalyzeText] = Field(min_length=1, max_length=MAX_ANALYZE_TEXTS,
                                     description=f"1 to {MAX_ANALYZE_TEXTS} texts of up to {MAX_ANALYZE_LENGTH} characters")


class AnalyzeResult(BaseModel):
    score: float
    label: Label
    confidence: float


class AnalyzeResponse(BaseModel):
    model: ModelInfo
    results: list[AnalyzeResult]


@router.get("/v1/customers/{customer_id}/sentiment", response_model=CustomerSentiment,
            summary="A customer's current sentiment, trend and most recent scored texts")
def customer_sentiment(customer_id: Annotated[str, Path(min_length=1, max_length=128)],
                       recent: Annotated[int, Query(ge=0, le=50, description="How many recent texts")] = 5,
                       stores: Stores = Depends(get_stores)):
    model = sentiment_model()
    with stores.postgres.connection() as conn:
        known = conn.execute("SELECT 1 FROM customers WHERE customer_id = %s", (customer_id,)).fetchone()
        state = conn.execute(
            """SELECT weighted_sum / weight_total AS score, scored_count, negative_count, last_negative_at, anchor_at
               FROM customer_sentiment WHERE customer_id = %s AND model_version = %s""",
            (customer_id, model.version),
        ).fetchone()
        if known is None and state is None:
            raise not_found("customer", customer_id)
        texts = conn.execute(
            """SELECT source_event_id::text, source_event_type, product_id, occurred_at, score, label, confidence,
                      encrypted_excerpt
               FROM scored_texts WHERE customer_id = %s AND model_version = %s
               ORDER BY occurred_at DESC, event_id LIMIT %s""",
            (customer_id, model.version, recent),
        ).fetchall()
        trend = None
        if state is not None:
            window_end = state["anchor_at"]
            means = conn.execute(
                """SELECT avg(score) FILTER (WHERE occurred_at > %(end)s - %(window)s) AS last,
                          avg(score) FILTER (WHERE occurred_at <= %(end)s - %(window)s) AS previous
                   FROM scored_texts
                   WHERE customer_id = %(customer)s AND model_version = %(version)s
                     AND occurred_at > %(end)s - 2 * %(window)s""",
                {"customer": customer_id, "version": model.version, "end": window_end, "window": TREND_WINDOW},
            ).fetchone()
            last, previous = means["last"], means["previous"]
            trend = {"window_days": TREND_WINDOW.days, "window_end": window_end, "mean_last_window": last,
                     "mean_previous_window": previous,
                     "change": None if last is None or previous is None else last - previous}
    return {
        "customer_id": customer_id,
        "model": {"name": model.name, "version": model.version},
        "score": state["score"] if state else None,
        "label": label_for_mean(state["score"]) if state else None,
        "half_life_days": HALF_LIFE / timedelta(days=1),
        "scored_count": state["scored_count"] if state else 0,
        "negative_count": state["negative_count"] if state else 0,
        "last_negative_at": state["last_negative_at"] if state else None,
        "trend": trend,
        "recent": open_excerpts(stores, customer_id, texts),
    }


def open_excerpts(stores: Stores, customer_id: str, rows: list[dict]) -> list[dict]:
    """Decrypt the sealed excerpts of one customer's scored texts; null for an erased customer."""
    key = stores.keyring.keys([customer_id]).get(customer_id) if rows else None
    opened = []
    for row in rows:
        sealed = row.pop("encrypted_excerpt")
        excerpt = None
        if sealed is not None and key is not None:
            try:
                excerpt = open_sealed(key, "excerpt", sealed)
            except DecryptionError:
                log.error("excerpt of scored text %s of customer %s does not decrypt; serving it as null",
                          row["source_event_id"], customer_id)
        opened.append({**row, "excerpt": excerpt})
    return opened


@router.get("/v1/products/{product_id}/sentiment", response_model=ProductSentiment,
            summary="Sentiment of the texts written about a product, overall and per day")
def product_sentiment(product_id: Annotated[str, Path(min_length=1, max_length=128)],
                      days: Annotated[int, Query(ge=0, le=366, description="How many of the latest days to list")] = 30,
                      stores: Stores = Depends(get_stores)):
    model = sentiment_model()
    database = stores.settings.clickhouse_database
    with stores.clickhouse() as client:
        rows = client.execute(queries.PRODUCT_SENTIMENT_DAILY.format(db=database),
                              {"product_id": product_id, "model_version": model.version})
    if not rows:
        with stores.postgres.connection() as conn:
            if conn.execute("SELECT 1 FROM products WHERE product_id = %s", (product_id,)).fetchone() is None:
                raise not_found("product", product_id)
    daily = [{"day": str(day), "texts": texts, "mean_score": score_micros / texts / 1e6,
              "labels": {"negative": negative, "neutral": neutral, "positive": positive}}
             for day, texts, score_micros, negative, neutral, positive in rows]
    texts = sum(row[1] for row in rows)
    return {
        "product_id": product_id,
        "model": {"name": model.name, "version": model.version},
        "texts": texts,
        "mean_score": sum(row[2] for row in rows) / texts / 1e6 if texts else None,
        "labels": {"negative": sum(row[3] for row in rows), "neutral": sum(row[4] for row in rows),
                   "positive": sum(row[5] for row in rows)},
        "daily": daily[-days:] if days else [],
    }


@router.post("/v1/sentiment:analyze", response_model=AnalyzeResponse,
             summary=f"Score up to {MAX_ANALYZE_TEXTS} texts without storing them")
async def analyze(request: AnalyzeRequest):
    model = await asyncio.to_thread(sentiment_model)
    try:
        scores = await asyncio.to_thread(model.score_batch, request.texts)
    except ValueError as error:
        raise Problem(422, "Invalid request", str(error), "validation",
                      errors=[{"field": "texts", "location": "body", "message": str(error)}]) from error
    return {"model": {"name": model.name, "version": model.version},
            "results": [{"score": s.score, "label": s.label, "confidence": s.confidence} for s in scores]}
