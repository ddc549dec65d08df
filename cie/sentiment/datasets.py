"""Loaders for the labelled review and sentence data used to train and evaluate the sentiment models.

Reviews become three classes by star rating: 1-2 negative, 3 neutral, 4-5
positive. Each source is split by time: the latest ``TEST_FRACTION`` of its
reviews is the test split, the rest is the training split. The data that is
held back from this repository is later in time than all shared reviews, so
a time split measures the same kind of drift. Exact duplicate texts are
dropped before the split, keeping the earliest, so no text is in both splits.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cie.sentiment.text import clean_text

LABELS = ("negative", "neutral", "positive")
TEST_FRACTION = 0.2
# Share of the training split set aside, by a hash of the review id, to compare
# candidate models. The test split and the sentence sets are never used for that.
VALIDATION_FRACTION = 0.2

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
FINE_FOOD_PATH = Path("amazon_fine_food_reviews") / "reviews.csv"
DATAFINITI_PATH = Path("datafiniti_amazon_reviews") / "reviews.csv"
SENTENCE_SETS = {
    "amazon": Path("sentiment_labelled_sentences") / "amazon_cells_labelled.txt",
    "yelp": Path("sentiment_labelled_sentences") / "yelp_labelled.txt",
}


# Sentence boundary: whitespace after ".", "!" or "?". Good enough for review
# prose; abbreviations such as "e.g. this" split too.
_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")
MIN_SENTENCE_WORDS = 3


@dataclass(frozen=True)
class Review:
    """One review with cleaned title and body, its class index into ``LABELS`` and its split."""

    review_id: str
    source: str
    timestamp: float
    rating: int
    title: str
    text: str
    label: int
    split: str  # "train" or "test"

    @property
    def is_validation(self) -> bool:
        """Whether this training review is in the validation part (always False for test reviews)."""
        return self.split == "train" and _hash_fraction(self.review_id) < VALIDATION_FRACTION


def rating_to_label(rating: int) -> int:
    """Map 1-5 stars to an index into ``LABELS``: 1-2 negative, 3 neutral, 4-5 positive."""
    if not 1 <= rating <= 5:
        raise ValueError(f"rating must be between 1 and 5, got {rating}")
    if rating <= 2:
        return 0
    if rating == 3:
        return 1
    return 2


def split_sentences(text: str) -> list[str]:
    """Split a review body into sentences of at least ``MIN_SENTENCE_WORDS`` words."""
    return [sentence for sentence in _SENTENCE_BOUNDARY.split(text) if len(sentence.split()) >= MIN_SENTENCE_WORDS]


def _hash_fraction(key: str) -> float:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _read_fine_food(path: Path) -> Iterable[tuple[str, str, float, int, str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            yield f"fine_food:{row['Id']}", "fine_food", float(row["Time"]), int(row["Score"]), row["Summary"], row["Text"]


def _read_datafiniti(path: Path) -> Iterable[tuple[str, str, float, int, str, str]]:
    # The Datafiniti copy has no review id (its "id" column is the product's),
    # so the row number in the file identifies a review.
    with path.open(newline="", encoding="utf-8") as file:
        for row_number, row in enumerate(csv.DictReader(file), start=1):
            timestamp = datetime.fromisoformat(row["reviews.date"].replace("Z", "+00:00")).astimezone(timezone.utc)
            yield (
                f"datafiniti:{row_number}",
                "datafiniti",
                timestamp.timestamp(),
                int(float(row["reviews.rating"])),
                row["reviews.title"],
                row["reviews.text"],
            )


def _time_split(rows: list[tuple[str, str, float, int, str, str]]) -> dict[str, str]:
    """Return the split of each review id: the latest ``TEST_FRACTION`` of ``rows`` by time is "test"."""
    ordered = sorted(rows, key=lambda row: (row[2], row[0]))
    first_test = len(ordered) - round(len(ordered) * TEST_FRACTION)
    return {row[0]: ("test" if position >= first_test else "train") for position, row in enumerate(ordered)}


def load_reviews(data_dir: Path = DEFAULT_DATA_DIR) -> list[Review]:
    """Load both review sources, cleaned and deduplicated, each with its train or test split.

    Reviews whose body is empty after cleaning are dropped. Of reviews with the
    same cleaned body, only the earliest is kept (the lower id on a tie).
    """
    sources = [
        list(_read_fine_food(Path(data_dir) / FINE_FOOD_PATH)),
        list(_read_datafiniti(Path(data_dir) / DATAFINITI_PATH)),
    ]
    candidates: list[Review] = []
    for rows in sources:
        cleaned_rows = [(row[:4], clean_text(row[4]), clean_text(row[5])) for row in rows]
        kept = [(key, title, text) for key, title, text in cleaned_rows if text]
        splits = _time_split([key + (title, text) for key, title, text in kept])
        for (review_id, source, timestamp, rating), title, text in kept:
            candidates.append(
                Review(review_id, source, timestamp, rating, title, text, rating_to_label(rating), splits[review_id])
            )

    seen: set[str] = set()
    reviews: list[Review] = []
    for review in sorted(candidates, key=lambda review: (review.timestamp, review.review_id)):
        if review.text in seen:
            continue
        seen.add(review.text)
        reviews.append(review)
    return reviews


def load_sentences(name: str, data_dir: Path = DEFAULT_DATA_DIR) -> tuple[list[str], list[int]]:
    """Load one labelled sentence set ("amazon" or "yelp") as cleaned texts and labels, 1 positive and 0 negative."""
    if name not in SENTENCE_SETS:
        raise ValueError(f"unknown sentence set {name!r}; expected one of {sorted(SENTENCE_SETS)}")
    texts: list[str] = []
    labels: list[int] = []
    path = Path(data_dir) / SENTENCE_SETS[name]
    with path.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            line = line.rstrip("\n")
            if not line:
                continue
            sentence, separator, label = line.rpartition("\t")
            if not separator or label not in ("0", "1"):
                raise ValueError(f"{path}:{line_number}: expected 'sentence<TAB>0|1', got {line!r}")
            texts.append(clean_text(sentence))
            labels.append(int(label))
    return texts, labels
