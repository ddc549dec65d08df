"""Turn the online model into the lists that the API serves: per customer, per country, per product.

The stream worker calls ``begin_round`` after each learned batch and then
builds the lists of the customers that batch touched. Values that depend only
on the model and the event-time clock (eligibility, trend, similarity weights,
the factorisation's product matrix) are computed once per round and shared by
every customer of the round.

Two speeds, because the exact discover list costs a pass over every
(customer, product) pair (about 10 ms on the full retail history) while the
rest costs well under a millisecond:

- ``fast``: the exact buy-again list, and the customer's last exact discover
  list without the products they have ordered since or that are no longer
  eligible. The "all" list is merged from those two as the model merges
  them. Cold-start customers get their exact lists here.
- ``full``: every list exactly as ``Recommender.recommend`` returns it.

The worker writes ``fast`` lists right after the batch and queues the customer
for ``full`` within a time budget, so a purchase shows in the customer's lists
within a second even when discover lists lag behind under load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cie.recommend.model import Recommendation, Recommender
from cie.recommend.scoring import (
    COLD_START_PREFIX, CustomerScores, customer_scores, eligible_products, recommend_from_scores, top_products,
)


@dataclass
class CustomerLists:
    customer_id: str
    cold_start: bool
    country: str | None
    lists: dict[str, list[Recommendation]]  # kind -> best first
    exact: bool  # every list is what Recommender.recommend returns


@dataclass
class _CachedDiscover:
    products: np.ndarray  # product indices, best first
    scores: np.ndarray  # raw discover scores
    scaled: np.ndarray  # scores divided by the best finite discover score at the time
    reasons: list[str]


@dataclass
class ListBuilder:
    model: Recommender
    list_size: int = 50
    similar_size: int = 20
    shared: dict = field(default_factory=dict)
    _rows: dict[int, list[int]] = field(default_factory=dict)
    _indexed_rows: int = 0
    _discover: dict[str, _CachedDiscover] = field(default_factory=dict)

    def begin_round(self) -> None:
        """Forget the per-round values: call after learning and before building lists."""
        self.shared = {}
        pairs = self.model.pairs
        if pairs.size > self._indexed_rows:
            customers = pairs.customer[self._indexed_rows:pairs.size].tolist()
            for row, customer in enumerate(customers, start=self._indexed_rows):
                self._rows.setdefault(customer, []).append(row)
            self._indexed_rows = pairs.size

    def _scores(self, customer_id: str) -> CustomerScores:
        customer = self.model.customer_index.get(customer_id)
        rows = np.array(self._rows.get(customer, ()), dtype=np.int64) if customer is not None else None
        return customer_scores(self.model, customer_id, shared=self.shared, rows=rows)

    def _country_name(self, scores: CustomerScores) -> str | None:
        return self.model.countries[scores.country] if scores.country is not None else None

    def eligible(self) -> np.ndarray:
        if "eligible" not in self.shared:
            self.shared["eligible"] = eligible_products(self.model, self.model.clock)
        return self.shared["eligible"]

    # ------------------------------------------------------------ customers

    def full(self, customer_id: str) -> CustomerLists:
        scores = self._scores(customer_id)
        n = self.list_size
        if scores.is_cold_start:
            return self._cold(customer_id, scores)
        lists = {kind: recommend_from_scores(scores, kind, n) for kind in ("all", "buy_again", "discover")}
        discover = lists["discover"]
        values = scores.discover()
        finite = values[np.isfinite(values)]
        top = float(finite.max()) if finite.size else 0.0
        products = np.array([self.model.product_index[item.product_id] for item in discover], dtype=np.int64)
        raw = np.array([item.score for item in discover], dtype=np.float64)
        self._discover[customer_id] = _CachedDiscover(products, raw, raw / top if top > 0 else raw,
                                                      [item.reason for item in discover])
        return CustomerLists(customer_id, False, self._country_name(scores), lists, exact=True)

    def fast(self, customer_id: str) -> CustomerLists:
        scores = self._scores(customer_id)
        if scores.is_cold_start:
            return self._cold(customer_id, scores)
        model, n = self.model, self.list_size
        buy_again = recommend_from_scores(scores, "buy_again", n)

        pairs = model.pairs
        known = pairs.product[scores.rows][(pairs.ordered[scores.rows] == 1) | (pairs.rating[scores.rows] > 0)]
        cached = self._discover.get(customer_id)
        discover: list[Recommendation] = []
        discover_scaled: list[float] = []
        if cached is not None:
            keep = np.isin(cached.products, known, invert=True) & scores.eligible()[cached.products]
            for index in np.flatnonzero(keep).tolist():
                product = int(cached.products[index])
                discover.append(Recommendation(model.product_ids[product], float(cached.scores[index]),
                                               cached.reasons[index]))
                discover_scaled.append(float(cached.scaled[index]))

        # "all" as the model builds it: buy-again scaled to a top of 1, discover scaled by its weight.
        weight = model.config.discover_weight_in_all
        merged: list[tuple[float, int, Recommendation]] = []
        top = buy_again[0].score if buy_again else 0.0
        held = set()
        for item in buy_again:
            product = model.product_index[item.product_id]
            held.add(product)
            merged.append((item.score / top if top > 0 else item.score, product, item))
        if weight > 0:
            for item, scaled in zip(discover, discover_scaled):
                product = model.product_index[item.product_id]
                if product not in held:
                    merged.append((weight * scaled, product, item))
        merged.sort(key=lambda entry: (-entry[0], entry[1]))
        all_items = [Recommendation(item.product_id, score, item.reason) for score, _, item in merged[:n]]
        lists = {"all": all_items, "buy_again": buy_again, "discover": discover}
        return CustomerLists(customer_id, False, self._country_name(scores), lists, exact=False)

    def _cold(self, customer_id: str, scores: CustomerScores) -> CustomerLists:
        self._discover.pop(customer_id, None)
        items = [Recommendation(item.product_id, item.score, item.reason.removeprefix(COLD_START_PREFIX))
                 for item in recommend_from_scores(scores, "all", self.list_size)]
        return CustomerLists(customer_id, True, self._country_name(scores),
                             {"all": items, "buy_again": [], "discover": items}, exact=True)

    # ------------------------------------------------------------ countries

    def trending(self, country: str | None) -> list[Recommendation]:
        """Build the cold-start list of a country (or of everyone for None), with reasons "trending in <country>"."""
        scores = customer_scores(self.model, None, country=country, shared=self.shared)
        return [Recommendation(item.product_id, item.score, item.reason.removeprefix(COLD_START_PREFIX))
                for item in recommend_from_scores(scores, "all", self.list_size)]

    # ------------------------------------------------------------- products

    def similar(self, product_ids: list[str]) -> dict[str, list[Recommendation]]:
        """Products most often held by the same customers: cosine of the buyer sets.

        Computed for several products at once as a sparse product of the
        customer-by-product holding matrix with its columns for ``product_ids``.
        Products that may not be recommended are left out, and so is the product itself.
        """
        from scipy import sparse

        model = self.model
        if "holdings" not in self.shared:
            pairs = model.pairs
            held = np.flatnonzero(pairs.view("units") > 0)
            matrix = sparse.csc_matrix(
                (np.ones(held.size, dtype=np.float64), (pairs.customer[held], pairs.product[held])),
                shape=(model.customers.size, model.products.size))
            counts = np.asarray(matrix.sum(axis=0)).ravel()
            self.shared["holdings"] = (matrix, counts)
        matrix, counts = self.shared["holdings"]
        eligible = self.eligible()
        indices = [model.product_index[p] for p in product_ids if p in model.product_index]
        result: dict[str, list[Recommendation]] = {p: [] for p in product_ids}
        if not indices:
            return result
        together = (matrix[:, indices].T @ matrix).toarray()  # products asked x all products
        for row, product in enumerate(indices):
            shared_buyers = together[row]
            denominators = np.sqrt(counts[product] * counts)
            cosine = np.divide(shared_buyers, denominators, out=np.zeros_like(shared_buyers),
                               where=denominators > 0)
            cosine[product] = 0.0
            cosine[~eligible] = 0.0
            cosine[cosine <= 0] = -np.inf
            chosen = top_products(cosine, self.similar_size).tolist()
            result[model.product_ids[product]] = [
                Recommendation(model.product_ids[other], float(cosine[other]),
                               _bought_together(int(shared_buyers[other])))
                for other in chosen]
        return result


def _bought_together(customers: int) -> str:
    return "bought by the same customer" if customers == 1 else f"bought by the same {customers} customers"

