"""Compare the product sentiment model with the VADER baseline on the labelled data, and time it.

Data sets, none of which the heads were trained on:
- Amazon and Yelp labelled sentences: binary, 500 positive and 500 negative
  each. A model's output counts as positive when its score is above 0 (the
  sign of the score); a second table counts only the label "positive".
- Reviews of the test split (the latest 20% of each review source by time,
  see cie/sentiment/datasets.py): 3 classes from the star rating. They are
  scored twice: the body alone, and "title. body" as the stream scorer
  sends them.

Throughput is measured on all 2,000 labelled sentences scored in calls of
--batch-size texts, with one thread (the encoder with one worker and BLAS
limited to one thread: texts/s per core) and with one encoder worker per
available CPU. The best of --repeats runs is reported.

Usage:
    .venv/bin/python scripts/evaluate_sentiment.py [--data-dir DIR] [--batch-size N] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_info, threadpool_limits

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cie.sentiment.datasets import DEFAULT_DATA_DIR, SENTENCE_SETS, load_reviews, load_sentences  # noqa: E402
from cie.sentiment.encoder import available_cpus  # noqa: E402
from cie.sentiment.model import (  # noqa: E402
    CASCADE_NAME,
    HEAD_PATH,
    SentimentModel,
    load_baseline,
    load_embedding_model,
    load_heads,
    load_model,
)
from cie.sentiment.scores import LABELS  # noqa: E402
from cie.sentiment.vader import VaderModel  # noqa: E402


def describe_machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = [
        f"{info.get('internal_api')} {info.get('version')} kernel {info.get('architecture')}"
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return [
        f"CPU: {cpu}, {available_cpus()} CPUs available, {platform.machine()}",
        f"Python {platform.python_version()}, NumPy {np.__version__}, BLAS: {'; '.join(blas) or 'not found'}",
        f"OPENBLAS_CORETYPE={coretype if coretype is not None else '(unset)'}",
    ]


def score_all(model: SentimentModel, texts: list[str], batch_size: int) -> tuple[np.ndarray, list[str]]:
    scores: list[float] = []
    labels: list[str] = []
    for start in range(0, len(texts), batch_size):
        for result in model.score_batch(texts[start : start + batch_size]):
            scores.append(result.score)
            labels.append(result.label)
    return np.array(scores), labels


def measure_throughput(model: SentimentModel, texts: list[str], batch_size: int, repeats: int) -> tuple[float, float]:
    """Return the best wall-clock texts/s and the best texts per CPU-second over ``repeats`` runs.

    CPU time counts every thread of this process, so texts per CPU-second is
    what one fully used core delivers, even when other processes share the machine.
    """
    model.score_batch(texts[:batch_size])  # warm-up
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        score_all(model, texts, batch_size)
        best_wall = max(best_wall, len(texts) / (time.perf_counter() - wall_started))
        best_cpu = max(best_cpu, len(texts) / (time.process_time() - cpu_started))
    return best_wall, best_cpu


def print_throughput(models: list[SentimentModel], texts: list[str], batch_size: int, repeats: int) -> None:
    """Time each model with one thread and with one encoder worker per available CPU."""
    cpus = available_cpus()
    print(f"Throughput on the {len(texts)} labelled sentences, {batch_size} texts per call, best of {repeats} runs.")
    print(f"Load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"  {'model':<30} {'1 thread texts/s':>17} {'per CPU-second':>15} "
          f"{f'{cpus} workers texts/s':>19} {'per CPU-second':>15}")
    for model in models:
        if isinstance(model, VaderModel):
            # VADER is pure Python and runs in one thread whatever the worker count.
            single, parallel = model, None
        else:
            single = load_model(workers=1) if model.name == CASCADE_NAME else load_embedding_model(workers=1)
            parallel = model
        with threadpool_limits(limits=1, user_api="blas"):
            one_wall, one_cpu = measure_throughput(single, texts, batch_size, repeats)
        many_wall, many_cpu = (one_wall, one_cpu) if parallel is None else measure_throughput(
            parallel, texts, batch_size, repeats
        )
        print(f"  {f'{model.name} {model.version}':<30} {one_wall:>17.0f} {one_cpu:>15.0f} "
              f"{many_wall:>19.0f} {many_cpu:>15.0f}")
    print(f"Load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder with the shared data")
    parser.add_argument("--batch-size", type=int, default=256, help="texts per score_batch() call (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per throughput figure (default 3)")
    parser.add_argument("--throughput-only", action="store_true", help="skip the accuracy tables")
    args = parser.parse_args()
    if args.batch_size < 1 or args.repeats < 1:
        parser.error("--batch-size and --repeats must be at least 1")

    print("Command:", " ".join([Path(sys.executable).name, *sys.argv]))
    for line in describe_machine():
        print(line)

    heads = load_heads(HEAD_PATH)
    baseline = load_baseline()
    product = load_model(workers=available_cpus())
    embedding_only = load_embedding_model(workers=available_cpus())
    models: list[SentimentModel] = [baseline, product, embedding_only]
    print(f"Weights: {HEAD_PATH.relative_to(REPO_ROOT)}, version {heads.version}, "
          f"gate threshold {heads.gate_threshold:.4f}")
    print()

    sentence_sets = {name: load_sentences(name, args.data_dir) for name in SENTENCE_SETS}
    all_sentences = [text for texts, _ in sentence_sets.values() for text in texts]
    if args.throughput_only:
        print_throughput(models, all_sentences, args.batch_size, args.repeats)
        return 0

    test_reviews = [review for review in load_reviews(args.data_dir) if review.split == "test"]

    header = f"{'data set':<40} {'metric':<9}" + "".join(f" {f'{m.name} {m.version}':>24}" for m in models)
    sign_rows: list[str] = []
    label_rows: list[str] = []
    for name, (texts, truth) in sentence_sets.items():
        outputs = [score_all(model, texts, args.batch_size) for model in models]
        by_sign = [(scores > 0).astype(int) for scores, _ in outputs]
        by_label = [np.array([label == "positive" for label in labels], dtype=int) for _, labels in outputs]
        title = f"{name} sentences (binary, n={len(texts)})"
        for rows, predictions in ((sign_rows, by_sign), (label_rows, by_label)):
            rows.append(f"{title:<40} {'accuracy':<9}" + "".join(f" {accuracy_score(truth, p):>24.3f}" for p in predictions))
            rows.append(f"{'':<40} {'macro-F1':<9}"
                        + "".join(f" {f1_score(truth, p, average='macro'):>24.3f}" for p in predictions))

    review_truth = [LABELS[review.label] for review in test_reviews]
    review_inputs = {
        "review test bodies": [review.text for review in test_reviews],
        "review test title. body": [f"{review.title}. {review.text}" if review.title else review.text
                                    for review in test_reviews],
    }
    review_rows: list[str] = []
    for name, texts in review_inputs.items():
        predictions = [score_all(model, texts, args.batch_size)[1] for model in models]
        title = f"{name} (3-class, n={len(texts)})"
        review_rows.append(f"{title:<40} {'accuracy':<9}"
                           + "".join(f" {accuracy_score(review_truth, p):>24.3f}" for p in predictions))
        review_rows.append(f"{'':<40} {'macro-F1':<9}"
                           + "".join(f" {f1_score(review_truth, p, average='macro', labels=list(LABELS)):>24.3f}"
                                     for p in predictions))
        per_class = [f1_score(review_truth, p, average=None, labels=list(LABELS)) for p in predictions]
        for index, label in enumerate(LABELS):
            review_rows.append(f"{'':<40} {f'F1 {label[:3]}':<9}"
                               + "".join(f" {scores[index]:>24.3f}" for scores in per_class))

    print("Binary sentences: positive when score > 0; reviews: the predicted label")
    print(header)
    for row in sign_rows + review_rows:
        print(row)
    print()
    print("Binary sentences, positive only when the label is 'positive' (neutral counts as negative)")
    print(header)
    for row in label_rows:
        print(row)
    print()

    for name, (texts, _) in sentence_sets.items():
        _, routed = product.probabilities(texts)
        print(f"Share of {name} sentences the cascade sends to the encoder: {routed.mean():.3f}")
    _, routed = product.probabilities([review.text for review in test_reviews])
    print(f"Share of test review bodies the cascade sends to the encoder: {routed.mean():.3f}")
    print()

    print_throughput(models, all_sentences, args.batch_size, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
