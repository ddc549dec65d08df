"""Recommendations through the real Kafka, recommender worker, Redis and API.

The retail sample (tests/fixtures/online_retail, 43 customers, 3,432 events)
is published, the recommender learns it, and the lists in Redis are compared
with the model that the worker checkpointed and with rules computed here from
the source events.
"""

import shutil
import subprocess
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import redis

from cie.catalog import is_service_code
from cie.kafka import EventPublisher
from cie.recommend.events import retail_events
from cie.recommend.keys import LIST_KINDS, RecoKeys, decode_reasons, offset_field, reasons_field
from projections.offsets import projection_lags, recommender_lag, wait_for_exact_lists
from streams.recommender import load_checkpoint
from tests.conftest import REPO, RETAIL_SAMPLE, clear_recommender, make_namespace, wait_until
from tests.test_api import UVICORN, _free_port, _stop, _wait_ready

RECO_ENV = {
    "CIE_RECO_SWEEP_EVENTS": "1",  # every caught-up moment rewrites every list: lists then equal the model
    "CIE_RECO_LEADER_TTL": "3",
    "CIE_RECO_IDLE_CHECKPOINT_SECONDS": "0.2",
}
LATE = datetime(2011, 12, 10, 12, 0, tzinfo=timezone.utc)  # after the last event of the sample


def _use_reco_env(space) -> None:
    space.env.update(RECO_ENV)


def _wait_recommender(space, timeout: float = 120.0) -> None:
    def done():
        if not any(worker.running() for worker in space.workers):
            raise AssertionError("every worker exited:\n" + "\n".join(w.log()[-3000:] for w in space.workers))
        return recommender_lag(space.settings).lag == 0
    wait_until(done, timeout=timeout, message="the recommender to reach lag 0")


def _wait_all(space, timeout: float = 180.0) -> None:
    wait_until(lambda: all(lag.lag == 0 for lag in projection_lags(space.settings, include_scorer=False)),
               timeout=timeout, message="the projections and the recommender to reach lag 0")


def _redis(space) -> redis.Redis:
    return redis.Redis.from_url(space.settings.redis_url)


def _checkpoint(space):
    return load_checkpoint(_redis(space), RecoKeys.from_settings(space.settings))


def _stored_list(space, key_list: str, key_reasons: str) -> list[tuple[str, str]]:
    """A trending or similar list as (product, reason) in the worker's order."""
    client = _redis(space)
    members = [member.decode() for member in client.zrange(key_list, 0, -1)]
    reasons = {field.decode(): value.decode() for field, value in client.hgetall(key_reasons).items()}
    entries = []
    for product in members:
        rank, _, reason = reasons[product].partition("|")
        entries.append((int(rank), product, reason))
    return [(product, reason) for _, product, reason in sorted(entries)]


def _customer_list(space, customer_id: str, kind: str) -> list[tuple[str, str]]:
    """A customer's list as (product, reason) in the worker's order; the reasons are in the meta hash."""
    keys = RecoKeys.from_settings(space.settings)
    client = _redis(space)
    members = {member.decode() for member in client.zrange(keys.customer_list(customer_id, kind), 0, -1)}
    reasons = decode_reasons(client.hget(keys.customer_meta(customer_id), reasons_field(kind)))
    assert set(reasons) == members, (customer_id, kind)
    return [(product, reason) for product, (_, reason) in sorted(reasons.items(), key=lambda entry: entry[1][0])]


def _all_lists(space) -> dict:
    """Every customer list, trend and similar list of the namespace."""
    keys = RecoKeys.from_settings(space.settings)
    client = _redis(space)
    result = {}
    for key in client.scan_iter(match=f"{keys.prefix}:*"):
        name = key.decode()
        if name.startswith(f"{keys.prefix}:c:") and name.rsplit(":", 1)[1] in LIST_KINDS:
            customer, kind = name[len(keys.prefix) + 3:].rsplit(":", 1)
            result[name] = _customer_list(space, customer, kind)
        elif name.startswith(f"{keys.prefix}:trending:") or name == keys.trending(None):
            country = name.split(":trending:", 1)[1] if ":trending:" in name else None
            result[name] = _stored_list(space, name, keys.trending_reasons(country))
        elif name.endswith(":similar"):
            product = name[len(keys.prefix) + 3:-len(":similar")]
            result[name] = _stored_list(space, name, keys.similar_reasons(product))
    return result


