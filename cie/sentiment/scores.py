"""The result type that every sentiment model returns, and how class probabilities map to it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """Sentiment of one text.

    ``score`` is in [-1, 1], from most negative to most positive. ``label`` is
    "negative", "neutral" or "positive". ``confidence`` is in [0, 1]. For the
    trained models it is the probability of ``label``.
    """

    score: float
    label: str
    confidence: float


def empty_text_score() -> SentimentScore:
    """Return the result for a text that is empty or only whitespace and markup after cleaning.

    Such a text carries no sentiment, so it is neutral with score 0 and
    confidence 0, which lets callers filter it out. No model is run on it.
    """
    return SentimentScore(score=0.0, label="neutral", confidence=0.0)


def scores_from_probabilities(probabilities: np.ndarray) -> list[SentimentScore]:
    """Convert rows of (negative, neutral, positive) probabilities to SentimentScores.

    The score is P(positive) - P(negative), the label the most probable class
    and the confidence its probability. So a positive label always has a
    score above 0, a negative label a score below 0, and a neutral label a
    score strictly between -0.5 and 0.5. On an exact tie between the negative
    and positive probabilities the label is neutral.
    """
    results = []
    for negative, neutral, positive in np.asarray(probabilities, dtype=np.float64):
        score = positive - negative
        if neutral >= negative and neutral >= positive or score == 0.0:
            label, confidence = "neutral", neutral
        elif positive > negative:
            label, confidence = "positive", positive
        else:
            label, confidence = "negative", negative
        results.append(SentimentScore(score=float(score), label=label, confidence=float(confidence)))
    return results
