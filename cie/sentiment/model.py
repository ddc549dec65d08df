"""Sentiment models behind one small interface: ``name``, ``version`` and ``score_batch(texts)``.

``load_model()`` returns the product model, a cascade:

1. VADER's four polarity scores go through a small logistic-regression head
   (the gate). Texts on which the gate is confident keep its result.
2. The other texts are embedded with the first layers of all-MiniLM-L6-v2
   (``encoder.py``), as many as the weights file sets. A logistic-regression
   head over the embedding plus VADER's compound score gives their result.

Both heads come from one weights file written by ``scripts/train_sentiment.py``.
The gate's threshold sends a fixed share of the training set's short texts
to the embedding model. The cascade and the shallower encoder exist because
the full encoder on every text does not reach 1,000 short texts per second
on two cores (docs/benchmarks-sentiment.md). ``load_baseline()`` returns
plain VADER.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cie.sentiment.encoder import MiniLMEncoder
from cie.sentiment.scores import LABELS, SentimentScore, empty_text_score, scores_from_probabilities
from cie.sentiment.text import clean_text
from cie.sentiment.vader import VaderFeatures, VaderModel

HEAD_VERSION = "2"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
HEAD_PATH = WEIGHTS_DIR / f"sentiment_heads_v{HEAD_VERSION}.npz"

CASCADE_NAME = "minilm-vader-cascade"
EMBEDDING_NAME = "minilm-vader-logreg"


class SentimentModel(Protocol):
    """Interface that the platform uses to score texts."""

    name: str
    version: str

    def score_batch(self, texts: list[str]) -> list[SentimentScore]: ...


@dataclass(frozen=True)
class LinearHead:
    """Multinomial logistic regression over ``LABELS``: ``weight`` is (3, features), ``bias`` is (3,)."""

    weight: np.ndarray
    bias: np.ndarray

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Return softmax class probabilities, one row of (negative, neutral, positive) per feature row."""
        logits = features.astype(np.float32, copy=False) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits


@dataclass(frozen=True)
class SentimentHeads:
    """Contents of a weights file: both heads, the gate threshold and how they were trained."""

    version: str
    encoder_layers: int
    embedding_head: LinearHead
    gate_head: LinearHead
    gate_threshold: float
    metadata: dict[str, Any]


def save_heads(path: Path, heads: SentimentHeads) -> None:
    """Write ``heads`` as an .npz file that ``load_heads`` reads without pickle."""
    np.savez_compressed(
        path,
        version=np.array(heads.version),
        encoder_layers=np.array(heads.encoder_layers, dtype=np.int64),
        labels=np.array(LABELS),
        embedding_weight=heads.embedding_head.weight.astype(np.float32),
        embedding_bias=heads.embedding_head.bias.astype(np.float32),
        gate_weight=heads.gate_head.weight.astype(np.float32),
        gate_bias=heads.gate_head.bias.astype(np.float32),
        gate_threshold=np.array(heads.gate_threshold, dtype=np.float64),
        metadata_json=np.array(json.dumps(heads.metadata, sort_keys=True)),
    )


