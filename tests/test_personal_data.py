"""Personal data at rest and its erasure, through the real API, Kafka, worker, PostgreSQL and ClickHouse.

Checks read the raw PostgreSQL rows (psycopg) and the raw Kafka records
(confluent-kafka), not only the API's responses.
"""

import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from cie.crypto.events import seal_records
from cie.crypto.fields import DataKey, DecryptionError, open_sealed, seal
from cie.crypto.keyring import KeyRing, destroy_keys
from cie.crypto.master import MasterKeyError, parse_master_key
from cie.kafka import EventPublisher
from projections import clickhouse, postgres
from projections.erasure import erase_customers
from projections.replay import replay_and_compare
from schemas.codec import decode_event
from tests.conftest import REPO, make_namespace, wait_until
from tests.test_sentiment_pipeline import _free_port, _ready

NAME = "Ingrid Bergstrom-Halvorsen"
EMAIL = "ingrid.halvorsen@example.org"
REVIEW_TEXT = "The marmalade from Tromsoe tasted of burnt caramel and my grandmother's kitchen"
CONTROL_TEXT = "Lovely teapot, the glaze is perfect and it pours without dripping"
PLAINTEXTS = [NAME, EMAIL, REVIEW_TEXT, "marmalade from Tromsoe", CONTROL_TEXT]
NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def pii_pipeline(tmp_path_factory):
    space = make_namespace(f"p{uuid.uuid4().hex[:4]}", tmp_path_factory.mktemp("pii"))
    space.start_worker()
    port = _free_port()
    # A key cache far longer than the test, which the API's check for erasure must not wait for.
    env = {**space.env, "CIE_API_PORT": str(port), "CIE_KEY_CACHE_SECONDS": "3600"}
    api_log = space.tmp / "api.log"
    api = subprocess.Popen([str(Path(sys.executable).parent / "uvicorn"), "api.main:app", "--host", "127.0.0.1",
                            "--port", str(port)], env=env, cwd=REPO, stdout=api_log.open("w"),
                           stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                        headers={"Authorization": f"Bearer {space.api_key('admin')}"})
    wait_until(lambda: _ready(http), timeout=60, message="the API to be ready")
    space.http = http
    space.api_log = api_log
    yield space
    http.close()
    api.send_signal(signal.SIGTERM)
    api.wait(30)
    space.cleanup()


def _post(http: httpx.Client, event: dict) -> str:
    response = http.post("/v1/events", json=event)
    assert response.status_code == 202, response.text
    return response.json()["event_ids"][0]


def _kafka_records(space) -> list[tuple[bytes | None, bytes]]:
    """Read every record of the namespace's event topics, as raw key and value bytes."""
    consumer = Consumer({"bootstrap.servers": space.settings.kafka_bootstrap_servers, "group.id": "unused",
                         "enable.auto.commit": False})
    records = []
    try:
        for topic in space.topics.event_topics:
            for partition in range(space.settings.topic_partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(topic, partition, low)])
                while True:
                    message = consumer.poll(10)
                    assert message is not None and not message.error(), f"reading {topic}[{partition}] failed"
                    records.append((message.key(), message.value()))
                    if message.offset() + 1 >= high:
                        break
    finally:
        consumer.close()
    return records


def _postgres_dump(settings, schema: str) -> str:
    """Return every row of every table in a schema as text, for a plaintext search."""
    with psycopg.connect(settings.postgres_dsn) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
        text = []
        for table in tables:
            rows = conn.execute(psycopg.sql.SQL("SELECT t::text FROM {} AS t").format(
                psycopg.sql.Identifier(schema, table))).fetchall()
            text.extend(f"{table}: {row[0]}" for row in rows)
    return "\n".join(text)


