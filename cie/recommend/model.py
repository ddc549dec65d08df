"""Online recommender for implicit purchase feedback and explicit ratings.

Each order line updates the model in constant time, and a replay of the
same events in the same order rebuilds it bit for bit. It keeps:

- per customer and product: net units, order count, a decayed order count
  (half-life ``repeat_half_life_days``), first and last purchase time, rating;
- per product: net units sold, whether it was ever sold at a positive price,
  and a trend score, the number of customers whose latest purchase of it is
  recent, each weighted by ``2 ** (-age / trend_half_life_days)``;
- per country and product: the same trend score over order lines, guest
  orders included, for customers without a history;
- a river matrix factorisation trained with negative sampling
  (``factorisation.py``), blended into the discover score.

A customer holds a product while their net units of it are positive.

The decayed sums use forward decay: a purchase at time t adds ``2 ** ((t -
ref) / half_life)``, so adding never needs the current time. ``ref`` moves
forward with event time (``_rebase``) before those weights get large. Every
time is event time (``occurred_at``), and the model never reads the wall clock.

``scoring.py`` turns this state into scores over the whole catalogue.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from cie.catalog import is_service_code
from cie.recommend.columns import ColumnTable
from cie.recommend.factorisation import ImplicitFactorisation
from cie.recommend.state import dump_state, load_state

STATE_VERSION = 1
KINDS = ("all", "buy_again", "discover")
SECONDS_PER_DAY = 86_400.0

# Product flags.
SOLD = 1  # seen in a placed order at a positive unit price
SERVICE = 2  # a service code (cie.catalog) or a product event marked is_service

# Ratings of at most this many stars hide the product from that customer;
# ratings of at least POSITIVE_RATING count as an interaction in the similarity.
NEGATIVE_RATING = 2
POSITIVE_RATING = 4

# Forward-decay weights are rebased once the newest event is this many of the
# shortest half-life past the reference time, which keeps them below 2**16.
REBASE_AFTER_HALF_LIVES = 16.0


@dataclass(frozen=True)
class RecommenderConfig:
    """Model settings; the defaults are the served combination chosen on validation cuts.

    The fields in ``LEARNED_FIELDS`` shape the learned state. The rest act at
    query time, so ``Recommender.with_scoring`` can change them on a learned
    model.
    """

    repeat_half_life_days: float = 180.0
    trend_half_life_days: float = 7.0
    # river BiasedMF on implicit feedback. 0 factors turns it off, which made learning the retail
    # history about 10 times faster (docs/benchmarks-recommendations.md).
    factorisation_factors: int = 16
    factorisation_negatives: int = 4
    factorisation_learning_rate: float = 0.05
    # Share of the min-max scaled factorisation score in the discover score.
    factorisation_weight: float = 0.2
    # Buy again: decayed order count times (trend + trend_offset) ** trend_exponent.
    trend_exponent: float = 0.3
    trend_offset: float = 1.0
    # Discover: what the most similar customers bought recently.
    neighbours: int = 200
    similarity_half_life_days: float = 180.0
    similarity_exponent: float = 2.0
    neighbour_recency_half_life_days: float = 14.0
    # Weight of the normalised trend score added to the neighbour score in discover.
    discover_trend_weight: float = 0.01
    # Scale of discover scores in the "all" list, where buy-again scores peak at 1.
    discover_weight_in_all: float = 0.05
    # Products nobody bought for longer than this are treated as out of the catalogue.
    max_days_unsold: float = 365.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("neighbours", "factorisation_factors", "factorisation_negatives"):
                smallest = 1 if field.name == "neighbours" else 0
                if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
                    raise ValueError(f"{field.name} must be an integer of at least {smallest}, got {value!r}")
            elif not math.isfinite(value) or value < 0:
                raise ValueError(f"{field.name} must be a finite non-negative number, got {value!r}")
        for name in ("repeat_half_life_days", "trend_half_life_days", "similarity_half_life_days",
                     "neighbour_recency_half_life_days", "max_days_unsold", "factorisation_learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


LEARNED_FIELDS = frozenset({
    "repeat_half_life_days", "trend_half_life_days",
    "factorisation_factors", "factorisation_negatives", "factorisation_learning_rate",
})


class Recommendation(NamedTuple):
    """One recommended product. Scores are comparable only within one list, and higher is better."""

    product_id: str
    score: float
    reason: str


def _event_seconds(value: Any, field: str) -> float:
    if not isinstance(value, datetime):
        raise ValueError(f"{field} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.timestamp()


class Recommender:
    """Learns from order, cancellation, review and product events; recommends per customer.

    ``learn`` takes the event dicts of the platform's Avro contracts.
    ``recommend`` returns ``Recommendation`` tuples for the kinds "buy_again"
    (products the customer holds), "discover" (products the customer never
    ordered or rated) and "all" (both, buy-again first unless a discover score
    is higher). Products that were never sold at a positive price, that are
    service codes, whose net sales are not positive or that nobody bought for
    ``max_days_unsold`` days are never recommended.
    """

    def __init__(self, config: RecommenderConfig | None = None):
        self.config = config or RecommenderConfig()
        self.clock: float | None = None  # latest occurred_at seen, Unix seconds
        self.reference: float | None = None  # forward-decay reference time, Unix seconds
        self.events_learned = 0

        self.product_ids: list[str] = []
        self.product_index: dict[str, int] = {}
        self.descriptions: list[str] = []
        self.products = ColumnTable({"flags": "u1", "units_sold": "f8", "last_sold": "f8", "trend": "f8"})

        self.customer_ids: list[str] = []
        self.customer_index: dict[str, int] = {}
        self.customers = ColumnTable({"country": "i4"})

        self.countries: list[str] = []
        self.country_index: dict[str, int] = {}

        # One row per customer and product they ordered or rated.
        self.pairs = ColumnTable({
            "customer": "i4", "product": "i4", "units": "f8", "orders": "f8", "repeat": "f8",
            "first": "f8", "last": "f8", "ordered": "u1", "rating": "i1", "rated_at": "f8",
        })
        self.pair_index: dict[int, int] = {}  # (customer << 32) | product -> row

        # One row per country and product.
        self.country_trend = ColumnTable({"country": "i4", "product": "i4", "trend": "f8"})
        self.country_trend_index: dict[int, int] = {}  # (country << 32) | product -> row

        self.factorisation: ImplicitFactorisation | None = None
        if self.config.factorisation_factors > 0:
            self.factorisation = ImplicitFactorisation(
                factors=self.config.factorisation_factors,
                negatives=self.config.factorisation_negatives,
                learning_rate=self.config.factorisation_learning_rate,
            )

    # ----------------------------------------------------------------- learning

    def learn(self, event: dict) -> bool:
        """Update the model with one event; return False for event types it does not use.

        Raises ValueError for an event without an aware ``occurred_at`` or with
        a non-positive quantity, before any state changes.
        """
        event_type = event.get("event_type")
        if event_type not in ("order.placed", "order.cancelled", "review.submitted", "product.upserted",
                              "customer.registered", "customer.traits_updated"):
            return False
        occurred_at = _event_seconds(event.get("occurred_at"), "occurred_at")
        if event_type in ("order.placed", "order.cancelled"):
            lines = self._order_lines(event)
            self._advance_clock(occurred_at)
            self._learn_order(event, lines, occurred_at, cancelled=event_type == "order.cancelled")
        elif event_type == "review.submitted":
            self._advance_clock(occurred_at)
            self._learn_review(event, occurred_at)
        elif event_type == "product.upserted":
            self._advance_clock(occurred_at)
            self._learn_product(event)
        else:
            self._advance_clock(occurred_at)
            if event.get("customer_id") and event.get("country"):
                customer = self._customer(event["customer_id"])
                self.customers.country[customer] = self._country(event["country"])
        self.events_learned += 1
        return True

    @staticmethod
    def _order_lines(event: dict) -> dict[str, tuple[int, float, str | None]]:
        """Sum an order's lines per product: product -> (units, highest unit price, description)."""
        merged: dict[str, tuple[int, float, str | None]] = {}
        for line in event.get("lines") or ():
            product_id = line["product_id"]
            quantity = int(line["quantity"])
            if quantity <= 0:
                raise ValueError(f"order {event.get('order_id')!r} has quantity {quantity} for {product_id!r}; "
                                 f"quantities must be positive in placed and cancelled orders")
            price = float(line.get("unit_price") or 0)
            description = line.get("description")
            if product_id in merged:
                units, best_price, known_description = merged[product_id]
                merged[product_id] = (units + quantity, max(best_price, price), known_description or description)
            else:
                merged[product_id] = (quantity, price, description)
        return merged

    def _advance_clock(self, occurred_at: float) -> None:
        if self.reference is None:
            self.reference = math.floor(occurred_at / SECONDS_PER_DAY) * SECONDS_PER_DAY
        if self.clock is None or occurred_at > self.clock:
            self.clock = occurred_at
        shortest = min(self.config.repeat_half_life_days, self.config.trend_half_life_days) * SECONDS_PER_DAY
        if self.clock - self.reference > REBASE_AFTER_HALF_LIVES * shortest:
            self._rebase(self.clock)

    def _rebase(self, new_reference: float) -> None:
        """Move the forward-decay reference time and rescale every decayed sum to match."""
        shift = new_reference - self.reference
        trend_factor = 2.0 ** (-shift / (self.config.trend_half_life_days * SECONDS_PER_DAY))
        repeat_factor = 2.0 ** (-shift / (self.config.repeat_half_life_days * SECONDS_PER_DAY))
        self.products.view("trend")[:] *= trend_factor
        self.country_trend.view("trend")[:] *= trend_factor
        self.pairs.view("repeat")[:] *= repeat_factor
        self.reference = new_reference

    def _trend_weight(self, at: float) -> float:
        return 2.0 ** ((at - self.reference) / (self.config.trend_half_life_days * SECONDS_PER_DAY))

    def _repeat_weight(self, at: float) -> float:
        return 2.0 ** ((at - self.reference) / (self.config.repeat_half_life_days * SECONDS_PER_DAY))

    def _product(self, product_id: str, description: str | None = None) -> int:
        index = self.product_index.get(product_id)
        if index is None:
            index = self.products.append()
            self.product_index[product_id] = index
            self.product_ids.append(product_id)
            self.descriptions.append("")
            if is_service_code(product_id):
                self.products.flags[index] = SERVICE
        if description and description.strip():
            self.descriptions[index] = description.strip()  # the latest name, as the catalogue projection keeps it
        return index

    def _customer(self, customer_id: str) -> int:
        index = self.customer_index.get(customer_id)
        if index is None:
            index = self.customers.append()
            self.customer_index[customer_id] = index
            self.customer_ids.append(customer_id)
            self.customers.country[index] = -1
        return index

    def _country(self, country: str) -> int:
        index = self.country_index.get(country)
        if index is None:
            index = len(self.countries)
            self.country_index[country] = index
            self.countries.append(country)
        return index

    def _pair(self, customer: int, product: int, create: bool) -> int | None:
        key = (customer << 32) | product
        row = self.pair_index.get(key)
        if row is None and create:
            row = self.pairs.append()
            self.pair_index[key] = row
            self.pairs.customer[row] = customer
            self.pairs.product[row] = product
        return row

    def _learn_order(self, event: dict, lines: dict, occurred_at: float, cancelled: bool) -> None:
        customer_id = event.get("customer_id")
        customer = self._customer(customer_id) if customer_id else None
        country = self._country(event["country"]) if event.get("country") else None
        if customer is not None and country is not None:
            self.customers.country[customer] = country
        trend_weight = self._trend_weight(occurred_at)

        products_in_order = []
        for product_id, (units, price, description) in lines.items():
            product = self._product(product_id, description)
            products_in_order.append(product)
            products = self.products
            if cancelled:
                products.units_sold[product] -= units
            else:
                products.units_sold[product] += units
                if price > 0:
                    products.flags[product] |= SOLD
                if occurred_at > products.last_sold[product]:
                    products.last_sold[product] = occurred_at
            if country is not None:
                self._add_country_trend(country, product, -trend_weight if cancelled else trend_weight)
            if customer is None:
                continue
            if cancelled:
                self._cancel_pair(customer, product, units)
            else:
                self._place_pair(customer, product, units, occurred_at)

        # After the loop, so that no product of this order is drawn as a negative.
        if self.factorisation is not None and customer is not None:
            for product in products_in_order:
                if cancelled:
                    self.factorisation.learn_target(customer, product, 0.0)
                elif not self.products.flags[product] & SERVICE:
                    self.factorisation.learn_purchase(customer, product, lambda other: self._has_ordered(customer, other))

    def _has_ordered(self, customer: int, product: int) -> bool:
        row = self.pair_index.get((customer << 32) | product)
        return row is not None and self.pairs.ordered[row] == 1

    def _add_country_trend(self, country: int, product: int, weight: float) -> None:
        key = (country << 32) | product
        row = self.country_trend_index.get(key)
        if row is None:
            if weight <= 0:
                return
            row = self.country_trend.append()
            self.country_trend_index[key] = row
            self.country_trend.country[row] = country
            self.country_trend.product[row] = product
        # NOTE: a cancellation subtracts a line's weight at the cancellation
        # time, which is at least the weight that its order added. The floor
        # at 0 keeps the difference from going negative.
        self.country_trend.trend[row] = max(0.0, self.country_trend.trend[row] + weight)

    def _place_pair(self, customer: int, product: int, units: int, occurred_at: float) -> None:
        row = self._pair(customer, product, create=True)
        pairs = self.pairs
        was_held = pairs.units[row] > 0
        old_last = pairs.last[row]
        new_last = max(old_last, occurred_at) if was_held else occurred_at
        # A product bought again after a full cancellation starts a new history.
        pairs.first[row] = min(pairs.first[row], occurred_at) if was_held else occurred_at
        pairs.units[row] += units
        pairs.orders[row] += 1.0
        pairs.repeat[row] += self._repeat_weight(occurred_at)
        pairs.last[row] = new_last
        pairs.ordered[row] = 1

        # The product trend counts each customer once, at their latest purchase.
        trend = self.products.trend
        if was_held:
            trend[product] += self._trend_weight(new_last) - self._trend_weight(old_last)
        else:
            trend[product] += self._trend_weight(new_last)

    def _cancel_pair(self, customer: int, product: int, units: int) -> None:
        """Remove cancelled units; counts shrink in proportion, and a product with no units left is dropped."""
        row = self._pair(customer, product, create=False)
        if row is None:
            return  # a cancellation of a purchase the model never saw
        pairs = self.pairs
        held = pairs.units[row]
        if held <= 0:
            return
        if units < held:
            kept = 1.0 - units / held
            pairs.units[row] = held - units
            pairs.orders[row] *= kept
            pairs.repeat[row] *= kept
            return
        pairs.units[row] = 0.0
        pairs.orders[row] = 0.0
        pairs.repeat[row] = 0.0
        trend = self.products.trend
        trend[product] = max(0.0, trend[product] - self._trend_weight(pairs.last[row]))

    def _learn_review(self, event: dict, occurred_at: float) -> None:
        rating = event.get("rating")
        if rating is None or not event.get("customer_id") or not event.get("product_id"):
            return
        rating = int(rating)
        if not 1 <= rating <= 5:
            raise ValueError(f"rating must be between 1 and 5, got {rating} for product {event['product_id']!r}")
        customer = self._customer(event["customer_id"])
        product = self._product(event["product_id"])
        row = self._pair(customer, product, create=True)
        if occurred_at >= self.pairs.rated_at[row]:
            self.pairs.rating[row] = rating
            self.pairs.rated_at[row] = occurred_at
        if self.factorisation is not None:
            self.factorisation.learn_target(customer, product, (rating - 1) / 4)

    def _learn_product(self, event: dict) -> None:
        product = self._product(event["product_id"], event.get("description"))
        if event.get("is_service"):
            self.products.flags[product] |= SERVICE

    # ------------------------------------------------------------- recommending

    def with_scoring(self, **changes: Any) -> Recommender:
        """Return a view of this model that scores with other query-time settings.

        The view shares the learned state, so learn on the original only.
        Raises ValueError for a setting that shapes the learned state.
        """
        learned = LEARNED_FIELDS.intersection(changes)
        if learned:
            raise ValueError(f"{', '.join(sorted(learned))} shape the learned state; build a new model instead")
        view = object.__new__(Recommender)
        view.__dict__.update(self.__dict__)
        view.config = dataclasses.replace(self.config, **changes)
        return view

    def knows_customer(self, customer_id: str) -> bool:
        """Whether the customer holds at least one product, i.e. gets personal recommendations."""
        customer = self.customer_index.get(customer_id)
        if customer is None:
            return False
        rows = np.flatnonzero(self.pairs.view("customer") == customer)
        return bool(np.any(self.pairs.units[rows] > 0))

    def recommend(self, customer_id: str | None, n: int = 10, kind: str = "all",
                  country: str | None = None, at: datetime | None = None) -> list[Recommendation]:
        """Return up to ``n`` recommendations, best first.

        ``country`` is used for customers without a history and overrides the
        stored country for them. ``at`` defaults to the time of the newest
        event learned; a later time only ages the decayed scores.
        """
        from cie.recommend.scoring import recommend

        return recommend(self, customer_id, n=n, kind=kind, country=country, at=at)

    # ------------------------------------------------------------------ state

    def state_bytes(self) -> bytes:
        """Serialise the learned state; the same events in the same order give the same bytes."""
        header = {
            "version": STATE_VERSION,
            "config": dataclasses.asdict(self.config),
            "clock": self.clock,
            "reference": self.reference,
            "events_learned": self.events_learned,
            "product_ids": self.product_ids,
            "descriptions": self.descriptions,
            "customer_ids": self.customer_ids,
            "countries": self.countries,
        }
        arrays = {}
        arrays.update(self.products.export("products"))
        arrays.update(self.customers.export("customers"))
        arrays.update(self.pairs.export("pairs"))
        arrays.update(self.country_trend.export("country_trend"))
        if self.factorisation is not None:
            header["factorisation"], factorisation_arrays = self.factorisation.export("factorisation")
            arrays.update(factorisation_arrays)
        return dump_state(header, arrays)

    @classmethod
    def from_state_bytes(cls, data: bytes) -> Recommender:
        """Rebuild a model from ``state_bytes`` output; raise ValueError if the bytes are not a valid state."""
        header, arrays = load_state(data)
        if header.get("version") != STATE_VERSION:
            raise ValueError(f"recommender state version {header.get('version')!r} is not supported "
                             f"(expected {STATE_VERSION}); rebuild the model by replaying the events")
        model = cls(RecommenderConfig(**header["config"]))
        model.clock = header["clock"]
        model.reference = header["reference"]
        model.events_learned = header["events_learned"]
        model.product_ids = list(header["product_ids"])
        model.product_index = {product_id: i for i, product_id in enumerate(model.product_ids)}
        model.descriptions = list(header["descriptions"])
        model.customer_ids = list(header["customer_ids"])
        model.customer_index = {customer_id: i for i, customer_id in enumerate(model.customer_ids)}
        model.countries = list(header["countries"])
        model.country_index = {country: i for i, country in enumerate(model.countries)}
        model.products.restore("products", arrays)
        model.customers.restore("customers", arrays)
        model.pairs.restore("pairs", arrays)
        model.country_trend.restore("country_trend", arrays)
        if model.factorisation is not None:
            if "factorisation" not in header:
                raise ValueError("recommender state has no factorisation weights although its settings enable them")
            model.factorisation.restore("factorisation", header["factorisation"], arrays)
        if model.products.size != len(model.product_ids) or model.customers.size != len(model.customer_ids):
            raise ValueError("recommender state is inconsistent: id lists and columns have different lengths")

        customers = model.pairs.view("customer").astype(np.int64)
        keys = (customers << 32) | model.pairs.view("product").astype(np.int64)
        model.pair_index = {int(key): row for row, key in enumerate(keys.tolist())}
        countries = model.country_trend.view("country").astype(np.int64)
        keys = (countries << 32) | model.country_trend.view("product").astype(np.int64)
        model.country_trend_index = {int(key): row for row, key in enumerate(keys.tolist())}
        return model
