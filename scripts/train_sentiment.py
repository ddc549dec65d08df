"""Train the sentiment heads from the shared reviews and write the weights file that load_model() reads.

Only the training split of the reviews is used (see cie/sentiment/datasets.py):
the test split and the labelled sentence sets are never read here. Steps:

1. Fit every candidate head on the training split minus its validation part,
   and compare them on that validation part: 3-class macro-F1 on review
   bodies and class-balanced binary macro-F1 on review titles (positive vs
   negative, sign of the score), averaged. River's online bag-of-words
   naive Bayes and VADER are scored on the same texts for comparison, and
   the selected head is also scored on every encoder depth from 1 to 6.
2. Refit the best candidate and the VADER gate head on the whole training split.
3. Set the gate threshold so that ROUTE_FRACTION of the training split's
   short texts (titles and body sentences) go to the embedding model.

ENCODER_LAYERS and ROUTE_FRACTION are fixed here rather than searched: they
trade accuracy for throughput, which the validation scores cannot measure.

Training texts are review bodies, review titles and the sentences of review
bodies, each labelled with its review's rating class. Classes are weighted
to be balanced, because the reviews are about 85% positive and a skewed
prior would carry over to every text the platform scores.

The run is deterministic: two runs on the same machine store identical
weights (the .npz files differ only in their zip timestamps), and --check
retrains and compares with the committed file.

Usage:
    .venv/bin/python scripts/train_sentiment.py [--output PATH] [--cache-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_sample_weight

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cie.sentiment.datasets import DEFAULT_DATA_DIR, Review, load_reviews, split_sentences  # noqa: E402
from cie.sentiment.encoder import MiniLMEncoder  # noqa: E402
from cie.sentiment.model import HEAD_PATH, HEAD_VERSION, LinearHead, SentimentHeads, load_heads, save_heads  # noqa: E402
from cie.sentiment.scores import LABELS  # noqa: E402
from cie.sentiment.vader import VaderFeatures, vader_score  # noqa: E402

log = logging.getLogger("train_sentiment")

# Encoder depth of the product model. On validation, the selected head on 3
# layers scored as well as on all 6 (the depth table this script prints) at
# half the cost. All 6 layers on every text reached 490 to 730 short texts/s
# on 2 cores, short of the 1,000 texts/s target (docs/benchmarks-sentiment.md).
ENCODER_LAYERS = 3
ALL_LAYERS = [1, 2, 3, 4, 5, 6]
FEATURE_SETS = ("embedding", "embedding+compound")
C_VALUES = (0.1, 0.3, 1.0)
# Weight of one body sentence relative to one body or title; 0 leaves sentences out.
SENTENCE_WEIGHTS = (0.0, 0.3, 1.0)
GATE_C = 1.0
# Share of the training split's short texts that the cascade sends to the
# encoder. On validation, shares from 0.5 to 1.0 scored within 0.01 of each
# other; 0.6 leaves throughput headroom on 2 cores (docs/benchmarks-sentiment.md).
ROUTE_FRACTION = 0.6
MAX_ITERATIONS = 5000
# Allowed difference per weight in --check mode. Other BLAS kernels round
# the embeddings differently in the last bits, which moves the fitted weights slightly.
CHECK_TOLERANCE = 1e-3


@dataclass
class TrainingSet:
    """Texts with class labels and sample weights, as fed to a head."""

    texts: list[str]
    labels: np.ndarray
    weights: np.ndarray


@dataclass
class Candidate:
    features: str
    c: float
    sentence_weight: float
    body_f1: float = 0.0
    title_f1: float = 0.0

    @property
    def selection_score(self) -> float:
        return (self.body_f1 + self.title_f1) / 2

    def describe(self) -> str:
        return f"logreg {self.features:<19} C={self.c:<4} sentence_weight={self.sentence_weight:<4}"


class FeatureStore:
    """Pooled embeddings at every encoder depth and VADER features of texts, computed once per text.

    With a cache folder, the embeddings are also kept on disk between runs.
    """

    def __init__(self, encoder: MiniLMEncoder, cache_dir: Path | None) -> None:
        self.encoder = encoder
        self.vader = VaderFeatures()
        self.cache_dir = cache_dir
        self.index: dict[str, int] = {}
        self.embeddings = np.zeros((0, len(ALL_LAYERS), MiniLMEncoder.embedding_dim), dtype=np.float32)
        self.vader_rows = np.zeros((0, len(VaderFeatures.names)))

    def add(self, texts: list[str]) -> None:
        new_texts = sorted({text for text in texts if text not in self.index})
        if not new_texts:
            return
        for offset, text in enumerate(new_texts):
            self.index[text] = len(self.embeddings) + offset
        self.embeddings = np.concatenate([self.embeddings, self._cached_embeddings(new_texts)])
        self.vader_rows = np.concatenate([self.vader_rows, self.vader.compute(new_texts)])

    def _cached_embeddings(self, texts: list[str]) -> np.ndarray:
        path = None
        if self.cache_dir is not None:
            digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:20]
            path = self.cache_dir / f"minilm_layers_{digest}.npy"
            if path.is_file():
                log.info("read the embeddings of %d texts from %s", len(texts), path)
                return np.load(path)
        by_layer = self.encoder.encode_layers(texts, ALL_LAYERS)
        embeddings = np.stack([by_layer[layer] for layer in ALL_LAYERS], axis=1)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, embeddings)
        return embeddings

    def matrix(self, texts: list[str], features: str, layers: int = ENCODER_LAYERS) -> np.ndarray:
        """Return feature rows of ``texts``: a set of FEATURE_SETS at encoder depth ``layers``, or "vader"."""
        rows = [self.index[text] for text in texts]
        if features == "vader":
            return self.vader_rows[rows].astype(np.float32)
        embeddings = self.embeddings[rows, ALL_LAYERS.index(layers)]
        if features == "embedding":
            return embeddings
        if features == "embedding+compound":
            return np.hstack([embeddings, self.vader_rows[rows, :1].astype(np.float32)])
        raise ValueError(f"unknown feature set {features!r}")


def build_training_set(reviews: list[Review], sentence_weight: float) -> TrainingSet:
    """Return bodies, non-empty titles and (if ``sentence_weight`` > 0) body sentences, with balanced weights."""
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    for review in reviews:
        texts.append(review.text)
        labels.append(review.label)
        weights.append(1.0)
        if review.title:
            texts.append(review.title)
            labels.append(review.label)
            weights.append(1.0)
    if sentence_weight > 0:
        for review in reviews:
            for sentence in split_sentences(review.text):
                texts.append(sentence)
                labels.append(review.label)
                weights.append(sentence_weight)
    label_array = np.array(labels)
    weight_array = np.array(weights) * compute_sample_weight("balanced", label_array)
    return TrainingSet(texts, label_array, weight_array)


def fit_head(features: np.ndarray, training: TrainingSet, c: float) -> LinearHead:
    model = LogisticRegression(C=c, max_iter=MAX_ITERATIONS)
    model.fit(features, training.labels, sample_weight=training.weights)
    if list(model.classes_) != list(range(len(LABELS))):
        raise ValueError(f"training data lacks a class: got classes {model.classes_}")
    return LinearHead(model.coef_.astype(np.float32), model.intercept_.astype(np.float32))


def balanced_binary_f1(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro-F1 of positive vs negative texts (neutral ones left out), classes weighted equally, by sign of the score."""
    polar = labels != 1
    truth = labels[polar] == 2
    predicted = (probabilities[polar, 2] - probabilities[polar, 0]) > 0
    return float(f1_score(truth, predicted, average="macro", sample_weight=compute_sample_weight("balanced", truth)))


