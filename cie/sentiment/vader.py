"""VADER, the rule-based baseline, behind the same interface as the product model."""

from __future__ import annotations

from importlib.metadata import version as package_version

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from cie.sentiment.scores import SentimentScore, empty_text_score
from cie.sentiment.text import clean_text

# The typical cut-offs on the compound score that the vaderSentiment README
# gives ("About the Scoring"): at least 0.05 is positive, at most -0.05 negative.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05


class VaderFeatures:
    """VADER polarity scores as model features: compound, pos, neg and neu, in that order."""

    names = ("compound", "pos", "neg", "neu")

    def __init__(self) -> None:
        self.analyzer = SentimentIntensityAnalyzer()

    def compute(self, texts: list[str]) -> np.ndarray:
        """Return a float64 array of shape (len(texts), 4) for already cleaned texts."""
        rows = np.zeros((len(texts), len(self.names)), dtype=np.float64)
        for i, text in enumerate(texts):
            polarity = self.analyzer.polarity_scores(text)
            rows[i] = [polarity[name] for name in self.names]
        return rows


def vader_score(compound: float) -> SentimentScore:
    """Turn a VADER compound score into a SentimentScore with VADER's standard cut-offs.

    VADER gives no probability, so confidence is a margin: how far the
    compound score lies past the nearest cut-off, scaled to [0, 1] within
    its label's interval. It is a ranking heuristic, not a calibrated probability.
    """
    if compound >= POSITIVE_THRESHOLD:
        label = "positive"
        confidence = (compound - POSITIVE_THRESHOLD) / (1.0 - POSITIVE_THRESHOLD)
    elif compound <= NEGATIVE_THRESHOLD:
        label = "negative"
        confidence = (NEGATIVE_THRESHOLD - compound) / (1.0 + NEGATIVE_THRESHOLD)
    else:
        label = "neutral"
        confidence = 1.0 - abs(compound) / POSITIVE_THRESHOLD
    return SentimentScore(score=float(compound), label=label, confidence=float(min(max(confidence, 0.0), 1.0)))


class VaderModel:
    """VADER baseline: score is the compound score, labels use VADER's cut-offs of plus and minus 0.05."""

    name = "vader"

    def __init__(self) -> None:
        self.version = package_version("vaderSentiment")
        self.features = VaderFeatures()

    def score_batch(self, texts: list[str]) -> list[SentimentScore]:
        """Score each text after the same clean-up as the product model. Empty texts get ``empty_text_score()``."""
        cleaned = [clean_text(text) for text in texts]
        compounds = self.features.compute(cleaned)[:, 0]
        return [
            vader_score(float(compound)) if text else empty_text_score()
            for text, compound in zip(cleaned, compounds)
        ]