def _truth(folder: Path = RETAIL_SAMPLE):
    """From the source events: the products each customer ordered, and the products no list may contain."""
    ordered = defaultdict(set)
    net_units = defaultdict(int)
    sold_at_price = set()
    for event in retail_events(folder):
        if event["event_type"] not in ("order.placed", "order.cancelled"):
            continue
        sign = -1 if event["event_type"] == "order.cancelled" else 1
        for line in event["lines"]:
            product = line["product_id"]
            net_units[product] += sign * line["quantity"]
            if sign > 0:
                if event.get("customer_id"):
                    ordered[event["customer_id"]].add(product)
                if line["unit_price"] > 0:
                    sold_at_price.add(product)
    never = {p for p in net_units if is_service_code(p) or net_units[p] <= 0 or p not in sold_at_price}
    return ordered, never


def _order(customer_id: str, product_id: str, at: datetime = LATE, price: str = "2.10", quantity: int = 6,
           event_type: str = "order.placed", order_id: str | None = None) -> dict:
    return {"event_type": event_type, "customer_id": customer_id, "order_id": order_id or f"T{uuid.uuid4().hex[:8]}",
            "occurred_at": at.isoformat(), "country": "United Kingdom",
            "lines": [{"line_number": 1, "product_id": product_id, "description": f"TEST {product_id}",
                       "quantity": quantity, "unit_price": price}]}


