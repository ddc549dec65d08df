"""Kafka clients built from the settings: topic creation, the event producer and offset look-ups."""

import json
import logging
import time
from typing import Any, Callable

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cie.settings import Settings
from cie.topics import Topics, route_event
from schemas.codec import encode_event

log = logging.getLogger(__name__)


class TopicSetupError(RuntimeError):
    pass


class DeliveryError(RuntimeError):
    pass


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})


def ensure_topics(settings: Settings, timeout: float = 30.0) -> Topics:
    """Create the project's topics if they are missing; existing topics are left as they are."""
    topics = Topics.from_settings(settings)
    admin = admin_client(settings)
    wanted = [
        NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication_factor)
        for name in (topics.customer_events, topics.product_events, topics.sentiment_scored, topics.dead_letter)
    ]
    wanted.append(NewTopic(topics.import_ledger, num_partitions=1, replication_factor=settings.topic_replication_factor,
                           config={"cleanup.policy": "compact"}))

    existing = admin.list_topics(timeout=timeout).topics
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return topics
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result()
            log.info("created topic %s", name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicSetupError(f"could not create topic {name}: {error}") from error
    return topics


def event_producer(settings: Settings, **overrides: Any) -> Producer:
    """Build an idempotent producer: acks=all, ordered retries, batched and compressed."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 512 * 1024,
        "queue.buffering.max.messages": 200_000,
    }
    config.update(overrides)
    return Producer(config)


class EventPublisher:
    """Encode event records and produce them to their topics, raising on any failed delivery."""

    def __init__(self, settings: Settings, producer: Producer | None = None):
        self.topics = Topics.from_settings(settings)
        self.producer = producer or event_producer(settings)
        self.errors: list[str] = []  # "<event_id>: <error>" of failed deliveries since the last flush
        self.delivered = 0

    def _on_delivery(self, error: KafkaError | None, message) -> None:
        if error is not None:
            self.errors.append(f"{message.key()!r} on {message.topic()}: {error}")
        else:
            self.delivered += 1

    def publish(self, record: dict[str, Any]) -> None:
        self.produce(*self.encode(record))

    def encode(self, record: dict[str, Any]) -> tuple[str, bytes, bytes]:
        """Return the topic, key and Avro value of an event record, checked against its schema."""
        topic, key = route_event(self.topics, record)
        return topic, key, encode_event(record)

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce one encoded event from ``encode``. Delivery failures surface in ``flush``."""
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:
                # Local queue full: serve delivery reports until there is room.
                self.producer.poll(0.5)

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for every queued event; raise DeliveryError if any was not acknowledged."""
        remaining = self.producer.flush(timeout)
        if remaining:
            raise DeliveryError(f"{remaining} events were still unacknowledged after {timeout} s; is Kafka at the configured bootstrap servers?")
        if self.errors:
            first = self.errors[:3]
            count = len(self.errors)
            self.errors = []
            raise DeliveryError(f"{count} events failed delivery, first: {'; '.join(first)}")
        return self.delivered


def end_offsets(settings: Settings, topics: list[str], timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """Return the high watermark (next offset to be written) of every partition of the topics."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "cie-offset-probe",
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=timeout)
        result: dict[tuple[str, int], int] = {}
        for topic in topics:
            if topic not in metadata.topics:
                continue
            for partition in metadata.topics[topic].partitions:
                result[(topic, partition)] = _high_watermark(consumer, TopicPartition(topic, partition), timeout)
        return result
    finally:
        consumer.close()


def _high_watermark(consumer, partition: TopicPartition, timeout: float) -> int:
    """Ask the partition's leader for its high watermark, retrying while a new topic's leader is being elected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=max(0.1, deadline - time.monotonic()))[1]
        except KafkaException as error:
            code = error.args[0].code() if error.args else None
            if code not in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE) \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def read_ledger(settings: Settings, topics: Topics, timeout: float = 10.0) -> dict[str, dict]:
    """Read the whole import ledger topic into {key: summary}."""
    from confluent_kafka import Consumer

    ends = end_offsets(settings, [topics.import_ledger], timeout)
    if not any(ends.values()):
        return {}
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "cie-ledger-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    entries: dict[str, dict] = {}
    try:
        consumer.assign([TopicPartition(topic, partition, 0) for (topic, partition) in ends])
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            message = consumer.poll(timeout)
            if message is None:
                raise TimeoutError(f"timed out reading the import ledger topic {topics.import_ledger}")
            if message.error():
                raise KafkaException(message.error())
            key = message.key().decode()
            if message.value() is None:
                entries.pop(key, None)
            else:
                entries[key] = json.loads(message.value())
            if message.offset() + 1 >= ends[(message.topic(), message.partition())]:
                remaining.discard((message.topic(), message.partition()))
        return entries
    finally:
        consumer.close()


def write_ledger(producer: Producer, topics: Topics, key: str, summary: dict, on_delivery: Callable | None = None) -> None:
    producer.produce(topics.import_ledger, key=key.encode(), value=json.dumps(summary, sort_keys=True).encode(),
                     on_delivery=on_delivery)
