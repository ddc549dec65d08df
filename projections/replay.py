"""Rebuild every projection from offset 0 into empty tables and compare with the live state.

Steps:
1. Snapshot the end offsets of the event topics; the replay reads up to them.
2. Drop and create the replay targets: PostgreSQL schema ``<schema>_replay`` and
   ClickHouse database ``<database>_replay``.
3. For each projection, read its topics from the first offset with a plain
   consumer (no consumer group) and apply the records with the same runner and
   projection code as the stream workers.
4. Wait until the live projections have applied the same offsets, then print
   both checksums per projection.

Rejected records are logged, not dead-lettered again: the live workers already
dead-lettered them once.
"""

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition
from tqdm import tqdm

from cie.kafka import end_offsets
from cie.settings import Settings
from projections import clickhouse, postgres
from projections.checksums import checksum
from projections.deadletter import DeadLetterSink
from projections.offsets import wait_for_zero_lag
from projections.records import LogRecord
from projections.runner import ProjectionRunner
from projections.wiring import ProjectionSpec, create_stores, projection_specs

log = logging.getLogger(__name__)


class _LoggingDeadLetters(DeadLetterSink):
    def __init__(self):
        super().__init__(producer=None, topic="(replay: not produced)")

    def send(self, record: LogRecord, reason: str, projection: str) -> None:
        self.sent += 1
        log.warning("replay skipped %s[%d]@%d for projection %s: %s",
                    record.topic, record.partition, record.offset, projection, reason)

    def flush(self, timeout: float = 30.0) -> None:
        pass


@dataclass
class ReplayReport:
    # projection -> (live checksum, rebuilt checksum)
    checksums: dict[str, tuple[str, str]] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)  # projection -> records replayed
    seconds: float = 0.0

    @property
    def matches(self) -> bool:
        return all(live == rebuilt for live, rebuilt in self.checksums.values())

    def render(self) -> str:
        lines = [f"{'projection':<10} {'records':>9}  {'live':<16}  {'rebuilt':<16}  result"]
        for name, (live, rebuilt) in self.checksums.items():
            lines.append(f"{name:<10} {self.records[name]:>9,}  {live:<16}  {rebuilt:<16}  "
                         f"{'same' if live == rebuilt else 'DIFFERENT'}")
        lines.append(f"replayed in {self.seconds:.1f} s")
        return "\n".join(lines)


def replay_projection(settings: Settings, spec: ProjectionSpec, ends: dict[tuple[str, int], int],
                      progress: bool = True) -> int:
    """Apply every record of the spec's topics below ``ends`` to the spec's store; return the count."""
    runner = ProjectionRunner(spec.connect, _LoggingDeadLetters())
    partitions = {tp: end for tp, end in ends.items() if tp[0] in spec.topics and end > 0}
    total = sum(partitions.values())
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "cie-replay",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    replayed = 0
    try:
        consumer.assign([TopicPartition(topic, partition, 0) for topic, partition in partitions])
        remaining = set(partitions)
        bar = tqdm(total=total, desc=f"replay {spec.name}", unit="record", disable=not progress)
        while remaining:
            messages = consumer.consume(num_messages=settings.batch_size, timeout=10.0)
            if not messages:
                raise TimeoutError(f"replay of {spec.name} got no records for 10 s with {len(remaining)} partitions unfinished")
            batch = []
            for message in messages:
                if message.error():
                    raise RuntimeError(f"replay of {spec.name} failed reading Kafka: {message.error()}")
                position = (message.topic(), message.partition())
                if position not in remaining or message.offset() >= partitions[position]:
                    continue
                batch.append(LogRecord(message.topic(), message.partition(), message.offset(),
                                       message.key(), message.value()))
                if message.offset() + 1 >= partitions[position]:
                    remaining.discard(position)
                    consumer.pause([TopicPartition(*position)])
            if batch:
                runner.run(batch)
                replayed += len(batch)
                bar.update(len(batch))
        bar.close()
    finally:
        consumer.close()
    return replayed


def replay_and_compare(settings: Settings, progress: bool = True, keep: bool = False,
                       live_timeout: float = 600.0) -> ReplayReport:
    started = time.perf_counter()
    schema = f"{settings.postgres_schema}_replay"
    database = f"{settings.clickhouse_database}_replay"

    # 1. Snapshot what the replay reads.
    specs = projection_specs(settings, schema, database)
    ends = end_offsets(settings, sorted({topic for spec in specs for topic in spec.topics}))

    # 2. Empty targets.
    postgres.drop_schema(settings, schema)
    clickhouse.drop_database(settings, database)
    create_stores(settings, schema, database)

    # 3. Rebuild.
    report = ReplayReport()
    for spec in specs:
        report.records[spec.name] = replay_projection(settings, spec, ends, progress)

    # 4. Compare with the live state once it has caught up.
    wait_for_zero_lag(settings, timeout=live_timeout, progress=progress)
    client = clickhouse.client(settings)
    for spec in specs:
        live = checksum(settings, spec.name, settings.postgres_schema, settings.clickhouse_database, client)
        rebuilt = checksum(settings, spec.name, schema, database, client)
        report.checksums[spec.name] = (live, rebuilt)
    if not keep:
        postgres.drop_schema(settings, schema)
        clickhouse.drop_database(settings, database)
    report.seconds = time.perf_counter() - started
    return report