def validation_scores(
    probabilities_of: Callable[[list[str]], np.ndarray], validation: list[Review]
) -> tuple[float, float]:
    """Return (3-class macro-F1 on bodies, balanced binary macro-F1 on titles) of a probability function."""
    body_labels = np.array([review.label for review in validation])
    body_f1 = f1_score(body_labels, probabilities_of([r.text for r in validation]).argmax(axis=1), average="macro")
    titled = [review for review in validation if review.title]
    title_probabilities = probabilities_of([review.title for review in titled])
    title_f1 = balanced_binary_f1(np.array([review.label for review in titled]), title_probabilities)
    return float(body_f1), title_f1


def vader_probabilities(store: FeatureStore, texts: list[str]) -> np.ndarray:
    """One-hot rows of VADER's own labels, so VADER is scored by the same functions as the heads."""
    rows = np.zeros((len(texts), len(LABELS)))
    for i, compound in enumerate(store.matrix(texts, "vader")[:, 0]):
        rows[i, LABELS.index(vader_score(float(compound)).label)] = 1.0
    return rows


def river_candidate_scores(fit_reviews: list[Review], validation: list[Review]) -> tuple[float, float]:
    """Train river's online bag-of-words multinomial naive Bayes on bodies and titles; return its validation scores."""
    from river import feature_extraction, naive_bayes

    model = feature_extraction.BagOfWords(lowercase=True) | naive_bayes.MultinomialNB(alpha=1.0)
    for review in fit_reviews:
        for text in (review.text, review.title):
            if text:
                model.learn_one(text, review.label)

    def probabilities_of(texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), len(LABELS)))
        for i, text in enumerate(texts):
            for label, probability in model.predict_proba_one(text).items():
                rows[i, label] = probability
        return rows

    return validation_scores(probabilities_of, validation)


