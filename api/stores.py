"""Connections the API holds for its lifetime: PostgreSQL pool, ClickHouse clients, Kafka producer, Redis, key ring."""

import queue
from contextlib import contextmanager
from typing import Iterator

import redis
from clickhouse_driver import Client
from confluent_kafka import Producer
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from api.ratelimit import RateLimiter
from cie.crypto.keyring import KeyRing
from cie.kafka import event_producer
from cie.settings import Settings
from projections import clickhouse


class Stores:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.postgres = ConnectionPool(
            settings.postgres_dsn,
            min_size=1,
            max_size=8,
            kwargs={"options": f"-c search_path={settings.postgres_schema}", "row_factory": dict_row,
                    "autocommit": True},
            open=False,
        )
        self._clickhouse: queue.LifoQueue[Client] = queue.LifoQueue()  # idle clients; clickhouse-driver is not thread-safe
        self._producer: Producer | None = None
        self.rate_limiter = RateLimiter(settings)  # connects on first use
        self.keyring = KeyRing(settings)  # raises MasterKeyError at start if CIE_MASTER_KEY is missing
        # The recommender's lists (cie/recommend/keys.py); the client is a thread-safe connection pool.
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5)

    def open(self) -> None:
        self.postgres.open(wait=False)

    def close(self) -> None:
        self.postgres.close()
        self.keyring.close()
        while not self._clickhouse.empty():
            self._clickhouse.get_nowait().disconnect()
        if self._producer is not None:
            self._producer.flush(10)
        self.rate_limiter.close()
        self.redis.close()

    @contextmanager
    def clickhouse(self) -> Iterator[Client]:
        try:
            client = self._clickhouse.get_nowait()
        except queue.Empty:
            client = clickhouse.client(self.settings)
        try:
            yield client
        except Exception:
            client.disconnect()
            raise
        self._clickhouse.put(client)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = event_producer(self.settings, **{"linger.ms": 5})
        return self._producer
