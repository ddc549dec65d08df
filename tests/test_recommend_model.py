"""Unit tests of the online recommender on small synthetic event streams (no services needed)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from cie.recommend import Recommender, RecommenderConfig
from cie.recommend.scoring import COLD_START_PREFIX, customer_scores

START = datetime(2011, 1, 3, 9, 0, tzinfo=timezone.utc)
SERVICE_PRODUCTS = ["POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "gift_0001_20"]
GOODS = [f"P{i:03d}" for i in range(40)]


def order(customer, products, at, *, cancelled=False, country="United Kingdom", order_id=None, quantity=2, price=1.5):
    return {
        "event_type": "order.cancelled" if cancelled else "order.placed",
        "customer_id": customer,
        "occurred_at": at,
        "country": country,
        "order_id": order_id or f"{'C' if cancelled else ''}{customer}-{at.isoformat()}",
        "lines": [{"line_number": i + 1, "product_id": p, "description": f"item {p}", "quantity": quantity,
                   "unit_price": price} for i, p in enumerate(products)],
    }


def synthetic_events(seed: int = 3, customers: int = 30, weeks: int = 40) -> list[dict]:
    """Customers in three taste groups buying weekly, with service lines and some cancellations."""
    rng = random.Random(seed)
    events = []
    for week in range(weeks):
        for c in range(customers):
            if rng.random() < 0.5:
                continue
            group = c % 3
            favourites = GOODS[group * 12:(group + 1) * 12]
            basket = rng.sample(favourites, 4) + rng.sample(GOODS, 1) + [rng.choice(SERVICE_PRODUCTS)]
            at = START + timedelta(weeks=week, hours=c)
            country = "Germany" if c % 5 == 0 else "United Kingdom"
            events.append(order(f"C{c:02d}", basket, at, country=country))
            if rng.random() < 0.1:
                events.append(order(f"C{c:02d}", basket[:1], at + timedelta(hours=1), cancelled=True, country=country))
    # A product that only ever appears in cancellations.
    events.append(order("C01", ["ONLYCANCELLED"], START + timedelta(weeks=weeks), cancelled=True))
    events.sort(key=lambda event: event["occurred_at"])
    return events


def learned(events, config=None) -> Recommender:
    model = Recommender(config)
    for event in events:
        model.learn(event)
    return model


def ordered_products(events, customer):
    return {line["product_id"] for e in events
            if e["customer_id"] == customer and e["event_type"] == "order.placed" for line in e["lines"]}


@pytest.fixture(scope="module")
def events():
    return synthetic_events()


@pytest.fixture(scope="module")
def model(events):
    return learned(events)


def test_discover_excludes_bought_products(model, events):
    for c in range(30):
        customer = f"C{c:02d}"
        bought = ordered_products(events, customer)
        recommended = [r.product_id for r in model.recommend(customer, n=20, kind="discover")]
        assert recommended, f"no discover list for {customer}"
        assert not set(recommended) & bought, f"{customer} was offered products they bought"


def test_buy_again_lists_only_held_products(model, events):
    for c in range(30):
        customer = f"C{c:02d}"
        recommended = {r.product_id for r in model.recommend(customer, n=50, kind="buy_again")}
        assert recommended <= ordered_products(events, customer)


def test_service_and_cancelled_only_never_recommended(model):
    forbidden = set(SERVICE_PRODUCTS) | {"ONLYCANCELLED"}
    for customer in [f"C{c:02d}" for c in range(30)] + ["unknown", None]:
        for kind in ("all", "buy_again", "discover"):
            recommended = {r.product_id for r in model.recommend(customer, n=100, kind=kind)}
            assert not recommended & forbidden, f"{customer} {kind}: {recommended & forbidden}"


def test_product_event_marks_service():
    events = [order("A", ["X1", "X2"], START), order("B", ["X1", "X2"], START + timedelta(days=1))]
    model = learned(events)
    model.learn({"event_type": "product.upserted", "product_id": "X2", "description": "carriage",
                 "is_service": True, "occurred_at": START + timedelta(days=2)})
    assert [r.product_id for r in model.recommend("A", kind="buy_again")] == ["X1"]


def test_cancellation_undoes_purchase():
    model = learned([
        order("A", ["KEEP", "UNDO"], START, quantity=3),
        order("A", ["UNDO"], START + timedelta(hours=2), cancelled=True, quantity=3),
        order("B", ["KEEP", "UNDO"], START + timedelta(days=1)),
    ])
    assert [r.product_id for r in model.recommend("A", kind="buy_again")] == ["KEEP"]
    assert "UNDO" not in {r.product_id for r in model.recommend("A", kind="all")}
    assert "UNDO" not in {r.product_id for r in model.recommend("A", kind="discover")}


def test_partial_cancellation_keeps_product():
    model = learned([
        order("A", ["KEEP"], START, quantity=5),
        order("A", ["KEEP"], START + timedelta(hours=2), cancelled=True, quantity=2),
    ])
    assert [r.product_id for r in model.recommend("A", kind="buy_again")] == ["KEEP"]


def test_cancelled_customer_falls_back_to_cold_start():
    model = learned([
        order("A", ["ONLY"], START),
        order("A", ["ONLY"], START + timedelta(hours=1), cancelled=True),
        order("B", ["OTHER"], START + timedelta(days=1)),
    ])
    recommendations = model.recommend("A")
    assert [r.product_id for r in recommendations] == ["OTHER"]
    assert recommendations[0].reason.startswith(COLD_START_PREFIX)


def test_cold_start_uses_country_trend(model):
    recommendations = model.recommend(None, n=5, country="Germany")
    assert len(recommendations) == 5
    for recommendation in recommendations:
        assert recommendation.reason == COLD_START_PREFIX + "trending in Germany"
    unknown = model.recommend("never-seen", n=5)
    assert all(r.reason == COLD_START_PREFIX + "trending now" for r in unknown)
    assert model.recommend("never-seen", kind="buy_again") == []
    assert not model.knows_customer("never-seen")
    assert model.knows_customer("C00")


def test_cold_start_prefers_country_best_seller():
    events = [order(f"DE{i}", ["GERMAN"], START + timedelta(hours=i), country="Germany") for i in range(3)]
    events += [order(f"UK{i}", ["BRITISH"], START + timedelta(hours=i), country="United Kingdom") for i in range(5)]
    model = learned(sorted(events, key=lambda e: e["occurred_at"]))
    assert model.recommend(None, n=1, country="Germany")[0].product_id == "GERMAN"
    assert model.recommend(None, n=1, country="United Kingdom")[0].product_id == "BRITISH"


def test_personal_reasons():
    events = [order("A", ["MONTHLY"], START + timedelta(days=30 * i)) for i in range(4)]
    events += [order("B", ["MONTHLY", "NEW"], START + timedelta(days=100))]
    model = learned(sorted(events, key=lambda e: e["occurred_at"]))
    by_product = {r.product_id: r.reason for r in model.recommend("A", kind="all")}
    assert by_product["MONTHLY"] == "you buy this every month"
    assert by_product["NEW"] == "bought with item MONTHLY"


def test_state_round_trip_is_exact(model):
    data = model.state_bytes()
    restored = Recommender.from_state_bytes(data)
    assert restored.state_bytes() == data
    for customer in ["C00", "C07", "C13", "nobody", None]:
        for kind in ("all", "buy_again", "discover"):
            assert restored.recommend(customer, kind=kind, country="Germany") == \
                model.recommend(customer, kind=kind, country="Germany")


def test_replay_gives_identical_bytes(events):
    assert learned(events).state_bytes() == learned(events).state_bytes()


def test_resume_from_checkpoint_matches_uninterrupted(events):
    half = len(events) // 2
    checkpoint = learned(events[:half]).state_bytes()
    resumed = Recommender.from_state_bytes(checkpoint)
    for event in events[half:]:
        resumed.learn(event)
    assert resumed.state_bytes() == learned(events).state_bytes()


def test_event_order_changes_bytes_not_lists(events):
    swapped = list(events)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert learned(swapped).recommend("C00") == learned(events).recommend("C00")
    assert learned(swapped).state_bytes() != learned(events).state_bytes()


def test_trend_matches_direct_decay():
    """Forward decay with rebasing gives the same trend as decaying each purchase directly."""
    config = RecommenderConfig(trend_half_life_days=7.0)
    events = [order(f"C{i % 7}", ["X"], START + timedelta(days=3 * i)) for i in range(200)]
    model = learned(events, config)
    assert model.reference > START.timestamp() + 300 * 86_400, "the reference time was never rebased"
    now = events[-1]["occurred_at"].timestamp()
    latest = {}
    for event in events:
        latest[event["customer_id"]] = event["occurred_at"].timestamp()
    expected = sum(2.0 ** ((at - now) / (7 * 86_400)) for at in latest.values())
    trend = customer_scores(model, "C0").trend()[model.product_index["X"]]
    assert trend == pytest.approx(expected, rel=1e-9)


def test_low_rating_hides_product():
    model = learned([order("A", ["LIKED", "DISLIKED"], START), order("B", ["LIKED", "DISLIKED"], START)])
    model.learn({"event_type": "review.submitted", "customer_id": "A", "product_id": "DISLIKED", "rating": 1,
                 "occurred_at": START + timedelta(days=1)})
    assert [r.product_id for r in model.recommend("A", kind="buy_again")] == ["LIKED"]
    assert "DISLIKED" in {r.product_id for r in model.recommend("B", kind="buy_again")}


def test_invalid_events_rejected():
    model = Recommender()
    with pytest.raises(ValueError, match="timezone-aware"):
        model.learn(order("A", ["X"], datetime(2011, 1, 1)))
    with pytest.raises(ValueError, match="quantities must be positive"):
        model.learn(order("A", ["X"], START, quantity=0))
    assert model.state_bytes() == Recommender().state_bytes()
    assert model.learn({"event_type": "support.message_sent", "occurred_at": START}) is False


def test_recommend_arguments_validated(model):
    with pytest.raises(ValueError, match="kind must be one of"):
        model.recommend("C00", kind="similar")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.recommend("C00", n=0)


def test_learned_settings_cannot_change_on_view(model):
    with pytest.raises(ValueError, match="repeat_half_life_days"):
        model.with_scoring(repeat_half_life_days=30.0)
    assert model.with_scoring(neighbours=5).config.neighbours == 5
    assert model.config.neighbours == RecommenderConfig().neighbours


def test_empty_model_recommends_nothing():
    assert Recommender().recommend("A") == []
    assert Recommender.from_state_bytes(Recommender().state_bytes()).recommend(None, country="Germany") == []


def test_corrupt_state_rejected():
    with pytest.raises(ValueError, match="not zlib data"):
        Recommender.from_state_bytes(b"not a state")


def test_later_reviews_do_not_age_out_sales(events):
    """A review years after the last sale moves the clock, but the shop's products stay recommendable.

    The order of the buy-again list may change, because recency is scored at the later clock.
    """
    model = learned(events)
    before = [r.product_id for r in model.recommend("C03", n=10, kind="buy_again")]
    last_sale = events[-1]["occurred_at"]
    model.learn({"event_type": "review.submitted", "event_id": "r-later", "customer_id": "reviewer-1",
                 "review_id": "R1", "product_id": "ELSEWHERE-1", "rating": 5, "text": "great",
                 "occurred_at": last_sale + timedelta(days=6 * 365)})

    after = [r.product_id for r in model.recommend("C03", n=10, kind="buy_again")]
    discover = [r.product_id for r in model.recommend("C03", n=10, kind="discover")]

    assert before
    assert len(after) == len(before)
    assert set(after) <= ordered_products(events, "C03")
    assert discover
