#!/usr/bin/env python3
"""Evaluate the recommender and the baselines offline on the Online Retail data.

Split: the history is every event before the cut date (midnight UK time,
the time zone of ``InvoiceDate``). The truth of a customer is the set of
products in their placed orders from the cut for ``--days`` days. It counts
only lines with a positive unit price and no service code, so cancellations,
bad-debt lines and stock corrections are not purchases. Customers with an
order before the cut and a non-empty truth are evaluated.

Tasks, side by side: "all items" scores the lists of kind "all" against the
whole truth; "never bought" scores lists of kind "discover" against the
truth products the customer never ordered before the cut, over the customers
who have at least one.

Metrics at k (10): hit rate (share of customers with at least one hit),
recall (hits / truth size, averaged), NDCG (binary relevance, ideal DCG over
min(truth size, k)) and coverage (distinct products recommended across all
customers / products sold at a positive price before the cut).

Every model learns the history events one at a time in event-time order.
The run is deterministic: the only random draws (negative sampling of the
factorisation baseline) use fixed seeds.

Usage: .venv/bin/python scripts/evaluate_recommendations.py [--cut 2011-11-09 ...] [--days 30]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cie.catalog import is_service_code  # noqa: E402
from cie.recommend import Recommender, RecommenderConfig  # noqa: E402
from cie.recommend.model import LEARNED_FIELDS  # noqa: E402
from cie.recommend.baselines import build_baselines  # noqa: E402
from cie.recommend.events import retail_events  # noqa: E402
from cie.recommend.scoring import customer_scores, recommend_from_scores, top_products  # noqa: E402

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "online_retail"
UK = ZoneInfo("Europe/London")
TASKS = ("all items", "never bought")
TARGET_FACTOR = 1.1


@dataclass
class Split:
    cut: datetime
    history: list[dict]
    truth: dict[str, set[str]]  # customer -> products bought in the window
    new_truth: dict[str, set[str]]  # customer -> products bought in the window and never ordered before
    catalogue_size: int


@dataclass
class TaskResult:
    customers: int
    hit_rate: float
    recall: float
    ndcg: float
    coverage: float


def build_split(events: list[dict], cut_date: str, days: int) -> Split:
    """Cut the sorted events into history and per-customer truth sets."""
    cut = datetime.fromisoformat(cut_date).replace(tzinfo=UK).astimezone(timezone.utc)
    end = cut + timedelta(days=days)
    history = [event for event in events if event["occurred_at"] < cut]

    ordered_before: dict[str, set[str]] = {}
    sellable: set[str] = set()
    for event in history:
        if event["event_type"] != "order.placed":
            continue
        for line in event["lines"]:
            if float(line["unit_price"]) > 0 and not is_service_code(line["product_id"]):
                sellable.add(line["product_id"])
        if event.get("customer_id"):
            ordered_before.setdefault(event["customer_id"], set()).update(line["product_id"] for line in event["lines"])

    truth: dict[str, set[str]] = {}
    for event in events:
        if not (cut <= event["occurred_at"] < end) or event["event_type"] != "order.placed":
            continue
        customer = event.get("customer_id")
        if customer is None or customer not in ordered_before:
            continue
        for line in event["lines"]:
            if float(line["unit_price"]) > 0 and not is_service_code(line["product_id"]):
                truth.setdefault(customer, set()).add(line["product_id"])
    new_truth = {customer: products - ordered_before[customer] for customer, products in truth.items()}
    new_truth = {customer: products for customer, products in new_truth.items() if products}
    return Split(cut, history, truth, new_truth, len(sellable))


def ndcg_at(recommended: list[str], truth: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(rank + 2) for rank, product in enumerate(recommended[:k]) if product in truth)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(truth), k)))
    return dcg / ideal


def score_lists(lists: dict[str, list[str]], truth: dict[str, set[str]], k: int, catalogue_size: int) -> TaskResult:
    hits = recalls = ndcgs = 0.0
    recommended: set[str] = set()
    for customer, products in truth.items():
        top = lists.get(customer, [])[:k]
        recommended.update(top)
        found = len(set(top) & products)
        hits += found > 0
        recalls += found / len(products)
        ndcgs += ndcg_at(top, products, k)
    count = len(truth)
    return TaskResult(count, hits / count, recalls / count, ndcgs / count, len(recommended) / catalogue_size)


def evaluate_lists(make_list, split: Split, k: int) -> dict[str, TaskResult]:
    """Score ``make_list(customer, kind)`` on both tasks."""
    all_lists = {customer: make_list(customer, "all") for customer in split.truth}
    new_lists = {customer: make_list(customer, "discover") for customer in split.new_truth}
    return {
        "all items": score_lists(all_lists, split.truth, k, split.catalogue_size),
        "never bought": score_lists(new_lists, split.new_truth, k, split.catalogue_size),
    }


def served_lists(model: Recommender, split: Split, k: int) -> tuple[dict[str, TaskResult], float]:
    """Evaluate through the serving path (with reasons); return results and mean seconds per customer."""
    lists: dict[tuple[str, str], list[str]] = {}
    started = time.perf_counter()
    for customer in split.truth:
        scores = customer_scores(model, customer)
        lists[customer, "all"] = [r.product_id for r in recommend_from_scores(scores, "all", k)]
        if customer in split.new_truth:
            lists[customer, "discover"] = [r.product_id for r in recommend_from_scores(scores, "discover", k)]
    seconds = (time.perf_counter() - started) / len(split.truth)
    return evaluate_lists(lambda customer, kind: lists[customer, kind], split, k), seconds


def variant_lists(model: Recommender, split: Split, k: int) -> dict[str, TaskResult]:
    """Evaluate a model variant from its score arrays (no reasons, so faster)."""
    def make_list(customer: str, kind: str) -> list[str]:
        scores = customer_scores(model, customer).scores(kind)
        return [model.product_ids[i] for i in top_products(scores, k).tolist()]
    return evaluate_lists(make_list, split, k)


def learn_served(config: RecommenderConfig, history: list[dict]) -> tuple[Recommender, float]:
    model = Recommender(config)
    started = time.perf_counter()
    for event in history:
        model.learn(event)
    return model, time.perf_counter() - started


SERVED_ABLATIONS = {
    "served without factorisation": {"factorisation_weight": 0.0},
    "served without trend factor or discover in 'all'": {"trend_exponent": 0.0, "discover_weight_in_all": 0.0},
    "served without discover in 'all'": {"discover_weight_in_all": 0.0},
    "served, neighbour similarity not recency-weighted": {"similarity_half_life_days": 1e6},
    "served, neighbour votes not recency-weighted": {"neighbour_recency_half_life_days": 1e6},
}

# One change at a time from the served defaults; "learned" settings rebuild the model.
GRID = [
    {"trend_exponent": 0.2}, {"trend_exponent": 0.5}, {"trend_offset": 5.0},
    {"neighbours": 100}, {"neighbours": 400}, {"similarity_exponent": 1.0}, {"similarity_exponent": 4.0},
    {"neighbour_recency_half_life_days": 7.0}, {"neighbour_recency_half_life_days": 30.0},
    {"similarity_half_life_days": 90.0}, {"similarity_half_life_days": 365.0},
    {"discover_trend_weight": 0.0}, {"discover_trend_weight": 0.1},
    {"discover_weight_in_all": 0.02}, {"discover_weight_in_all": 0.2},
    {"factorisation_weight": 0.1}, {"factorisation_weight": 0.3},
    {"factorisation_negatives": 2}, {"factorisation_factors": 32},
    {"max_days_unsold": 90.0}, {"max_days_unsold": 1e6},
    {"repeat_half_life_days": 90.0}, {"repeat_half_life_days": 365.0},
    {"trend_half_life_days": 3.5}, {"trend_half_life_days": 14.0},
]


def machine_description() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import river
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, river {river.__version__}")


def print_table(rows: list[tuple[str, dict[str, TaskResult]]], split: Split) -> None:
    served = rows[-1][1]
    print(f"\n| model | all items: HR@10 | recall@10 | NDCG@10 | coverage | never bought: HR@10 | recall@10 | "
          f"NDCG@10 | coverage |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, results in rows:
        cells = []
        for task in TASKS:
            result = results.get(task)
            if result is None:
                cells += ["—"] * 4
            else:
                cells += [f"{result.hit_rate:.3f}", f"{result.recall:.3f}", f"{result.ndcg:.3f}", f"{result.coverage:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\ncustomers: all items {served['all items'].customers}, never bought {served['never bought'].customers}; "
          f"catalogue {split.catalogue_size} products")


def run_cut(events: list[dict], cut_date: str, days: int, k: int, with_factorisation: bool, grid: bool) -> dict:
    split = build_split(events, cut_date, days)
    print(f"\n## cut {cut_date} ({split.cut.isoformat()}), {days} days: {len(split.history)} history events")

    log, baselines = build_baselines(include_factorisation=with_factorisation)
    started = time.perf_counter()
    for event in split.history:
        log.learn(event)
        for baseline in baselines:
            baseline.learn(event)
    print(f"baselines learned in {time.perf_counter() - started:.1f} s")

    config = RecommenderConfig()
    served, learn_seconds = learn_served(config, split.history)
    events_per_second = len(split.history) / learn_seconds
    print(f"served model learned {len(split.history)} events in {learn_seconds:.2f} s "
          f"({events_per_second:,.0f} events/s)")
    _, fast_seconds = learn_served(RecommenderConfig(factorisation_factors=0), split.history)
    fast_events_per_second = len(split.history) / fast_seconds
    print(f"without the factorisation it learns them in {fast_seconds:.2f} s ({fast_events_per_second:,.0f} events/s)")

    rows: list[tuple[str, dict[str, TaskResult]]] = []
    for baseline in baselines:
        results = evaluate_lists(lambda customer, kind: baseline.recommend_products(customer, k, kind), split, k)
        if baseline.name == "own most-bought":
            results.pop("never bought")  # it only lists products already bought
        rows.append((baseline.name, results))
    served_results, seconds_per_customer = served_lists(served, split, k)
    for name, changes in SERVED_ABLATIONS.items():
        rows.append((name, variant_lists(served.with_scoring(**changes), split, k)))
    rows.append(("**served model**", served_results))
    print_table(rows, split)
    print(f"served model: {seconds_per_customer * 1000:.1f} ms per customer for both lists with reasons")

    targets = {}
    baseline_rows = [(name, results) for name, results in rows[:len(baselines)]]
    for task in TASKS:
        best_name, best = max(((name, results[task]) for name, results in baseline_rows if task in results),
                              key=lambda item: item[1].ndcg)
        target = TARGET_FACTOR * best.ndcg
        achieved = served_results[task].ndcg
        targets[task] = {"best_baseline": best_name, "best_baseline_ndcg": best.ndcg, "target": target,
                         "served_ndcg": achieved, "met": achieved >= target}
        print(f"target {task}: {TARGET_FACTOR} x {best.ndcg:.4f} ({best_name}) = {target:.4f}; "
              f"served {achieved:.4f}: {'met' if achieved >= target else 'MISSED'}")

    grid_rows = []
    if grid:
        print("\n| change from the served defaults | all items NDCG@10 | never bought NDCG@10 |")
        print("| --- | ---: | ---: |")
        print(f"| (none) | {served_results['all items'].ndcg:.4f} | {served_results['never bought'].ndcg:.4f} |")
        for changes in GRID:
            if set(changes) & LEARNED_FIELDS:
                variant, _ = learn_served(RecommenderConfig(**changes), split.history)
            else:
                variant = served.with_scoring(**changes)
            results = variant_lists(variant, split, k)
            grid_rows.append({"changes": changes, **{task: asdict(results[task]) for task in TASKS}})
            label = ", ".join(f"{key}={value:g}" for key, value in changes.items())
            print(f"| {label} | {results['all items'].ndcg:.4f} | {results['never bought'].ndcg:.4f} |", flush=True)

    return {
        "cut": cut_date, "days": days, "history_events": len(split.history),
        "learning_events_per_second": events_per_second,
        "learning_events_per_second_without_factorisation": fast_events_per_second, "ms_per_customer": seconds_per_customer * 1000,
        "rows": [{"model": name, **{task: asdict(result) for task, result in results.items()}} for name, results in rows],
        "targets": targets, "grid": grid_rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cut", action="append", help="cut date YYYY-MM-DD (UK time); repeat for several "
                        "cuts (default: 2011-11-09)")
    parser.add_argument("--days", type=int, default=30, help="length of the truth window in days (default: 30)")
    parser.add_argument("--k", type=int, default=10, help="list length scored (default: 10)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"folder with transactions_YYYY-MM.csv.gz (default: {DEFAULT_DATA_DIR})")
    parser.add_argument("--skip-factorisation", action="store_true",
                        help="leave out the river factorisation baseline (the served model keeps its own)")
    parser.add_argument("--grid", action="store_true", help="also score one-at-a-time changes of the served settings")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    cuts = args.cut or ["2011-11-09"]
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when the output goes to a file

    print(f"machine: {machine_description()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    started = time.perf_counter()
    events = retail_events(args.data_dir)
    print(f"read {len(events)} events from {args.data_dir} in {time.perf_counter() - started:.1f} s")

    results = [run_cut(events, cut, args.days, args.k, not args.skip_factorisation, args.grid) for cut in cuts]
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_description(), "command": sys.argv, "cuts": results},
                                        indent=2, default=str) + "\n", encoding="utf-8")
    met = all(target["met"] for result in results for target in result["targets"].values())
    print(f"\nall targets met: {'yes' if met else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