def _clickhouse_dump(settings, database: str) -> str:
    client = clickhouse.client(settings)
    tables = [row[0] for row in client.execute(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine NOT LIKE '%%View'", {"db": database})]
    return "\n".join(repr(row) for table in tables for row in client.execute(f"SELECT * FROM {database}.`{table}`"))


def _assert_no_plaintext(where: str, data: bytes | str, plaintexts=PLAINTEXTS) -> None:
    blob = data if isinstance(data, bytes) else data.encode()
    found = [text for text in plaintexts if text.encode() in blob]
    assert found == [], f"{where} holds personal data in clear"


def _key_row(space, customer_id: str):
    with postgres.connect(space.settings) as conn:
        return conn.execute("SELECT wrapped_key, erased_at FROM data_keys WHERE customer_id = %s",
                            (customer_id,)).fetchone()


def test_moved_ciphertext_fails_to_decrypt():
    key_a = DataKey("customer-a", 1, b"\x01" * 32)
    key_b = DataKey("customer-b", 1, b"\x02" * 32)
    sealed = seal(key_a, "text", REVIEW_TEXT)

    assert open_sealed(key_a, "text", sealed) == REVIEW_TEXT
    with pytest.raises(DecryptionError, match="customer-b"):
        open_sealed(key_b, "text", sealed)
    # The right key bytes under another customer id: the associated data no longer matches.
    with pytest.raises(DecryptionError):
        open_sealed(DataKey("customer-b", 1, key_a.key), "text", sealed)
    with pytest.raises(DecryptionError):
        open_sealed(key_a, "title", sealed)


@pytest.mark.parametrize("value, message", [
    (None, "is not set"), ("", "is not set"), ("not base64!", "not valid base64"), ("c2hvcnQ=", "decodes to 5 bytes")])
def test_master_key_errors_name_the_fix(value, message):
    with pytest.raises(MasterKeyError, match=message) as error:
        parse_master_key(value)
    assert "CIE_MASTER_KEY" in str(error.value)
    assert "secrets.token_bytes(32)" in str(error.value)


def test_erasure_end_to_end(pii_pipeline):
    space, http = pii_pipeline, pii_pipeline.http
    customer, control = f"pii-{uuid.uuid4().hex[:6]}", f"ctl-{uuid.uuid4().hex[:6]}"

    # 1. Events with personal fields, in plain JSON, through the API.
    _post(http, {"event_type": "customer.registered", "customer_id": customer, "occurred_at": NOW.isoformat(),
                 "country": "Norway", "traits": {"name": NAME, "email": EMAIL}})
    _post(http, {"event_type": "order.placed", "customer_id": customer, "order_id": f"O-{customer}",
                 "occurred_at": (NOW + timedelta(minutes=1)).isoformat(), "country": "Norway",
                 "lines": [{"line_number": 1, "product_id": "22423", "quantity": 2, "unit_price": "12.750"}]})
    review_id = _post(http, {"event_type": "review.submitted", "customer_id": customer, "review_id": "R-1",
                             "product_id": "22423", "rating": 1, "title": "Burnt", "text": REVIEW_TEXT,
                             "occurred_at": (NOW + timedelta(minutes=2)).isoformat()})
    _post(http, {"event_type": "review.submitted", "customer_id": control, "review_id": "R-2",
                 "product_id": "22423", "rating": 5, "text": CONTROL_TEXT, "occurred_at": NOW.isoformat()})
    wait_until(lambda: http.get(f"/v1/customers/{customer}/sentiment").json().get("scored_count") == 1
               and http.get(f"/v1/customers/{control}/sentiment").json().get("scored_count") == 1,
               timeout=120, message="both reviews to be scored")
    space.wait_caught_up()

    # 2. The API decrypts what it serves.
    profile = http.get(f"/v1/customers/{customer}").json()
    sentiment = http.get(f"/v1/customers/{customer}/sentiment").json()
    assert profile["traits"] == {"name": NAME, "email": EMAIL}
    assert profile["erased"] is False
    assert sentiment["recent"][0]["excerpt"] == f"{REVIEW_TEXT}"[:280]

    # 3. Raw rows and records hold ciphertext only.
    _assert_no_plaintext("PostgreSQL", _postgres_dump(space.settings, space.settings.postgres_schema))
    _assert_no_plaintext("ClickHouse", _clickhouse_dump(space.settings, space.settings.clickhouse_database))
    records = _kafka_records(space)
    for key, value in records:
        _assert_no_plaintext("a Kafka record", value)
    review = next(decode_event(value) for _, value in records if str(decode_event(value)["event_id"]) == review_id)
    assert review["text"] is None
    assert review["encrypted_text"] is not None
    live_key = KeyRing(space.settings).keys([customer])[customer]
    assert open_sealed(live_key, "text", review["encrypted_text"]) == REVIEW_TEXT

    # 4. Erase.
    response = http.delete(f"/v1/customers/{customer}", params={"reason": "data subject request"})
    assert response.status_code == 202, response.text
    erasure_id = response.json()["event_id"]
    at_once = http.post("/v1/events", json={"event_type": "support.message_sent", "customer_id": customer,
                                            "ticket_id": "T-8", "channel": "email", "text": "Anyone?",
                                            "occurred_at": NOW.isoformat()})
    repeated_at_once = http.delete(f"/v1/customers/{customer}")
    assert at_once.status_code == 410, at_once.text
    assert repeated_at_once.status_code == 200, repeated_at_once.text
    assert repeated_at_once.json()["event_id"] == erasure_id
    erased = wait_until(lambda: (body := http.get(f"/v1/customers/{customer}").json())["erased"] and body,
                        timeout=60, message="the API to show the customer as erased")
    space.wait_caught_up()

    # 5. The key is destroyed, the tombstone stays, and no new key is ever issued.
    wrapped_key, erased_at = _key_row(space, customer)
    assert wrapped_key is None
    assert erased_at is not None
    assert KeyRing(space.settings).keys([customer], create=True) == {customer: None}
    assert any(str(decode_event(value)["event_id"]) == erasure_id for _, value in _kafka_records(space))

    # 6. The API serves personal fields as null; ids, counts and aggregates are unchanged.
    sentiment_after = http.get(f"/v1/customers/{customer}/sentiment").json()
    assert erased["traits"] is None
    assert erased["order_count"] == profile["order_count"] == 1
    assert erased["net_revenue"] == profile["net_revenue"]
    assert erased["country"] == "Norway"
    assert sentiment_after["recent"][0]["excerpt"] is None
    assert sentiment_after["scored_count"] == sentiment["scored_count"]
    assert sentiment_after["score"] == sentiment["score"]
    assert http.get(f"/v1/customers/{control}").json()["erased"] is False

    # 7. Raw PostgreSQL rows of the customer hold no sealed field any more.
    with postgres.connect(space.settings) as conn:
        traits = conn.execute("SELECT traits FROM customers WHERE customer_id = %s", (customer,)).fetchone()[0]
        excerpts = conn.execute("SELECT encrypted_excerpt FROM scored_texts WHERE customer_id = %s",
                                (customer,)).fetchall()
        control_excerpts = conn.execute("SELECT encrypted_excerpt FROM scored_texts WHERE customer_id = %s",
                                        (control,)).fetchall()
    assert traits == {}
    assert excerpts == [(None,)]
    assert control_excerpts[0][0] is not None

    # 8. A repeated erasure produces nothing and names the first; an unknown id is not found.
    again = http.delete(f"/v1/customers/{customer}")
    assert again.status_code == 200, again.text
    assert again.json()["event_id"] == erasure_id
    assert again.json()["already_erased"] is True
    assert http.delete(f"/v1/customers/never-{uuid.uuid4().hex[:6]}").status_code == 404

    # 9. New events for the erased customer are rejected at once, although the API cached the key before.
    response = http.post("/v1/events", json={"event_type": "support.message_sent", "customer_id": customer,
                                             "ticket_id": "T-9", "channel": "email", "text": "Still there?",
                                             "occurred_at": NOW.isoformat()})
    assert response.status_code == 410
    assert response.json()["customer_ids"] == [customer]

    # 10. A replay after the erasure rebuilds the counts but no personal data.
    report = replay_and_compare(space.settings, progress=False, keep=True, live_timeout=120)
    assert report.checksums["profiles"][0] == report.checksums["profiles"][1]
    assert report.checksums["sentiment"][0] == report.checksums["sentiment"][1]
    replay_schema = f"{space.settings.postgres_schema}_replay"
    with postgres.connect(space.settings, replay_schema) as conn:
        row = conn.execute("SELECT traits, erased_at, order_count FROM customers WHERE customer_id = %s",
                           (customer,)).fetchone()
        replayed_excerpts = conn.execute("SELECT encrypted_excerpt FROM scored_texts WHERE customer_id = %s",
                                         (customer,)).fetchall()
    assert row[0] == {}
    assert row[1] is not None
    assert row[2] == 1
    assert replayed_excerpts == [(None,)]
    _assert_no_plaintext("the replay schema", _postgres_dump(space.settings, replay_schema))
    assert _key_row(space, customer)[0] is None

    # 11. No log line carries personal data.
    _assert_no_plaintext("the worker logs", "\n".join(worker.log() for worker in space.workers))
    _assert_no_plaintext("the API log", space.api_log.read_text(errors="replace"))


def test_scorer_skips_erased_customer(pii_pipeline):
    space, http = pii_pipeline, pii_pipeline.http
    erased, live = f"gone-{uuid.uuid4().hex[:6]}", f"live-{uuid.uuid4().hex[:6]}"
    keyring = KeyRing(space.settings)
    base = {"event_type": "support.message_sent", "ticket_id": "T-1", "channel": "chat", "source": "test",
            "occurred_at": NOW, "received_at": NOW}
    first = {**base, "event_id": str(uuid.uuid4()), "customer_id": erased, "text": REVIEW_TEXT}
    second = {**base, "event_id": str(uuid.uuid4()), "customer_id": live, "text": CONTROL_TEXT}
    sealed = seal_records(keyring, [first, second]).records

    # The key is destroyed before the scorer reads the text sealed under it.
    with postgres.connect(space.settings) as conn, conn.cursor() as cursor:
        destroy_keys(cursor, space.settings.postgres_schema, [(erased, NOW, str(uuid.uuid4()))])
    publisher = EventPublisher(space.settings)
    for record in sealed:
        publisher.publish(record)
    publisher.flush()

    # The text after it is scored, so the scorer went on; the erased customer's text got no score.
    wait_until(lambda: http.get(f"/v1/customers/{live}/sentiment").json().get("scored_count") == 1,
               timeout=120, message="the live customer's message to be scored")
    space.wait_caught_up()
    with postgres.connect(space.settings) as conn:
        scored = conn.execute("SELECT count(*) FROM scored_texts WHERE source_event_id = %s",
                              (first["event_id"],)).fetchone()[0]
    assert scored == 0
    assert all(worker.running() for worker in space.workers)
    scorer_log = "\n".join(worker.log() for worker in space.workers)
    assert first["event_id"] in scorer_log
    _assert_no_plaintext("the worker logs", scorer_log)


def test_two_erasures_in_one_batch(pii_pipeline):
    """Two erasures of one customer in a batch keep the earliest, in one statement that touches the key row once."""
    space = pii_pipeline
    customer = f"twice-{uuid.uuid4().hex[:6]}"
    KeyRing(space.settings).keys([customer], create=True)
    later, earlier = NOW, NOW - timedelta(minutes=5)
    earlier_id = str(uuid.uuid4())
    erasures = [{"customer_id": customer, "occurred_at": later, "event_id": str(uuid.uuid4())},
                {"customer_id": customer, "occurred_at": earlier, "event_id": earlier_id}]

    with postgres.connect(space.settings) as conn, conn.cursor() as cursor:
        erase_customers(cursor, space.settings.postgres_schema, erasures)
    wrapped_key, erased_at = _key_row(space, customer)
    with postgres.connect(space.settings) as conn:
        event_id = conn.execute("SELECT erasure_event_id FROM data_keys WHERE customer_id = %s",
                                (customer,)).fetchone()[0]

    assert wrapped_key is None
    assert erased_at == earlier
    assert str(event_id) == earlier_id
