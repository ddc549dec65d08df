"""Bad records go to the dead-letter topic with a reason, and the pipeline keeps going."""

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from confluent_kafka import Consumer, Producer, TopicPartition

from projections import postgres
from schemas.codec import encode_event
from tests.conftest import wait_until

NOW = datetime(2011, 1, 1, tzinfo=timezone.utc)


def _order(customer_id: str, quantity: int) -> dict:
    return {
        "event_id": str(uuid.uuid4()), "event_type": "order.placed", "occurred_at": NOW, "received_at": NOW,
        "customer_id": customer_id, "source": "test", "order_id": f"o-{uuid.uuid4().hex[:6]}",
        "country": "France", "currency": "GBP",
        "lines": [{"line_number": 1, "product_id": "22423", "description": None, "quantity": quantity,
                   "unit_price": Decimal("2.500")}],
    }


def _dead_letters(space, expected: int) -> list:
    consumer = Consumer({"bootstrap.servers": space.settings.kafka_bootstrap_servers, "group.id": f"{space.name}-dlq",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    metadata = consumer.list_topics(space.topics.dead_letter, timeout=10)
    consumer.assign([TopicPartition(space.topics.dead_letter, p, 0)
                     for p in metadata.topics[space.topics.dead_letter].partitions])
    messages = []
    try:
        deadline = 30
        while len(messages) < expected and deadline > 0:
            message = consumer.poll(1.0)
            deadline -= 1
            if message is not None and not message.error():
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_bad_records_are_dead_lettered_and_good_ones_applied(namespace):
    customer_id = "dlq-1"
    producer = Producer({"bootstrap.servers": namespace.settings.kafka_bootstrap_servers})
    topic = namespace.topics.customer_events
    producer.produce(topic, key=customer_id.encode(), value=b"not avro at all")
    producer.produce(topic, key=customer_id.encode(), value=encode_event(_order(customer_id, quantity=-4)))
    producer.produce(topic, key=customer_id.encode(), value=encode_event(_order(customer_id, quantity=2)))
    producer.flush(10)

    namespace.start_worker()
    namespace.wait_caught_up()

    with postgres.connect(namespace.settings) as conn:
        row = conn.execute("SELECT order_count, net_revenue FROM customers WHERE customer_id = %s",
                           (customer_id,)).fetchone()
    assert row == (1, Decimal("5.000"))

    # profiles and analytics both read the customer topic, so each rejects both bad records.
    messages = wait_until(lambda: _dead_letters(namespace, 4), message="4 dead-letter records")
    reasons = sorted((dict(m.headers())["projection"].decode(), dict(m.headers())["reason"].decode()[:11])
                     for m in messages)
    assert reasons == [("analytics", "invalid: li"), ("analytics", "undecodable"),
                       ("profiles", "invalid: li"), ("profiles", "undecodable")]
    assert {m.value() for m in messages if dict(m.headers())["reason"].startswith(b"undecodable")} == {b"not avro at all"}
