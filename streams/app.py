"""The Faust app: one agent per projection, each consuming its topics in batches, or the sentiment scorer.

``CIE_WORKER_ROLE`` picks what a worker process runs: ``projections`` (the
default) or ``scorer``. The third role, ``recommender``, is a plain Kafka
consumer in streams/recommender.py. Each role is its own consumer group, because Faust feeds
all agents of one app from one consumer: a slow agent (the scorer on long
reviews) would hold back every projection reading the same topic.

Faust delivers at least once: ``take_events`` acknowledges a batch only after
the agent has finished with it, so a killed worker re-reads the batch. The
projections make that harmless (see projections/runner.py and each projection's
docstring). Topics are created by ``cie topics`` before a worker starts; the
app never declares topics of its own.
"""

import asyncio
import logging
import os

import faust
from confluent_kafka import KafkaException

from cie.crypto.keyring import KeyRing
from cie.kafka import DeliveryError, EventPublisher, event_producer
from cie.settings import WORKER_ROLES, consumer_group_for, get_settings
from cie.topics import Topics
from projections.deadletter import DeadLetterSink
from projections.records import LogRecord
from projections.runner import ProjectionRunner
from projections.wiring import ProjectionSpec, projection_specs
from streams.scoring import SentimentScorer

log = logging.getLogger(__name__)

settings = get_settings()
topics = Topics.from_settings(settings)
ROLES = WORKER_ROLES
# The recommender role is not a Faust app: see streams/recommender.py for why.
FAUST_ROLES = ("projections", "scorer")
role = os.environ.get("CIE_WORKER_ROLE", "projections")
if role not in FAUST_ROLES:
    raise SystemExit(f"invalid CIE_WORKER_ROLE {role!r} for the Faust app; expected one of {', '.join(FAUST_ROLES)} "
                     "(run the recommender with `cie worker --role recommender`)")

app = faust.App(
    consumer_group_for(settings, role),
    broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
    key_serializer="raw",
    value_serializer="raw",
    store="memory://",
    autodiscover=False,
    web_enabled=False,
    topic_allow_declare=False,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    broker_commit_every=1.0,
    broker_session_timeout=settings.consumer_session_timeout,
    broker_heartbeat_interval=settings.consumer_session_timeout / 10,
)


def _log_record(event) -> LogRecord:
    message = event.message
    return LogRecord(message.topic, message.partition, message.offset, message.key, message.value)


def _register_agent(spec: ProjectionSpec) -> None:
    channel = app.topic(*spec.topics, key_type=bytes, value_type=bytes, allow_empty=True)

    async def project(stream):
        dead_letters = DeadLetterSink(event_producer(settings), topics.dead_letter)
        runner = await asyncio.to_thread(ProjectionRunner, spec.connect, dead_letters)
        log.info("projection %s consuming %s", spec.name, ", ".join(spec.topics))
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            records = [_log_record(event) for event in batch]
            result = await asyncio.to_thread(runner.run, records)
            log.debug("projection %s applied %d of %d records (%d rejected)",
                      spec.name, result.applied, result.records, result.rejected)

    app.agent(channel, name=f"project-{spec.name}", concurrency=1)(project)


async def score_sentiment(stream):
    from cie.sentiment.model import load_model

    model = await asyncio.to_thread(load_model)
    scorer = SentimentScorer(model, EventPublisher(settings), DeadLetterSink(event_producer(settings), topics.dead_letter),
                             KeyRing(settings))
    log.info("sentiment scorer consuming %s with model %s %s", topics.customer_events, model.name, model.version)
    async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
        records = [_log_record(event) for event in batch]
        delay = 0.5
        while True:
            # A batch leaves this loop only when its scores are in Kafka: take_events
            # acknowledges it afterwards, and an exception here would acknowledge it too.
            try:
                await asyncio.to_thread(scorer.process, records)
                break
            except (DeliveryError, KafkaException) as error:
                log.warning("sentiment scores of %s[%d]@%d were not delivered: %s; retrying in %.1f s",
                            records[0].topic, records[0].partition, records[0].offset, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


if role == "projections":
    for _spec in projection_specs(settings):
        _register_agent(_spec)
else:
    app.agent(app.topic(topics.customer_events, key_type=bytes, value_type=bytes, allow_empty=True),
              name="score-sentiment", concurrency=1)(score_sentiment)
