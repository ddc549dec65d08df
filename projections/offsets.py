"""Consumer lag of each projection, measured against the offsets it stored with its data."""

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from cie.kafka import end_offsets
from cie.settings import Settings, consumer_group_for
from cie.topics import Topics
from projections import clickhouse, postgres
from projections.analytics import applied_offsets as clickhouse_applied_offsets
from projections.wiring import projection_specs


@dataclass(frozen=True)
class ProjectionLag:
    projection: str
    applied: int  # records at or below the stored offsets
    total: int  # records in the projection's topics
    lag: int


def stored_offsets(settings: Settings, projection: str, schema: str | None = None,
                   database: str | None = None) -> dict[tuple[str, int], int]:
    if projection == "analytics":
        return clickhouse_applied_offsets(clickhouse.client(settings), database or settings.clickhouse_database)
    with postgres.connect(settings, schema) as conn:
        return postgres.applied_offsets(conn, projection)


def scorer_lag(settings: Settings) -> ProjectionLag:
    """Lag of the sentiment scorer, from the offsets the worker group committed on the customer topic.

    The scorer writes events, not projection rows, so its progress is the
    committed offsets of its consumer group. Faust commits an offset only after
    the agent has finished the batch that holds it, and the scorer finishes a
    batch only when Kafka has acknowledged its scores.
    """
    topic = Topics.from_settings(settings).customer_events
    ends = end_offsets(settings, [topic])
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": consumer_group_for(settings, "scorer"),
                         "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
    finally:
        consumer.close()
    applied = sum(min(ends[(tp.topic, tp.partition)], max(tp.offset, 0)) for tp in committed)
    total = sum(ends.values())
    return ProjectionLag("sentiment-scorer", applied, total, total - applied)


def recommender_lag(settings: Settings) -> ProjectionLag:
    """Lag of the recommender, from the offsets in its Redis checkpoint (what a restart resumes from).

    The worker checkpoints every N events or T seconds and as soon as it is
    idle with every list written, so lag 0 means the lists are up to date too.
    """
    import redis

    from cie.recommend.keys import RecoKeys, parse_offset_field

    topics = Topics.from_settings(settings)
    ends = end_offsets(settings, [topics.product_events, topics.customer_events])
    client = redis.Redis.from_url(settings.redis_url)
    try:
        stored = {parse_offset_field(field.decode()): int(value)
                  for field, value in client.hgetall(RecoKeys.from_settings(settings).offsets).items()}
    finally:
        client.close()
    applied = sum(min(end, stored.get(tp, -1) + 1) for tp, end in ends.items())
    total = sum(ends.values())
    return ProjectionLag("recommender", applied, total, total - applied)


def recommender_lists_exact(settings: Settings) -> tuple[int, int]:
    """Return (events in the recommender's checkpoint, events learned when it last had every list exact).

    The worker writes ``lists_exact_up_to`` once nothing is queued: no exact
    discover list, trend, similar-products list or SGD step. At lag 0 the
    checkpoint contains every event, so the lists are exact when the second
    number is at least the first. Both are -1 before the first checkpoint.
    """
    import redis

    from cie.recommend.keys import RecoKeys

    client = redis.Redis.from_url(settings.redis_url)
    try:
        learned, exact = client.hmget(RecoKeys.from_settings(settings).meta, "events_learned", "lists_exact_up_to")
    finally:
        client.close()
    return int(learned or -1), int(exact or -1)


def wait_for_exact_lists(settings: Settings, timeout: float, poll: float = 1.0) -> tuple[int, int]:
    """Block until the recommender has every list exact (call at lag 0), or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        learned, exact = recommender_lists_exact(settings)
        if exact >= learned:
            return learned, exact
        if time.monotonic() > deadline:
            raise TimeoutError(f"the recommender's lists were still not all exact after {timeout:.0f} s "
                               f"(exact up to {exact:,} of {learned:,} events learned); is the recommender "
                               "running? see `make status` and its log")
        time.sleep(poll)


def projection_lags(settings: Settings, schema: str | None = None, database: str | None = None,
                    include_scorer: bool = True, include_recommender: bool = True) -> list[ProjectionLag]:
    """Return the lag of every projection, of the scorer (measured first so its output is counted) and of the recommender."""
    lags = [scorer_lag(settings)] if include_scorer else []
    if include_recommender:
        lags.append(recommender_lag(settings))
    specs = projection_specs(settings, schema, database)
    ends = end_offsets(settings, sorted({topic for spec in specs for topic in spec.topics}))
    for spec in specs:
        stored = stored_offsets(settings, spec.name, schema, database)
        total = applied = 0
        for (topic, partition), end in ends.items():
            if topic not in spec.topics:
                continue
            total += end
            applied += min(end, stored.get((topic, partition), -1) + 1)
        lags.append(ProjectionLag(spec.name, applied, total, total - applied))
    return lags


def wait_for_zero_lag(settings: Settings, timeout: float, progress: bool = True, poll: float = 1.0) -> list[ProjectionLag]:
    """Block until every projection has applied everything in its topics, or raise TimeoutError."""
    from tqdm import tqdm

    deadline = time.monotonic() + timeout
    lags = projection_lags(settings)
    applied_at_start = sum(lag.applied for lag in lags)
    bar = tqdm(total=sum(lag.lag for lag in lags), desc="projections catching up", unit="record",
               disable=not progress)
    while True:
        # The bar counts the backlog from the start of the wait; new records grow its total.
        bar.n = sum(lag.applied for lag in lags) - applied_at_start
        bar.total = bar.n + sum(lag.lag for lag in lags)
        bar.set_postfix({lag.projection: lag.lag for lag in lags}, refresh=False)
        bar.refresh()
        if all(lag.lag == 0 for lag in lags):
            bar.close()
            return lags
        if time.monotonic() > deadline:
            bar.close()
            behind = ", ".join(f"{lag.projection} {lag.lag}" for lag in lags if lag.lag)
            raise TimeoutError(f"projections still behind after {timeout:.0f} s (records of lag: {behind}); "
                               "is a worker running? see `make status` and the worker log")
        time.sleep(poll)
        lags = projection_lags(settings)
