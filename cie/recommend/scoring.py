"""Vectorised scoring of one customer against the whole catalogue.

Every score is a numpy array with one entry per product index of the model.
The value ``-inf`` marks a product that must not be recommended to this customer.

- buy again: decayed order count of each product the customer holds, times
  ``(trend + trend_offset) ** trend_exponent``, so seasonal products that are
  selling now move up;
- discover: user-based nearest neighbours. Customers are compared by cosine
  similarity of their product sets, each product weighted by how recently
  they bought it. The ``neighbours`` most similar customers then vote for the
  products they bought, each vote weighted by similarity ** exponent and by
  the recency of their purchase. The votes, scaled to a maximum of 1, are
  blended with the min-max scaled factorisation score;
- all: buy-again scores scaled to a maximum of 1, plus discover scores
  scaled to a maximum of ``discover_weight_in_all`` for products not held;
- cold start (no product held): trend in the customer's country.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from cie.recommend.model import (
    KINDS, NEGATIVE_RATING, POSITIVE_RATING, SECONDS_PER_DAY, SERVICE, SOLD, Recommendation, Recommender,
    _event_seconds,
)

COLD_START_PREFIX = "new customer: "
# Share of the normalised global trend added to a country's trend, so that
# products the country has not bought yet still get an order.
GLOBAL_TREND_IN_COLD_START = 0.01


def _decay(times: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    return np.exp2((times - now) / (half_life_days * SECONDS_PER_DAY))


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Divide by the largest finite positive score, leaving -inf in place."""
    finite = scores[np.isfinite(scores)]
    top = finite.max() if finite.size else 0.0
    return scores / top if top > 0 else scores


def eligible_products(model: Recommender, now: float) -> np.ndarray:
    """Products that may be recommended to anyone at ``now``: sold at a positive price, not a
    service, positive net units, and sold within ``max_days_unsold`` of the latest sale.

    The age counts from the latest sale of any product, not from ``now``. Other events move
    the clock too (reviews of products the shop does not sell, for example), and they must not
    age the whole catalogue out.
    """
    products = model.products
    flags = products.view("flags")
    last_sold = products.view("last_sold")
    ok = ((flags & SOLD) != 0) & ((flags & SERVICE) == 0)
    ok &= products.view("units_sold") > 0
    latest_sale = min(now, float(last_sold.max())) if last_sold.size else now
    ok &= last_sold >= latest_sale - model.config.max_days_unsold * SECONDS_PER_DAY
    return ok


def _similarity_weights(model: Recommender, now: float) -> np.ndarray:
    """Weight of each pair row in the customer similarity: recency of a held product or of a liked rating."""
    config = model.config
    pairs = model.pairs
    weights = np.where(pairs.view("units") > 0, _decay(pairs.view("last"), now, config.similarity_half_life_days), 0.0)
    liked = pairs.view("rating") >= POSITIVE_RATING
    if liked.any():
        liked_weights = _decay(pairs.view("rated_at"), now, config.similarity_half_life_days)
        weights = np.maximum(weights, np.where(liked, liked_weights, 0.0))
    return weights


