"""PostgreSQL connections and schema set-up for the projections."""

import logging
from pathlib import Path

import psycopg
from psycopg import sql

from cie.settings import Settings

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent / "sql"


def connect(settings: Settings, schema: str | None = None, **kwargs) -> psycopg.Connection:
    """Open a connection whose search_path is the projection schema."""
    schema = schema or settings.postgres_schema
    return psycopg.connect(settings.postgres_dsn, options=f"-c search_path={schema}", **kwargs)


def create_schema(settings: Settings, schema: str | None = None) -> None:
    """Create the schema and its tables if missing (idempotent)."""
    schema = schema or settings.postgres_schema
    ddl = (SQL_DIR / "postgres.sql").read_text(encoding="utf-8")
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(ddl)


def drop_schema(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def applied_offsets(conn: psycopg.Connection, projection: str) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        'SELECT topic, partition, "offset" FROM projection_offsets WHERE projection = %s', (projection,)
    ).fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}


def claim_event_ids(cursor: psycopg.Cursor, projection: str, event_ids: list[str]) -> set[str]:
    """Insert event ids into applied_events and return those that were new.

    Runs inside the caller's transaction: if the batch rolls back, so do the claims.
    """
    if not event_ids:
        return set()
    cursor.execute(
        """
        INSERT INTO applied_events (projection, event_id)
        SELECT %s, id FROM unnest(%s::uuid[]) AS id
        ON CONFLICT DO NOTHING
        RETURNING event_id::text
        """,
        (projection, event_ids),
    )
    return {row[0] for row in cursor.fetchall()}


def claim_new_events(cursor: psycopg.Cursor, projection: str, events: list,
                     event_types: frozenset[str] | None = None) -> list[dict]:
    """Claim the batch's event ids and return the events this projection has not applied yet, in log order.

    Only events of ``event_types`` are considered (all when None). The first
    occurrence of an id in the batch wins, and later repeats are dropped.
    """
    first_seen = {}  # event id -> EventRecord, in log order
    for item in events:
        if event_types is None or item.event_type in event_types:
            first_seen.setdefault(item.event_id, item)
    new_ids = claim_event_ids(cursor, projection, list(first_seen))
    return [item.event for item_id, item in first_seen.items() if item_id in new_ids]


def store_offsets(cursor: psycopg.Cursor, projection: str, offsets: dict[tuple[str, int], int]) -> None:
    if not offsets:
        return
    cursor.executemany(
        """
        INSERT INTO projection_offsets (projection, topic, partition, "offset")
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (projection, topic, partition)
        DO UPDATE SET "offset" = greatest(projection_offsets."offset", excluded."offset")
        """,
        [(projection, topic, partition, offset) for (topic, partition), offset in offsets.items()],
    )
