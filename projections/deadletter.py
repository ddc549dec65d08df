"""Dead-letter topic: records a projection rejected, with the reason in headers.

The original key and value are kept byte for byte, so a fixed consumer can
re-read them. A record can appear more than once (once per projection that
rejected it, and again if a batch is redelivered); the headers tell them apart.
"""

import logging

from confluent_kafka import Producer

from projections.records import LogRecord

log = logging.getLogger(__name__)


class DeadLetterSink:
    def __init__(self, producer: Producer, topic: str):
        self.producer = producer
        self.topic = topic
        self.sent = 0

    def send(self, record: LogRecord, reason: str, projection: str) -> None:
        headers = [
            ("reason", reason.encode()),
            ("projection", projection.encode()),
            ("source.topic", record.topic.encode()),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
        ]
        self.producer.produce(self.topic, key=record.key, value=record.value, headers=headers)
        self.sent += 1
        log.warning("dead-lettered %s[%d]@%d for projection %s: %s",
                    record.topic, record.partition, record.offset, projection, reason)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise RuntimeError(f"{remaining} dead-letter records to {self.topic} were not acknowledged within {timeout} s")