def short_texts(reviews: list[Review]) -> list[str]:
    """Return the titles and body sentences of ``reviews``: the texts closest to a typical customer message."""
    texts = [review.title for review in reviews if review.title]
    for review in reviews:
        texts.extend(split_sentences(review.text))
    return texts


def print_row(name: str, body_f1: float, title_f1: float) -> None:
    print(f"  {name:<62} {body_f1:>15.3f} {title_f1:>14.3f} {(body_f1 + title_f1) / 2:>7.3f}", flush=True)


def select_candidate(store: FeatureStore, fit_reviews: list[Review], validation: list[Review]) -> Candidate:
    """Fit every candidate head on ``fit_reviews``, print the validation table and return the best candidate."""
    print(f"Candidates at encoder depth {ENCODER_LAYERS}, fitted without the validation part and scored on it:")
    print(f"  {'candidate':<62} {'bodies 3-class':>15} {'titles binary':>14} {'mean':>7}")
    print_row("VADER (baseline)", *validation_scores(lambda texts: vader_probabilities(store, texts), validation))
    print_row("river bag-of-words naive Bayes", *river_candidate_scores(fit_reviews, validation))

    candidates = [
        Candidate(features, c, sentence_weight)
        for features in FEATURE_SETS
        for c in C_VALUES
        for sentence_weight in SENTENCE_WEIGHTS
    ]
    for candidate in candidates:
        training = build_training_set(fit_reviews, candidate.sentence_weight)
        head = fit_head(store.matrix(training.texts, candidate.features), training, candidate.c)
        candidate.body_f1, candidate.title_f1 = validation_scores(
            lambda texts: head.probabilities(store.matrix(texts, candidate.features)), validation
        )
        print_row(candidate.describe(), candidate.body_f1, candidate.title_f1)
    # max() keeps the first of equal scores, so ties go to the earlier candidate in the grid.
    best = max(candidates, key=lambda candidate: candidate.selection_score)
    print(f"Selected: {best.describe()}")
    return best


def report_depths_and_cascade(
    store: FeatureStore, best: Candidate, fit_reviews: list[Review], validation: list[Review]
) -> None:
    """Print the validation scores of the selected head at every encoder depth, and of the cascade."""
    training = build_training_set(fit_reviews, best.sentence_weight)
    print("The selected head at each encoder depth, and the cascade:")
    for layers in ALL_LAYERS:
        head = fit_head(store.matrix(training.texts, best.features, layers), training, best.c)
        print_row(
            f"{layers} layers",
            *validation_scores(lambda texts: head.probabilities(store.matrix(texts, best.features, layers)), validation),
        )

    gate_head = fit_head(store.matrix(training.texts, "vader"), training, GATE_C)
    best_head = fit_head(store.matrix(training.texts, best.features), training, best.c)
    gate_threshold = route_threshold(gate_head, store, short_texts(fit_reviews))

    def cascade_probabilities(texts: list[str]) -> np.ndarray:
        probabilities = gate_head.probabilities(store.matrix(texts, "vader"))
        routed = probabilities.max(axis=1) < gate_threshold
        routed_texts = [text for text, is_routed in zip(texts, routed) if is_routed]
        if routed_texts:
            probabilities[routed] = best_head.probabilities(store.matrix(routed_texts, best.features))
        return probabilities

    print_row(
        f"cascade: VADER gate, then {ENCODER_LAYERS} layers ({ROUTE_FRACTION:.0%} of short texts routed)",
        *validation_scores(cascade_probabilities, validation),
    )


