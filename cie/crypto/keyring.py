"""Per-customer data keys: created in bulk, wrapped by the master key, destroyed on erasure.

Each customer gets one random 256-bit data key. PostgreSQL stores it wrapped
(AES-256-GCM under the master key, associated data naming the customer, the key
version and the master key id) in ``<schema>.data_keys``. That table is not a
projection: no replay drops or rebuilds it, and a replay into ``<schema>_replay``
reads the keys of the live schema.

Erasure overwrites the wrapped key with NULL and stamps ``erased_at`` in the
same row, so the row becomes a tombstone. Creation is ``INSERT ... ON CONFLICT
DO NOTHING`` on the same primary key, so whichever of a creation and an erasure
comes second finds the row of the first. No key is ever issued again to an erased customer.
"""

import logging
import os
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Iterable

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from cie.crypto.fields import NONCE_SIZE, DataKey
from cie.crypto.master import MasterKey, parse_master_key
from cie.settings import Settings

log = logging.getLogger(__name__)

KEY_VERSION = 1  # version of newly created data keys; a data key rotation would add 2
BULK_SIZE = 10_000  # customer ids per statement

DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    customer_id       text PRIMARY KEY,
    key_version       integer NOT NULL,      -- data key version, also written into every sealed value
    master_key_id     text,                  -- id of the master key that wrapped the key (cie.crypto.master)
    nonce             bytea,                 -- nonce of the wrapping; NULL once destroyed
    wrapped_key       bytea,                 -- the data key, AES-256-GCM under the master key; NULL once destroyed
    created_at        timestamptz NOT NULL DEFAULT now(),
    erased_at         timestamptz,           -- occurred_at of the customer.erased event: the row is a tombstone
    erasure_event_id  uuid,
    destroyed_at      timestamptz,           -- wall-clock time the key was destroyed
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
)
"""


class KeyRingError(RuntimeError):
    """A stored data key cannot be unwrapped with the configured master key."""


def key_table(schema: str) -> sql.Composed:
    return sql.Identifier(schema, "data_keys")


def create_key_table(settings: Settings) -> None:
    """Create ``<CIE_POSTGRES_SCHEMA>.data_keys`` if missing (idempotent)."""
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.postgres_schema)))
        conn.execute(sql.SQL(DDL).format(table=key_table(settings.postgres_schema)))


def destroy_keys(cursor: psycopg.Cursor, schema: str, erasures: list[tuple[str, datetime, str]]) -> None:
    """Destroy the data keys of (customer id, erased_at, erasure event id) in the caller's transaction.

    Leaves a tombstone row even for a customer who never had a key. A repeated
    erasure keeps the earliest time and its event id.
    """
    if not erasures:
        return
    cursor.execute(
        sql.SQL("""
        INSERT INTO {table} AS k (customer_id, key_version, erased_at, erasure_event_id, destroyed_at)
        SELECT customer_id, 0, erased_at, event_id, now()
        FROM unnest(%s::text[], %s::timestamptz[], %s::uuid[]) AS e(customer_id, erased_at, event_id)
        ON CONFLICT (customer_id) DO UPDATE SET
            nonce = NULL,
            wrapped_key = NULL,
            erased_at = least(k.erased_at, excluded.erased_at),
            erasure_event_id = CASE WHEN k.erased_at IS NULL OR excluded.erased_at < k.erased_at
                                    THEN excluded.erasure_event_id ELSE k.erasure_event_id END,
            destroyed_at = coalesce(k.destroyed_at, excluded.destroyed_at)
        """).format(table=key_table(schema)),
        ([customer for customer, _, _ in erasures], [at for _, at, _ in erasures],
         [event_id for _, _, event_id in erasures]),
    )


def erased_among(cursor: psycopg.Cursor, schema: str, customer_ids: Iterable[str]) -> set[str]:
    """Return which customers are erased, locking their key rows until the caller's transaction ends.

    The share lock makes a concurrent erasure wait for this transaction (or this
    read wait for the erasure), so a projection never writes a personal field of
    a customer whose erasure has already cleared that projection.
    """
    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    cursor.execute(
        sql.SQL("SELECT customer_id, erased_at FROM {table} WHERE customer_id = ANY(%s) FOR SHARE")
        .format(table=key_table(schema)), (ids,))
    return {customer for customer, erased_at in cursor.fetchall() if erased_at is not None}


class KeyRing:
    """Get or create customers' data keys in bulk, with a bounded in-memory cache of unwrapped keys.

    ``keys()`` maps each customer id to its DataKey, or to None when the
    customer is erased; without ``create`` a customer with no key is left out.
    A cached key is trusted for ``cache_seconds``, so another process notices an
    erasure within that time. Whatever it encrypts meanwhile is sealed under the
    destroyed key and so is unreadable too. Thread-safe: one connection, one lock.
    """

    def __init__(self, settings: Settings, master: MasterKey | None = None):
        self.settings = settings
        self.schema = settings.postgres_schema
        self.master = master or parse_master_key(
            settings.master_key.get_secret_value() if settings.master_key else None)
        self.cache_size = settings.key_cache_size
        self.cache_seconds = settings.key_cache_seconds
        self._cache: OrderedDict[str, tuple[float, DataKey | None]] = OrderedDict()  # id -> (cached at, key or None if erased)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def keys(self, customer_ids: Iterable[str], create: bool = False) -> dict[str, DataKey | None]:
        """Return the data key of each customer (None if erased), creating missing ones when ``create``."""
        wanted = sorted(set(customer_ids))
        with self._lock:
            found, missing = self._from_cache(wanted)
            try:
                for start in range(0, len(missing), BULK_SIZE):
                    chunk = missing[start:start + BULK_SIZE]
                    loaded = self._load(chunk)
                    if create:
                        loaded.update(self._create([customer for customer in chunk if customer not in loaded]))
                    self._remember(loaded)
                    found.update(loaded)
            except psycopg.OperationalError:
                self.close()  # reconnect on the next call
                raise
        return found

    def forget(self, customer_ids: Iterable[str]) -> None:
        """Drop cached keys, for example of customers this process has just erased."""
        with self._lock:
            for customer in customer_ids:
                self._cache.pop(customer, None)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            create_key_table(self.settings)  # an importer may run before `cie init`
            self._conn = psycopg.connect(self.settings.postgres_dsn, autocommit=True)
        return self._conn

    def _from_cache(self, wanted: list[str]) -> tuple[dict[str, DataKey | None], list[str]]:
        now = time.monotonic()
        found, missing = {}, []
        for customer in wanted:
            entry = self._cache.get(customer)
            # An erased customer stays erased, so only live keys expire.
            if entry is not None and (entry[1] is None or now - entry[0] < self.cache_seconds):
                self._cache.move_to_end(customer)
                found[customer] = entry[1]
            else:
                missing.append(customer)
        return found, missing

    def _remember(self, keys: dict[str, DataKey | None]) -> None:
        now = time.monotonic()
        for customer, key in keys.items():
            self._cache[customer] = (now, key)
            self._cache.move_to_end(customer)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _load(self, customer_ids: list[str]) -> dict[str, DataKey | None]:
        rows = self._connection().execute(
            sql.SQL("SELECT customer_id, key_version, master_key_id, nonce, wrapped_key, erased_at "
                    "FROM {table} WHERE customer_id = ANY(%s)").format(table=key_table(self.schema)),
            (customer_ids,),
        ).fetchall()
        return {row[0]: None if row[5] is not None else self._unwrap(*row[:5]) for row in rows}

    def _create(self, customer_ids: list[str]) -> dict[str, DataKey | None]:
        if not customer_ids:
            return {}
        candidates = {customer: os.urandom(32) for customer in customer_ids}
        nonces = {customer: os.urandom(NONCE_SIZE) for customer in customer_ids}
        wrapped = [self._wrap(customer, key, nonces[customer]) for customer, key in candidates.items()]
        rows = self._connection().execute(
            sql.SQL("""
            INSERT INTO {table} (customer_id, key_version, master_key_id, nonce, wrapped_key)
            SELECT customer_id, %s, %s, nonce, wrapped_key
            FROM unnest(%s::text[], %s::bytea[], %s::bytea[]) AS k(customer_id, nonce, wrapped_key)
            ON CONFLICT (customer_id) DO NOTHING
            RETURNING customer_id
            """).format(table=key_table(self.schema)),
            (KEY_VERSION, self.master.key_id, list(candidates), [nonces[customer] for customer in candidates], wrapped),
        ).fetchall()
        created = {row[0] for row in rows}
        keys: dict[str, DataKey | None] = {customer: DataKey(customer, KEY_VERSION, candidates[customer])
                                           for customer in created}
        # Another process created (or erased) the rest since _load: read what it stored.
        raced = [customer for customer in customer_ids if customer not in created]
        if raced:
            keys.update(self._load(raced))
        return keys

    def _associated_data(self, customer_id: str, version: int, master_key_id: str) -> bytes:
        return f"cie-data-key:{customer_id}\x1f{version}\x1f{master_key_id}".encode()

    def _wrap(self, customer_id: str, key: bytes, nonce: bytes) -> bytes:
        return AESGCM(self.master.key).encrypt(
            nonce, key, self._associated_data(customer_id, KEY_VERSION, self.master.key_id))

    def _unwrap(self, customer_id: str, version: int, master_key_id: str, nonce: bytes, wrapped: bytes) -> DataKey:
        if master_key_id != self.master.key_id:
            raise KeyRingError(f"the data key of customer {customer_id} was wrapped by master key {master_key_id}, "
                               f"but CIE_MASTER_KEY is master key {self.master.key_id}; set CIE_MASTER_KEY to the "
                               "key the data keys were created with")
        try:
            key = AESGCM(self.master.key).decrypt(nonce, wrapped,
                                                  self._associated_data(customer_id, version, master_key_id))
        except InvalidTag:
            raise KeyRingError(f"the wrapped data key of customer {customer_id} fails authentication under master "
                               f"key {master_key_id}: the row was altered or copied from another customer") from None
        return DataKey(customer_id, version, key)