@dataclass
class CustomerScores:
    """Scores of one customer over the catalogue, computed on first use and cached."""

    model: Recommender
    now: float
    customer: int | None
    country: int | None
    rows: np.ndarray  # the customer's pair rows
    _cache: dict = field(default_factory=dict)
    # Values that depend only on the model and ``now``, not on the customer: eligibility, trend,
    # similarity weights and the factorisation's product matrix. The stream worker passes one dict
    # to every customer it scores between two learned batches, which computes them once per batch.
    shared: dict = field(default_factory=dict)

    def _shared(self, name: str | tuple, compute):
        if name not in self.shared:
            self.shared[name] = compute()
        return self.shared[name]

    @property
    def product_count(self) -> int:
        return self.model.products.size

    @property
    def is_cold_start(self) -> bool:
        return not np.any(self.model.pairs.units[self.rows] > 0)

    def eligible(self) -> np.ndarray:
        """Products that may be recommended to anyone at ``now``."""
        return self._shared("eligible", lambda: eligible_products(self.model, self.now))

    def excluded_for_customer(self) -> np.ndarray:
        """Products the customer rated at most NEGATIVE_RATING stars."""
        pairs = self.model.pairs
        ratings = pairs.rating[self.rows]
        excluded = np.zeros(self.product_count, dtype=bool)
        excluded[pairs.product[self.rows][(ratings > 0) & (ratings <= NEGATIVE_RATING)]] = True
        return excluded

    def trend(self) -> np.ndarray:
        """Decayed number of customers who bought each product recently, as of ``now``."""
        def compute():
            config = self.model.config
            factor = 2.0 ** ((self.model.reference - self.now) / (config.trend_half_life_days * SECONDS_PER_DAY))
            return self.model.products.view("trend") * factor

        return self._shared("trend", compute)

    def buy_again(self) -> np.ndarray:
        if "buy_again" in self._cache:
            return self._cache["buy_again"]
        model, config = self.model, self.model.config
        pairs = model.pairs
        rows = self.rows[pairs.units[self.rows] > 0]
        products = pairs.product[rows]
        repeat_factor = 2.0 ** ((model.reference - self.now) / (config.repeat_half_life_days * SECONDS_PER_DAY))
        repeat = pairs.repeat[rows] * repeat_factor
        scores = np.full(self.product_count, -np.inf)
        scores[products] = repeat * (self.trend()[products] + config.trend_offset) ** config.trend_exponent
        scores[~self.eligible() | self.excluded_for_customer()] = -np.inf
        self._cache["buy_again"] = scores
        return scores

    def neighbours(self) -> np.ndarray:
        """Weight of each customer as a neighbour: similarity ** exponent for the nearest, else 0."""
        if "neighbours" in self._cache:
            return self._cache["neighbours"]
        model, config = self.model, self.model.config
        pairs = model.pairs
        customers = pairs.view("customer")
        products = pairs.view("product")
        weights = self._shared("similarity_weights", lambda: _similarity_weights(self.model, self.now))

        own = np.zeros(self.product_count)
        own[products[self.rows]] = weights[self.rows]
        customer_count = model.customers.size
        dots = np.bincount(customers, weights=own[products] * weights, minlength=customer_count)
        norms = np.sqrt(np.bincount(customers, weights=weights * weights, minlength=customer_count))
        denominators = norms * norms[self.customer]
        similarity = np.divide(dots, denominators, out=np.zeros(customer_count), where=denominators > 0)
        similarity[self.customer] = 0.0

        count = min(config.neighbours, customer_count)
        nearest = np.argpartition(-similarity, count - 1)[:count] if count < customer_count else np.arange(customer_count)
        result = np.zeros(customer_count)
        result[nearest] = np.clip(similarity[nearest], 0.0, None) ** config.similarity_exponent
        self._cache["neighbours"] = result
        return result

    def neighbour_rows(self) -> np.ndarray:
        """Pair rows of products that the nearest neighbours hold."""
        if "neighbour_rows" not in self._cache:
            pairs = self.model.pairs
            weights = self.neighbours()[pairs.view("customer")]
            self._cache["neighbour_rows"] = np.flatnonzero((weights > 0) & (pairs.view("units") > 0))
        return self._cache["neighbour_rows"]

    def discover(self) -> np.ndarray:
        if "discover" in self._cache:
            return self._cache["discover"]
        config = self.model.config
        pairs = self.model.pairs
        rows = self.neighbour_rows()
        votes = self.neighbours()[pairs.customer[rows]] * _decay(pairs.last[rows], self.now,
                                                                 config.neighbour_recency_half_life_days)
        knn = np.bincount(pairs.product[rows], weights=votes, minlength=self.product_count)
        scores = _scaled(knn) + config.discover_trend_weight * _scaled(self.trend())

        known = (pairs.ordered[self.rows] == 1) | (pairs.rating[self.rows] > 0)
        scores[pairs.product[self.rows][known]] = -np.inf
        scores[~self.eligible() | (scores <= 0)] = -np.inf

        weight = config.factorisation_weight
        candidates = np.isfinite(scores)
        if self.model.factorisation is not None and weight > 0 and candidates.any():
            items = self._shared("factorisation_items",
                                 lambda: self.model.factorisation.item_matrix(self.product_count))
            predicted = self.model.factorisation.scores(self.customer, self.product_count, items=items)
            eligible = self.eligible()
            low, high = predicted[eligible].min(), predicted[eligible].max()
            scaled = (predicted - low) / (high - low) if high > low else np.zeros(self.product_count)
            top = scores[candidates].max()
            scores[candidates] = (1 - weight) * scores[candidates] / top + weight * scaled[candidates]
        self._cache["discover"] = scores
        return scores

    def all(self) -> np.ndarray:
        buy_again = _scaled(self.buy_again())
        discover = _scaled(self.discover())
        weight = self.model.config.discover_weight_in_all
        if weight == 0:
            discover = np.full(self.product_count, -np.inf)
        else:
            discover = np.where(np.isfinite(discover), weight * discover, -np.inf)
        return np.where(np.isfinite(buy_again), buy_again, discover)

    def cold_start(self) -> np.ndarray:
        """Trend in the customer's country, or the global trend when the country has none."""
        model = self.model
        global_trend = _scaled(self.trend())
        scores = global_trend.copy()
        if self.country is not None:
            country_trend = self._shared(("country_trend", self.country), self._country_trend)
            if np.any(country_trend[self.eligible()] > 0):
                scores = _scaled(country_trend) + GLOBAL_TREND_IN_COLD_START * global_trend
        pairs = model.pairs
        known = (pairs.ordered[self.rows] == 1) | (pairs.rating[self.rows] > 0)
        scores[pairs.product[self.rows][known]] = -np.inf
        scores[~self.eligible() | (scores <= 0)] = -np.inf
        return scores

    def _country_trend(self) -> np.ndarray:
        table = self.model.country_trend
        rows = np.flatnonzero(table.view("country") == self.country)
        return np.bincount(table.product[rows], weights=table.trend[rows], minlength=self.product_count)

    def scores(self, kind: str) -> np.ndarray:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if self.is_cold_start:
            if kind == "buy_again":
                return np.full(self.product_count, -np.inf)
            return self.cold_start()
        return {"all": self.all, "buy_again": self.buy_again, "discover": self.discover}[kind]()


