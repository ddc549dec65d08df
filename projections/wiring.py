"""Which projection reads which topics, and how to connect each one to its store.

Stream workers, the replay command and the tests all build projections here, so
they cannot disagree on topics or targets.
"""

from dataclasses import dataclass
from typing import Callable

from cie.crypto.keyring import KeyRing, create_key_table
from cie.settings import Settings
from cie.topics import Topics
from projections import clickhouse, postgres
from projections.analytics import AnalyticsProjection
from projections.catalog import CatalogProjection
from projections.profiles import ProfileProjection
from projections.runner import Projection
from projections.sentiment import SentimentProjection


@dataclass(frozen=True)
class ProjectionSpec:
    name: str
    topics: list[str]
    connect: Callable[[], Projection]


def projection_specs(settings: Settings, schema: str | None = None, database: str | None = None) -> list[ProjectionSpec]:
    """Return every projection, writing to ``schema`` (PostgreSQL) and ``database`` (ClickHouse)."""
    topics = Topics.from_settings(settings)
    schema = schema or settings.postgres_schema
    database = database or settings.clickhouse_database
    return [
        ProjectionSpec("profiles", [topics.customer_events],
                       lambda: ProfileProjection(postgres.connect(settings, schema), KeyRing(settings))),
        ProjectionSpec("catalog", [topics.product_events],
                       lambda: CatalogProjection(postgres.connect(settings, schema))),
        ProjectionSpec("sentiment", [topics.sentiment_scored],
                       lambda: SentimentProjection(postgres.connect(settings, schema), KeyRing(settings))),
        ProjectionSpec("analytics", [topics.product_events, topics.customer_events, topics.sentiment_scored],
                       lambda: AnalyticsProjection(clickhouse.client(settings), database)),
    ]


def create_stores(settings: Settings, schema: str | None = None, database: str | None = None) -> None:
    """Create the projection tables in ``schema`` and ``database``, and the live schema's key table."""
    create_key_table(settings)
    postgres.create_schema(settings, schema)
    clickhouse.create_database(settings, database)
