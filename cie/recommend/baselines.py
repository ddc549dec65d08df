"""Baseline recommenders that the served model is measured against.

They learn from the same event dicts as ``Recommender`` but are built for an
offline evaluation: statistics are computed when the first recommendation is
requested after learning, and the caches assume that learning has stopped
by then. Each ``recommend_products(customer_id, n, kind)`` returns product
ids for kind "all" or "discover" (products the customer never ordered).
Service codes and products never sold at a positive price are left out.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from cie.catalog import is_service_code
from cie.recommend.factorisation import ImplicitFactorisation
from cie.recommend.scoring import top_products


class _PurchaseLog:
    """Per-customer product history shared by the baselines: orders, net units, last purchase time."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, int]] = defaultdict(dict)
        self.units: dict[str, dict[str, int]] = defaultdict(dict)
        self.last: dict[str, dict[str, float]] = defaultdict(dict)
        self.ordered: dict[str, set[str]] = defaultdict(set)
        self.sellable: set[str] = set()
        self.clock = 0.0

    def learn(self, event: dict) -> None:
        event_type = event.get("event_type")
        if event_type not in ("order.placed", "order.cancelled"):
            return
        at = event["occurred_at"].timestamp()
        self.clock = max(self.clock, at)
        customer = event.get("customer_id")
        cancelled = event_type == "order.cancelled"
        units: dict[str, int] = {}
        for line in event["lines"]:
            product = line["product_id"]
            units[product] = units.get(product, 0) + int(line["quantity"])
            if not cancelled and float(line["unit_price"]) > 0 and not is_service_code(product):
                self.sellable.add(product)
        if customer is None:
            return
        for product, quantity in units.items():
            held = self.units[customer].get(product, 0)
            if cancelled:
                if held <= 0:
                    continue
                if quantity >= held:
                    # A cancellation of everything held undoes the product for this customer.
                    del self.units[customer][product]
                    del self.orders[customer][product]
                    del self.last[customer][product]
                else:
                    self.units[customer][product] = held - quantity
                continue
            self.units[customer][product] = held + quantity
            self.orders[customer][product] = self.orders[customer].get(product, 0) + 1
            self.last[customer][product] = max(self.last[customer].get(product, at), at)
            self.ordered[customer].add(product)


class _Baseline:
    name = "baseline"

    def __init__(self, log: _PurchaseLog):
        self.log = log

    def learn(self, event: dict) -> None:
        """Do nothing, because the caller feeds the shared purchase log first, and it contains all this baseline reads."""

    def recommend_products(self, customer_id: str, n: int = 10, kind: str = "all") -> list[str]:
        raise NotImplementedError


def _ranked(scores: dict[str, float], n: int, excluded: set[str] = frozenset()) -> list[str]:
    ranked = sorted((product for product in scores if product not in excluded), key=lambda p: (-scores[p], p))
    return ranked[:n]


class OwnMostBought(_Baseline):
    """The customer's products by number of orders, ties by product id."""

    name = "own most-bought"

    def recommend_products(self, customer_id, n=10, kind="all"):
        if kind == "discover":
            return []
        orders = {p: c for p, c in self.log.orders.get(customer_id, {}).items() if p in self.log.sellable}
        return _ranked(orders, n)


class Popular(_Baseline):
    """Products by the number of distinct customers who bought them in the last ``days`` (None: ever)."""

    def __init__(self, log: _PurchaseLog, days: float | None):
        super().__init__(log)
        self.days = days
        self.name = f"popular, last {days:g} days" if days is not None else "popular, all time"
        self._ranking: list[str] | None = None

    def ranking(self) -> list[str]:
        if self._ranking is None:
            since = self.log.clock - self.days * 86_400 if self.days is not None else -np.inf
            counts: dict[str, int] = defaultdict(int)
            for last in self.log.last.values():
                for product, at in last.items():
                    if at >= since and product in self.log.sellable:
                        counts[product] += 1
            self._ranking = _ranked(counts, len(counts))
        return self._ranking

    def recommend_products(self, customer_id, n=10, kind="all"):
        excluded = self.log.ordered.get(customer_id, set()) if kind == "discover" else set()
        result = []
        for product in self.ranking():
            if product not in excluded:
                result.append(product)
                if len(result) == n:
                    break
        return result