def customer_scores(model: Recommender, customer_id: str | None, country: str | None = None,
                    at: datetime | None = None, shared: dict | None = None,
                    rows: np.ndarray | None = None) -> CustomerScores:
    """Prepare the scores of one customer; unknown customers and ``None`` get cold-start scores."""
    if model.clock is None:
        raise ValueError("the recommender has learned no events yet, so it has nothing to score")
    now = _event_seconds(at, "at") if at is not None else model.clock
    customer = model.customer_index.get(customer_id) if customer_id is not None else None
    if customer is None:
        rows = np.zeros(0, dtype=np.int64)
    elif rows is None:
        rows = np.flatnonzero(model.pairs.view("customer") == customer)
    country_index = model.country_index.get(country) if country else None
    if country_index is None and customer is not None and not country:
        stored = int(model.customers.country[customer])
        country_index = stored if stored >= 0 else None
    return CustomerScores(model=model, now=now, customer=customer, country=country_index, rows=rows,
                          shared=shared if shared is not None else {})


def top_products(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest finite scores, ties broken by lower index."""
    candidates = np.flatnonzero(np.isfinite(scores))
    if candidates.size > n:
        threshold = np.partition(scores[candidates], candidates.size - n)[candidates.size - n]
        candidates = candidates[scores[candidates] >= threshold]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order][:n]


def _date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).date().isoformat()


def buy_again_reason(model: Recommender, row: int) -> str:
    """Describe a customer's purchase rhythm for one product, e.g. "you buy this every month"."""
    pairs = model.pairs
    orders = int(round(float(pairs.orders[row])))
    if orders >= 3:
        interval_days = (pairs.last[row] - pairs.first[row]) / (orders - 1) / SECONDS_PER_DAY
        if interval_days <= 10:
            return "you buy this every week"
        if interval_days <= 20:
            return "you buy this every two weeks"
        if interval_days <= 45:
            return "you buy this every month"
        if interval_days <= 100:
            return "you buy this every few months"
        return f"you bought this {orders} times"
    if orders == 2:
        return "you bought this twice"
    return f"you bought this on {_date(float(pairs.last[row]))}"


def _trend_reason(model: Recommender, country: int | None) -> str:
    return f"trending in {model.countries[country]}" if country is not None else "trending now"


def discover_reasons(scores: CustomerScores, products: np.ndarray) -> list[str]:
    """Name, for each product, the customer's product that its holders among the neighbours hold most.

    Support is normalised like a cosine, by the square root of how many
    neighbours hold the candidate, so a best-seller that every neighbour
    holds does not become the reason for everything.
    """
    model = scores.model
    # Reasons depend only on the customer and the product, so the lists of one customer share them.
    known = scores._cache.setdefault("discover_reasons", {})
    missing = [product for product in products.tolist() if product not in known]
    if not missing:
        return [known[product] for product in products.tolist()]
    pairs = model.pairs
    rows = scores.neighbour_rows()
    neighbour_weights = scores.neighbours()
    owned = np.zeros(scores.product_count, dtype=bool)
    owned[pairs.product[scores.rows][pairs.units[scores.rows] > 0]] = True
    row_products = pairs.product[rows]
    row_customers = pairs.customer[rows]
    owned_rows = owned[row_products]
    holders_weight = np.bincount(row_products[owned_rows], weights=neighbour_weights[row_customers[owned_rows]],
                                 minlength=scores.product_count)
    normaliser = np.sqrt(np.where(holders_weight > 0, holders_weight, 1.0))

    for product in missing:
        buyers = np.zeros(model.customers.size)
        holders = row_customers[row_products == product]
        buyers[holders] = neighbour_weights[holders]
        support = np.bincount(row_products[owned_rows], weights=buyers[row_customers[owned_rows]],
                              minlength=scores.product_count)
        if support.size and support.max() > 0:
            anchor = int(np.argmax(support / normaliser))
            known[product] = f"bought with {model.descriptions[anchor] or model.product_ids[anchor]}"
        else:
            known[product] = _trend_reason(model, scores.country)
    return [known[product] for product in products.tolist()]


def recommend_from_scores(scores: CustomerScores, kind: str, n: int) -> list[Recommendation]:
    """Pick the top ``n`` products of one kind and attach a reason to each."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    values = scores.scores(kind)
    chosen = top_products(values, n)
    model = scores.model
    if scores.is_cold_start:
        reason = COLD_START_PREFIX + _trend_reason(model, scores.country)
        return [Recommendation(model.product_ids[p], float(values[p]), reason) for p in chosen.tolist()]

    pairs = model.pairs
    held_rows = scores.rows[pairs.units[scores.rows] > 0]
    row_of_product = dict(zip(pairs.product[held_rows].tolist(), held_rows.tolist()))
    new_products = np.array([p for p in chosen.tolist() if p not in row_of_product], dtype=np.int64)
    new_reasons = dict(zip(new_products.tolist(), discover_reasons(scores, new_products))) if new_products.size else {}
    result = []
    for product in chosen.tolist():
        if product in row_of_product:
            reason = buy_again_reason(model, row_of_product[product])
        else:
            reason = new_reasons[product]
        result.append(Recommendation(model.product_ids[product], float(values[product]), reason))
    return result


def recommend(model: Recommender, customer_id: str | None, n: int = 10, kind: str = "all",
              country: str | None = None, at: datetime | None = None) -> list[Recommendation]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if model.clock is None:
        return []  # nothing learned yet
    return recommend_from_scores(customer_scores(model, customer_id, country=country, at=at), kind, n)