@pytest.fixture(scope="module")
def reco(tmp_path_factory):
    space = make_namespace(f"r{uuid.uuid4().hex[:4]}", tmp_path_factory.mktemp("reco"))
    _use_reco_env(space)
    space.start_worker(roles=("projections", "recommender"))
    result = space.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE))
    assert result.returncode == 0, result.stderr
    _wait_all(space)

    port = _free_port()
    log_path = space.tmp / "api.log"
    api = subprocess.Popen([UVICORN, "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
                           env={**space.env, "CIE_API_PORT": str(port)}, cwd=REPO,
                           stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                        headers={"Authorization": f"Bearer {space.api_key(['profiles:read', 'events:write'])}"})
    _wait_ready(http, api, log_path)
    space.http = http
    yield space
    http.close()
    _stop(api)
    space.cleanup()


# ------------------------------------------------------------------ lists against the model and the rules


def test_lists_equal_model_recommendations(reco):
    checkpoint = _checkpoint(reco)
    model = checkpoint.model
    assert model.events_learned == 3_432
    assert len(model.customer_ids) == 43
    # The worker marks the lists exact once it is idle, which is what the comparison below needs.
    learned, exact = wait_for_exact_lists(reco.settings, timeout=60)
    assert learned == model.events_learned
    assert exact == model.events_learned
    for customer_id in model.customer_ids:
        for kind in LIST_KINDS:
            expected = [(item.product_id, item.reason.removeprefix("new customer: "))
                        for item in model.recommend(customer_id, 50, kind)]
            assert _customer_list(reco, customer_id, kind) == expected, (customer_id, kind)


def test_lag_lists_needs_wait(reco):
    result = reco.run_cli("lag", "--lists")
    assert result.returncode == 2
    assert "--lists requires --wait SECONDS" in result.stderr


def test_discover_never_holds_a_bought_product(reco):
    ordered, _ = _truth()
    checked = 0
    for customer_id, products in ordered.items():
        discover = {product for product, _ in _customer_list(reco, customer_id, "discover")}
        assert not discover & products, customer_id
        checked += bool(discover)
    assert checked >= 30


def test_no_list_holds_an_excluded_product(reco):
    _, never = _truth()
    assert any(is_service_code(p) for p in never) and any(not is_service_code(p) for p in never)
    lists = _all_lists(reco)
    assert len(lists) > 100
    for key, items in lists.items():
        assert not {product for product, _ in items} & never, key


def test_reasons_name_rhythm_anchor_or_trend(reco):
    reasons = [reason for items in _all_lists(reco).values() for _, reason in items]
    assert any(reason.startswith("you bought this") or reason.startswith("you buy this every") for reason in reasons)
    assert any(reason.startswith("bought with ") for reason in reasons)
    assert any(reason.startswith("trending in ") for reason in reasons)


# ------------------------------------------------------------------ live events through the API


def _post(http: httpx.Client, event: dict) -> None:
    response = http.post("/v1/events", json=event)
    assert response.status_code == 202, response.text


def _recommendations(http, customer_id, **params) -> dict:
    response = http.get(f"/v1/customers/{customer_id}/recommendations", params={"limit": 50, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_purchase_changes_customer_lists(reco):
    http = reco.http
    customer_id = "13758"
    before = _recommendations(http, customer_id)
    discover = _recommendations(http, customer_id, kind="discover")["items"]
    assert not before["cold_start"]
    assert discover
    product = discover[0]["product_id"]  # a product the customer never bought, and recommendable

    started = time.monotonic()
    _post(http, _order(customer_id, product))
    after = wait_until(lambda: _if_holds(_recommendations(http, customer_id, kind="buy_again"), product),
                       timeout=30, message="the purchase to reach the buy-again list")
    assert time.monotonic() - started < 10
    item = next(item for item in after["items"] if item["product_id"] == product)
    assert item["reason"].startswith("you bought this on 2011-12-10")
    assert item["name"]
    _wait_recommender(reco)
    assert product not in {i["product_id"] for i in _recommendations(http, customer_id, kind="discover")["items"]}
    assert _recommendations(http, customer_id)["items"] != before["items"]


def _if_holds(body: dict, product: str):
    return body if product in {item["product_id"] for item in body["items"]} else None


def test_cancelled_purchase_leaves_buy_again(reco):
    http = reco.http
    customer_id = "15235"
    candidates = [i["product_id"] for i in _recommendations(http, customer_id, kind="discover")["items"]]
    product = candidates[-1]
    order_id = f"T{uuid.uuid4().hex[:8]}"
    _post(http, _order(customer_id, product, order_id=order_id))
    wait_until(lambda: _if_holds(_recommendations(http, customer_id, kind="buy_again"), product), timeout=30,
               message="the purchase")
    _post(http, _order(customer_id, product, at=LATE + timedelta(minutes=5), event_type="order.cancelled",
                       order_id=f"C{order_id}"))
    wait_until(lambda: not _if_holds(_recommendations(http, customer_id, kind="buy_again"), product), timeout=30,
               message="the cancellation to undo the purchase")
    _wait_recommender(reco)
    body = _recommendations(http, customer_id)
    assert product not in {item["product_id"] for item in body["items"]}
    assert product not in {item["product_id"] for item in _recommendations(http, customer_id, kind="discover")["items"]}


def test_services_and_unsold_products_excluded(reco):
    http = reco.http
    customer_id = "12346"
    # A postage line, a product never seen before sold at a positive price only by this
    # order and then cancelled by everyone, and a product given away at price 0.
    new_product, free_product = f"NEW{uuid.uuid4().hex[:5]}", f"FREE{uuid.uuid4().hex[:5]}"
    _post(http, _order(customer_id, "POST", price="18.00", quantity=1))
    _post(http, _order(customer_id, free_product, price="0"))
    order_id = f"T{uuid.uuid4().hex[:8]}"
    _post(http, _order(customer_id, new_product, order_id=order_id))
    _post(http, _order(customer_id, new_product, at=LATE + timedelta(minutes=1), event_type="order.cancelled",
                       order_id=f"C{order_id}"))
    time.sleep(0.5)
    _wait_recommender(reco)
    excluded = {"POST", new_product, free_product}
    for key, items in _all_lists(reco).items():
        assert not {product for product, _ in items} & excluded, key
    for kind in LIST_KINDS:
        items = _recommendations(http, customer_id, kind=kind)["items"]
        assert not {item["product_id"] for item in items} & excluded


def test_unknown_customer_gets_cold_start(reco):
    body = _recommendations(reco.http, f"nobody-{uuid.uuid4().hex[:6]}", limit=5)
    assert body["cold_start"] is True
    assert body["country"] is None
    assert len(body["items"]) == 5
    keys = RecoKeys.from_settings(reco.settings)
    expected = _stored_list(reco, keys.trending(None), keys.trending_reasons(None))[:5]
    assert [(item["product_id"], item["reason"]) for item in body["items"]] == expected
    assert all(item["reason"] == "trending now" for item in body["items"])
    assert _recommendations(reco.http, "nobody", kind="buy_again")["items"] == []


def test_registered_customer_gets_country_trend(reco):
    http = reco.http
    customer_id = f"new-{uuid.uuid4().hex[:6]}"
    _post(http, {"event_type": "customer.registered", "customer_id": customer_id, "country": "Germany",
                 "occurred_at": LATE.isoformat()})
    body = wait_until(lambda: (b := _recommendations(http, customer_id, limit=5))["country"] == "Germany" and b,
                      timeout=30, message="the registration to reach the recommender")
    assert body["cold_start"] is True
    assert body["items"]
    assert all(item["reason"] == "trending in Germany" for item in body["items"])
    keys = RecoKeys.from_settings(reco.settings)
    german = _stored_list(reco, keys.trending("Germany"), keys.trending_reasons("Germany"))
    assert [(i["product_id"], i["reason"]) for i in body["items"]] == german[:5]


# ------------------------------------------------------------------ API shapes


def test_similar_products(reco):
    response = reco.http.get("/v1/products/22086/similar", params={"limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["product_id"] == "22086"
    assert body["name"]
    assert 1 <= len(body["items"]) <= 3
    assert all(item["product_id"] != "22086" for item in body["items"])
    assert all(item["reason"].startswith("bought by the same") for item in body["items"])
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("path, status, field", [
    ("/v1/products/NO-SUCH-PRODUCT/similar", 404, None),
    ("/v1/customers/13758/recommendations?limit=0", 422, "limit"),
    ("/v1/customers/13758/recommendations?limit=51", 422, "limit"),
    ("/v1/customers/13758/recommendations?kind=sometimes", 422, "kind"),
    ("/v1/products/22086/similar?limit=x", 422, "limit"),
])
def test_problem_details(reco, path, status, field):
    response = reco.http.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    if field:
        assert field in [error["field"] for error in response.json()["errors"]]


# ------------------------------------------------------------------ restarts and several workers


def _split_sample(tmp: Path) -> tuple[Path, Path]:
    """The sample's month files up to 2010-12 and from 2011-01: B's events are all later than A's."""
    first, second = tmp / "a", tmp / "b"
    first.mkdir()
    second.mkdir()
    for path in sorted(RETAIL_SAMPLE.glob("transactions_*.csv.gz")):
        shutil.copy(path, first if path.name < "transactions_2011-01" else second)
    return first, second


def _end_offsets_learned(space) -> bool:
    """Whether the worker has learned everything in the topics (its progress, ahead of the checkpoint)."""
    from cie.kafka import end_offsets

    keys = RecoKeys.from_settings(space.settings)
    progress = {field.decode(): int(value) for field, value in _redis(space).hgetall(keys.progress).items()}
    ends = end_offsets(space.settings, [space.topics.product_events, space.topics.customer_events])
    return all(end == 0 or progress.get(offset_field(topic, partition), -1) == end - 1
               for (topic, partition), end in ends.items())


def test_sigkill_resume_matches_replay(namespace, tmp_path):
    _use_reco_env(namespace)
    first, second = _split_sample(tmp_path)
    assert namespace.run_cli("import-retail", "--data-dir", str(first)).returncode == 0
    worker = namespace.start_worker(roles=("recommender",))
    _wait_recommender(namespace)
    at_a = _checkpoint(namespace)
    worker.stop()

    # A worker that learns B and writes its lists but never checkpoints, killed afterwards.
    namespace.env.update({"CIE_RECO_CHECKPOINT_EVENTS": "1000000", "CIE_RECO_CHECKPOINT_SECONDS": "3600",
                          "CIE_RECO_IDLE_CHECKPOINT_SECONDS": "3600"})
    worker = namespace.start_worker(roles=("recommender",))
    assert namespace.run_cli("import-retail", "--data-dir", str(second)).returncode == 0
    wait_until(lambda: _end_offsets_learned(namespace), timeout=60, message="the worker to learn B")
    worker.kill()
    assert worker.processes[0].returncode == -9
    assert _checkpoint(namespace).offsets == at_a.offsets  # B was learned but is not in the checkpoint
    assert recommender_lag(namespace.settings).lag > 0

    # The restarted worker resumes from A's checkpoint: B is learned once, nothing of A twice.
    namespace.env.update(RECO_ENV)
    namespace.env.update({"CIE_RECO_CHECKPOINT_EVENTS": "20000", "CIE_RECO_CHECKPOINT_SECONDS": "30"})
    worker = namespace.start_worker(roles=("recommender",), loglevel="info")
    _wait_recommender(namespace)
    resumed = _checkpoint(namespace)
    resumed_lists = _all_lists(namespace)
    assert "resumes from its checkpoint" in worker.log()
    worker.stop()

    # A replay from offset 0 with empty Redis rebuilds the same model and lists.
    clear_recommender(namespace.settings)
    worker = namespace.start_worker(roles=("recommender",), loglevel="info")
    _wait_recommender(namespace)
    replayed = _checkpoint(namespace)
    assert "starts from offset 0" in worker.log()
    # (Importing the halves separately publishes more events than one import: each run registers
    # the customers and upserts the products it sees first.)
    assert replayed.model.events_learned == resumed.model.events_learned > at_a.model.events_learned
    assert resumed.offsets == replayed.offsets
    assert resumed.model.state_bytes() == replayed.model.state_bytes()
    assert _all_lists(namespace) == resumed_lists


def test_repeated_event_ids_are_learned_once(namespace):
    _use_reco_env(namespace)
    assert namespace.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE)).returncode == 0
    assert namespace.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE), "--force").returncode == 0
    namespace.start_worker(roles=("recommender",))
    _wait_recommender(namespace)
    assert _checkpoint(namespace).model.events_learned == 3_432


def test_two_workers_give_the_same_result_as_one(namespace):
    _use_reco_env(namespace)
    assert namespace.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE)).returncode == 0
    one = namespace.start_worker(roles=("recommender",), loglevel="info")
    two = namespace.start_worker(roles=("recommender",), loglevel="info")
    _wait_recommender(namespace)
    keys = RecoKeys.from_settings(namespace.settings)
    leader_token = _redis(namespace).get(keys.leader).decode()
    leader, standby = (one, two) if f":{one.processes[0].pid}:" in leader_token else (two, one)
    assert f":{leader.processes[0].pid}:" in leader_token
    wait_until(lambda: "is on standby" in standby.log(), timeout=10, message="the second worker to be a standby")
    assert "checkpoint" not in standby.log()

    # The leader dies; the standby takes over from the checkpoint and learns a new purchase.
    leader.kill()
    publisher = EventPublisher(namespace.settings)
    publisher.publish(_record(_order("13758", "22086", quantity=3)))
    publisher.flush()
    wait_until(lambda: "is the leader" in standby.log(), timeout=30, message="the standby to take over")
    _wait_recommender(namespace)
    assert _checkpoint(namespace).model.events_learned == 3_433
    assert "22086" in {product for product, _ in _customer_list(namespace, "13758", "buy_again")}
    two_workers = _checkpoint(namespace).model.state_bytes()
    two_workers_lists = _all_lists(namespace)
    standby.stop()

    clear_recommender(namespace.settings)
    namespace.start_worker(roles=("recommender",))
    _wait_recommender(namespace)
    assert _checkpoint(namespace).model.state_bytes() == two_workers
    assert _all_lists(namespace) == two_workers_lists


def _record(event: dict) -> dict:
    from schemas.events import EVENT_ADAPTER

    return EVENT_ADAPTER.validate_python(event).to_record()