def fit_final_heads(store: FeatureStore, best: Candidate, training_split: list[Review]) -> SentimentHeads:
    """Refit the selected head and the gate on the whole training split and set the gate threshold."""
    training = build_training_set(training_split, best.sentence_weight)
    embedding_head = fit_head(store.matrix(training.texts, best.features), training, best.c)
    gate_head = fit_head(store.matrix(training.texts, "vader"), training, GATE_C)
    gate_threshold = route_threshold(gate_head, store, short_texts(training_split))
    if best.features != "embedding+compound":
        # load_model() feeds the embedding head the embedding plus the compound
        # score, so a plain-embedding winner is stored with a zero weight on
        # the compound score, which gives the same probabilities.
        embedding_head = LinearHead(
            np.hstack([embedding_head.weight, np.zeros((len(LABELS), 1), dtype=np.float32)]), embedding_head.bias
        )
    metadata = {
        "trained_by": "scripts/train_sentiment.py",
        "training_reviews": len(training_split),
        "training_texts": len(training.texts),
        "training_texts_sha256": hashlib.sha256("\0".join(training.texts).encode("utf-8")).hexdigest(),
        "labels": "stars 1-2 negative, 3 neutral, 4-5 positive",
        "selected_features": best.features,
        "selected_c": best.c,
        "selected_sentence_weight": best.sentence_weight,
        "validation_body_macro_f1": round(best.body_f1, 4),
        "validation_title_binary_macro_f1": round(best.title_f1, 4),
        "gate_c": GATE_C,
        "route_fraction": ROUTE_FRACTION,
        "encoder": MiniLMEncoder.name,
        "encoder_layers": ENCODER_LAYERS,
    }
    return SentimentHeads(HEAD_VERSION, ENCODER_LAYERS, embedding_head, gate_head, gate_threshold, metadata)


def train(data_dir: Path, cache_dir: Path | None) -> SentimentHeads:
    reviews = load_reviews(data_dir)
    training_split = [review for review in reviews if review.split == "train"]
    fit_reviews = [review for review in training_split if not review.is_validation]
    validation = [review for review in training_split if review.is_validation]
    log.info(
        "reviews: %d loaded, %d in the training split (%d to fit, %d to validate), %d held out for testing",
        len(reviews), len(training_split), len(fit_reviews), len(validation), len(reviews) - len(training_split),
    )

    store = FeatureStore(MiniLMEncoder(), cache_dir)
    started = time.perf_counter()
    store.add(build_training_set(training_split, sentence_weight=1.0).texts)
    log.info("computed features of %d texts in %.0f s", len(store.index), time.perf_counter() - started)

    best = select_candidate(store, fit_reviews, validation)
    report_depths_and_cascade(store, best, fit_reviews, validation)
    return fit_final_heads(store, best, training_split)


def route_threshold(gate_head: LinearHead, store: FeatureStore, texts: list[str]) -> float:
    """Return the gate confidence below which ROUTE_FRACTION of ``texts`` fall."""
    confidences = gate_head.probabilities(store.matrix(texts, "vader")).max(axis=1)
    return float(np.quantile(confidences.astype(np.float64), ROUTE_FRACTION))


def compare_heads(committed: SentimentHeads, trained: SentimentHeads) -> float:
    """Return the largest absolute difference between the weights of two head sets."""
    if committed.encoder_layers != trained.encoder_layers:
        return float("inf")
    pairs = [
        (committed.embedding_head.weight, trained.embedding_head.weight),
        (committed.embedding_head.bias, trained.embedding_head.bias),
        (committed.gate_head.weight, trained.gate_head.weight),
        (committed.gate_head.bias, trained.gate_head.bias),
        (np.array([committed.gate_threshold]), np.array([trained.gate_threshold])),
    ]
    return max(float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) for a, b in pairs)


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder with the shared review data")
    parser.add_argument("--output", type=Path, default=HEAD_PATH, help="weights file to write")
    parser.add_argument("--cache-dir", type=Path, help="folder to keep computed embeddings between runs")
    parser.add_argument(
        "--check", action="store_true",
        help=f"compare with the weights file at --output instead of writing it (tolerance {CHECK_TOLERANCE})",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(f"Machine: {cpu_model()}, {platform.machine()}, Python {platform.python_version()}")
    print("Command:", " ".join(sys.argv))

    heads = train(args.data_dir, args.cache_dir)
    if args.check:
        difference = compare_heads(load_heads(args.output), heads)
        print(f"Largest weight difference from {args.output}: {difference:.2e}")
        return 0 if difference <= CHECK_TOLERANCE else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_heads(args.output, heads)
    print(f"Wrote {args.output} ({args.output.stat().st_size} bytes), gate threshold {heads.gate_threshold:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