class CoOccurrence(_Baseline):
    """Item-to-item cosine of customer co-occurrence counts, summed over the customer's products.

    A product's similarity with itself is left out, so a product scores only
    through the customer's other products. The dense product-by-product
    matrix takes 4 bytes per cell (about 100 MB for 5,000 products).
    """

    name = "co-occurrence"

    def __init__(self, log: _PurchaseLog):
        super().__init__(log)
        self._similarity: np.ndarray | None = None

    def _build(self) -> None:
        self.products = sorted(self.log.sellable)
        self.index = {product: i for i, product in enumerate(self.products)}
        customers = sorted(self.log.units)
        matrix = np.zeros((len(customers), len(self.products)), dtype=np.float32)
        for row, customer in enumerate(customers):
            columns = [self.index[p] for p in self.log.units[customer] if p in self.index]
            matrix[row, columns] = 1.0
        counts = matrix.T @ matrix
        totals = np.sqrt(np.diag(counts).astype(np.float64))
        np.fill_diagonal(counts, 0.0)
        denominators = np.outer(totals, totals)
        self._similarity = np.divide(counts, denominators, out=np.zeros_like(counts),
                                     where=denominators > 0).astype(np.float32)

    def recommend_products(self, customer_id, n=10, kind="all"):
        if self._similarity is None:
            self._build()
        held = [self.index[p] for p in self.log.units.get(customer_id, {}) if p in self.index]
        if not held:
            return []
        scores = self._similarity[held].sum(axis=0).astype(np.float64)
        if kind == "discover":
            ordered = [self.index[p] for p in self.log.ordered.get(customer_id, ()) if p in self.index]
            scores[ordered] = -np.inf
        scores[scores <= 0] = -np.inf
        return [self.products[i] for i in top_products(scores, n).tolist()]


class RiverFactorisation(_Baseline):
    """The served model's factorisation component alone (river BiasedMF with negative sampling)."""

    name = "river BiasedMF, negative sampling"

    def __init__(self, log: _PurchaseLog, factors: int = 16, negatives: int = 4, learning_rate: float = 0.05):
        super().__init__(log)
        self.factorisation = ImplicitFactorisation(factors=factors, negatives=negatives, learning_rate=learning_rate)
        self.customers: dict[str, int] = {}
        self.products: dict[str, int] = {}
        self.product_ids: list[str] = []

    def _product(self, product_id: str) -> int:
        if product_id not in self.products:
            self.products[product_id] = len(self.product_ids)
            self.product_ids.append(product_id)
        return self.products[product_id]

    def learn(self, event: dict) -> None:
        event_type = event.get("event_type")
        customer_id = event.get("customer_id")
        if customer_id is None or event_type not in ("order.placed", "order.cancelled", "review.submitted"):
            return
        customer = self.customers.setdefault(customer_id, len(self.customers))
        if event_type == "review.submitted":
            if event.get("rating") is not None:
                self.factorisation.learn_target(customer, self._product(event["product_id"]),
                                                (int(event["rating"]) - 1) / 4)
            return
        products = [self._product(p) for p in dict.fromkeys(line["product_id"] for line in event["lines"])]
        if event_type == "order.cancelled":
            for product in products:
                self.factorisation.learn_target(customer, product, 0.0)
            return
        ordered = self.log.ordered.get(customer_id, set())
        for product in products:
            if not is_service_code(self.product_ids[product]):
                self.factorisation.learn_purchase(customer, product, lambda other: self.product_ids[other] in ordered)

    def recommend_products(self, customer_id, n=10, kind="all"):
        customer = self.customers.get(customer_id, -1)
        scores = self.factorisation.scores(customer, len(self.product_ids))
        excluded = self.log.ordered.get(customer_id, set()) if kind == "discover" else set()
        allowed = np.array([p in self.log.sellable and p not in excluded for p in self.product_ids])
        scores = np.where(allowed, scores, -np.inf)
        return [self.product_ids[i] for i in top_products(scores, n).tolist()]


def build_baselines(include_factorisation: bool = True) -> tuple[_PurchaseLog, list[_Baseline]]:
    """Return the shared purchase log and the baselines that read it.

    Feed every event to ``log.learn`` first and then to each baseline's ``learn``.
    """
    log = _PurchaseLog()
    baselines: list[_Baseline] = [OwnMostBought(log), Popular(log, 30), Popular(log, None), CoOccurrence(log)]
    if include_factorisation:
        baselines.append(RiverFactorisation(log))
    return log, baselines
