"""Sentiment through the real Kafka, worker, PostgreSQL and ClickHouse, read back over HTTP."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition
import psycopg
import pytest

from projections import postgres
from projections.replay import replay_and_compare
from tests.conftest import FIXTURES, REPO, wait_until

REVIEWS = FIXTURES / "reviews"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sentiment_pipeline(tmp_path_factory):
    from tests.conftest import make_namespace

    space = make_namespace(f"s{uuid.uuid4().hex[:4]}", tmp_path_factory.mktemp("sentiment"))
    space.start_worker()
    result = space.run_cli("import-reviews", "--data-dir", str(REVIEWS))
    assert result.returncode == 0, result.stderr
    space.wait_caught_up()

    port = _free_port()
    env = {**space.env, "CIE_API_PORT": str(port)}
    api = subprocess.Popen([str(Path(sys.executable).parent / "uvicorn"), "api.main:app", "--host", "127.0.0.1",
                            "--port", str(port)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    key = space.api_key(["profiles:read", "events:write"])
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"})
    wait_until(lambda: _ready(http), timeout=60, message="the API to be ready")
    space.http = http
    yield space
    http.close()
    api.send_signal(signal.SIGTERM)
    api.wait(30)
    space.cleanup()


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _scored_count(space) -> int:
    with postgres.connect(space.settings) as conn:
        return conn.execute("SELECT count(*) FROM scored_texts").fetchone()[0]


def test_every_review_is_scored_once(sentiment_pipeline):
    # 127 rows, minus one repost and one duplicate row that share an event id with another row.
    assert _scored_count(sentiment_pipeline) == 125


def test_scores_are_in_range(sentiment_pipeline):
    with postgres.connect(sentiment_pipeline.settings) as conn:
        low, high, labels = conn.execute(
            "SELECT min(score), max(score), array_agg(DISTINCT label ORDER BY label) FROM scored_texts").fetchone()
    assert -1 <= low <= high <= 1
    assert set(labels) <= {"negative", "neutral", "positive"}


def test_negative_message_moves_customer_down(sentiment_pipeline):
    space, http = sentiment_pipeline, sentiment_pipeline.http
    customer_id = "A3SGXH7AUHU8GW"  # wrote the first fine-food review: a positive one
    before = http.get(f"/v1/customers/{customer_id}/sentiment").json()
    assert before["scored_count"] >= 1

    occurred_at = (datetime.fromisoformat(before["trend"]["window_end"]) + timedelta(days=1)).isoformat()
    response = http.post("/v1/events", json={
        "event_type": "support.message_sent", "customer_id": customer_id, "ticket_id": "T-1", "channel": "email",
        "occurred_at": occurred_at,
        "text": "This is the worst service ever. The dog food arrived spoiled and nobody answers. I am furious.",
    })
    assert response.status_code == 202

    after = wait_until(lambda: _if_more(http.get(f"/v1/customers/{customer_id}/sentiment").json(),
                                        before["scored_count"]), timeout=60, message="the message to be scored")
    assert after["score"] < before["score"]
    assert after["negative_count"] == before["negative_count"] + 1
    assert after["last_negative_at"] is not None
    assert after["recent"][0]["source_event_type"] == "support.message_sent"
    assert after["recent"][0]["label"] == "negative"


def _if_more(body: dict, count: int):
    return body if body.get("scored_count", 0) > count else None


def test_unknown_customer_sentiment_is_404(sentiment_pipeline):
    response = sentiment_pipeline.http.get("/v1/customers/no-such-customer/sentiment")
    assert response.status_code == 404


def test_product_sentiment_counts_labels(sentiment_pipeline):
    space, http = sentiment_pipeline, sentiment_pipeline.http
    with postgres.connect(space.settings) as conn:
        product_id, texts = conn.execute(
            "SELECT product_id, count(*) FROM scored_texts WHERE product_id IS NOT NULL "
            "GROUP BY product_id ORDER BY count(*) DESC, product_id LIMIT 1").fetchone()
    body = http.get(f"/v1/products/{product_id}/sentiment", params={"days": 366}).json()
    assert body["texts"] == texts
    assert sum(body["labels"].values()) == texts
    assert sum(day["texts"] for day in body["daily"]) == texts


def test_unknown_product_sentiment_is_404(sentiment_pipeline):
    assert sentiment_pipeline.http.get("/v1/products/NO-SUCH/sentiment").status_code == 404


def test_analyze_scores_texts(sentiment_pipeline):
    response = sentiment_pipeline.http.post("/v1/sentiment:analyze", json={
        "texts": ["I love it, works perfectly and arrived early.", "Terrible. Broke after one day, waste of money."]})
    body = response.json()
    assert response.status_code == 200
    assert body["results"][0]["label"] == "positive"
    assert body["results"][1]["label"] == "negative"
    assert body["model"]["version"]


@pytest.mark.parametrize("payload, field", [
    ({"texts": []}, "texts"),
    ({"texts": ["   "]}, "texts[0]"),
    ({"texts": ["x" * 5001]}, "texts[0]"),
    ({"texts": [42]}, "texts[0]"),
    ({"texts": ["fine"] * 101}, "texts"),
    ({}, "texts"),
])
def test_analyze_rejects_bad_input(sentiment_pipeline, payload, field):
    response = sentiment_pipeline.http.post("/v1/sentiment:analyze", json=payload)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]


def test_replay_rebuilds_sentiment(sentiment_pipeline):
    report = replay_and_compare(sentiment_pipeline.settings, progress=False, live_timeout=120)
    assert report.checksums["sentiment"][0] == report.checksums["sentiment"][1]
    assert report.checksums["analytics"][0] == report.checksums["analytics"][1]


def test_scorer_restart_changes_no_score(namespace):
    namespace.env["CIE_BATCH_SIZE"] = "1"
    # Four passes over the reviews (the same event ids each time), so that the
    # scorer is still busy when it is killed after part of the first pass.
    for args in ([], ["--force"], ["--force"], ["--force"]):
        result = namespace.run_cli("import-reviews", "--data-dir", str(REVIEWS), *args)
        assert result.returncode == 0, result.stderr

    # Kill the workers once the scorer has published part of its output.
    worker = namespace.start_worker()
    watcher = Consumer({"bootstrap.servers": namespace.settings.kafka_bootstrap_servers, "group.id": "unused"})
    partitions = [TopicPartition(namespace.topics.sentiment_scored, partition) for partition in range(3)]
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            published = sum(watcher.get_watermark_offsets(tp, timeout=5)[1] for tp in partitions)
            if published >= 4 * 125:
                pytest.fail("the scorer finished before it could be killed")
            if published >= 60:
                break
            time.sleep(0.01)
    finally:
        watcher.close()
    worker.kill()

    namespace.start_worker()
    namespace.wait_caught_up()

    with postgres.connect(namespace.settings, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute("SELECT source_event_id, count(*) AS n FROM scored_texts GROUP BY source_event_id").fetchall()
    assert len(rows) == 125
    assert max(row["n"] for row in rows) == 1
    report = replay_and_compare(namespace.settings, progress=False, live_timeout=60)
    assert report.matches, report.render()