def load_heads(path: Path = HEAD_PATH) -> SentimentHeads:
    """Read a weights file written by ``save_heads`` and check its shapes and labels."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"sentiment weights file {path} not found; run scripts/train_sentiment.py to create it")
    with np.load(path, allow_pickle=False) as data:
        labels = tuple(str(label) for label in data["labels"])
        if labels != LABELS:
            raise ValueError(f"{path}: labels {labels} do not match {LABELS}")
        heads = SentimentHeads(
            version=str(data["version"]),
            encoder_layers=int(data["encoder_layers"]),
            embedding_head=LinearHead(data["embedding_weight"], data["embedding_bias"]),
            gate_head=LinearHead(data["gate_weight"], data["gate_bias"]),
            gate_threshold=float(data["gate_threshold"]),
            metadata=json.loads(str(data["metadata_json"])),
        )
    expected_shapes = {
        "embedding_weight": (heads.embedding_head.weight.shape, (len(LABELS), MiniLMEncoder.embedding_dim + 1)),
        "gate_weight": (heads.gate_head.weight.shape, (len(LABELS), len(VaderFeatures.names))),
    }
    for name, (shape, expected) in expected_shapes.items():
        if shape != expected:
            raise ValueError(f"{path}: {name} has shape {shape}, expected {expected}")
    return heads


class EmbeddingSentimentModel:
    """Logistic regression over the all-MiniLM-L6-v2 embedding and VADER's compound score, for every text."""

    name = EMBEDDING_NAME

    def __init__(self, heads: SentimentHeads, encoder: MiniLMEncoder, vader: VaderFeatures) -> None:
        self.version = heads.version
        self.head = heads.embedding_head
        self.encoder = encoder
        self.vader = vader

    def score_batch(self, texts: list[str]) -> list[SentimentScore]:
        """Score each text. Texts that are empty after ``clean_text`` get ``empty_text_score()``."""
        cleaned = [clean_text(text) for text in texts]
        present = [i for i, text in enumerate(cleaned) if text]
        results = [empty_text_score()] * len(cleaned)
        if present:
            present_texts = [cleaned[i] for i in present]
            vader_features = self.vader.compute(present_texts)
            probabilities = self.probabilities(present_texts, vader_features[:, 0])
            for i, result in zip(present, scores_from_probabilities(probabilities)):
                results[i] = result
        return results

    def probabilities(self, cleaned_texts: list[str], compound: np.ndarray) -> np.ndarray:
        """Return class probabilities for non-empty cleaned texts and their VADER compound scores."""
        embeddings = self.encoder.encode(cleaned_texts)
        features = np.hstack([embeddings, compound.astype(np.float32)[:, None]])
        return self.head.probabilities(features)


class CascadeSentimentModel:
    """Product model: the VADER gate head, with the embedding model for texts the gate is unsure of."""

    name = CASCADE_NAME

    def __init__(self, heads: SentimentHeads, encoder: MiniLMEncoder, vader: VaderFeatures) -> None:
        self.version = heads.version
        self.gate_head = heads.gate_head
        self.gate_threshold = heads.gate_threshold
        self.embedding_model = EmbeddingSentimentModel(heads, encoder, vader)
        self.vader = vader

    def score_batch(self, texts: list[str]) -> list[SentimentScore]:
        """Score each text. Texts that are empty after ``clean_text`` get ``empty_text_score()``."""
        cleaned = [clean_text(text) for text in texts]
        present = [i for i, text in enumerate(cleaned) if text]
        results = [empty_text_score()] * len(cleaned)
        if present:
            present_texts = [cleaned[i] for i in present]
            probabilities, _ = self.probabilities(present_texts)
            for i, result in zip(present, scores_from_probabilities(probabilities)):
                results[i] = result
        return results

    def probabilities(self, cleaned_texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return class probabilities of non-empty cleaned texts and a mask of those the encoder scored."""
        vader_features = self.vader.compute(cleaned_texts)
        probabilities = self.gate_head.probabilities(vader_features)
        routed = probabilities.max(axis=1) < self.gate_threshold
        if routed.any():
            routed_texts = [text for text, is_routed in zip(cleaned_texts, routed) if is_routed]
            probabilities[routed] = self.embedding_model.probabilities(routed_texts, vader_features[routed, 0])
        return probabilities, routed


def load_model(workers: int | None = None, heads_path: Path = HEAD_PATH) -> CascadeSentimentModel:
    """Load the product sentiment model, whose encoder runs in ``workers`` threads (default: one per available CPU)."""
    heads = load_heads(heads_path)
    encoder = MiniLMEncoder(workers=workers, num_layers=heads.encoder_layers)
    return CascadeSentimentModel(heads, encoder, VaderFeatures())


def load_embedding_model(workers: int | None = None, heads_path: Path = HEAD_PATH) -> EmbeddingSentimentModel:
    """Load the embedding model that the cascade falls back to, for evaluation against the cascade."""
    heads = load_heads(heads_path)
    encoder = MiniLMEncoder(workers=workers, num_layers=heads.encoder_layers)
    return EmbeddingSentimentModel(heads, encoder, VaderFeatures())


def load_baseline() -> VaderModel:
    """Load the VADER baseline."""
    return VaderModel()
