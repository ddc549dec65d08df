"""API keys: creation, listing, revocation and verification of bearer tokens.

A token reads ``cie_<key id>_<secret>``. The key id is public and selects the
row; the secret is 32 random bytes (``secrets.token_urlsafe(32)``) and only its
SHA-256 digest is stored. A plain hash is enough here, unlike for passwords:
with 256 bits of entropy a stolen digest cannot be reversed by guessing, so a
slow password hash (bcrypt, Argon2) would only add cost to every request.

The ``api_keys`` table lives in the live PostgreSQL schema next to the
projections but is not one: no event creates it, and a replay neither
rebuilds nor drops it.
"""

import hashlib
import hmac
import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from cie.settings import Settings
from projections import postgres

log = logging.getLogger(__name__)

SCOPES = ("profiles:read", "analytics:read", "events:write", "admin")
ADMIN_SCOPE = "admin"  # implies every other scope
TOKEN_PREFIX = "cie"
KEY_ID = r"[0-9a-f]{12}"  # the public part of a token, which `cie keys revoke` takes
KEY_ID_PATTERN = re.compile(rf"^{KEY_ID}$")
TOKEN_PATTERN = re.compile(rf"^cie_(?P<key_id>{KEY_ID})_(?P<secret>[A-Za-z0-9_-]{{43}})$")

# Never select the digest into anything that is printed or logged.
KEY_COLUMNS = "key_id, name, scopes, rate_per_second, burst, created_at, last_used_at, expires_at, revoked_at"

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id          text PRIMARY KEY,
    name            text NOT NULL,
    secret_sha256   bytea NOT NULL,
    scopes          text[] NOT NULL,
    rate_per_second double precision,  -- NULL: CIE_RATE_LIMIT_PER_SECOND at request time
    burst           integer,           -- NULL: CIE_RATE_LIMIT_BURST at request time
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,       -- updated at most once a minute (LAST_USED_INTERVAL)
    expires_at      timestamptz,
    revoked_at      timestamptz
)
"""

LAST_USED_INTERVAL = timedelta(minutes=1)
UNKNOWN_KEY_MESSAGE = "unknown API key or wrong secret; create a key with `cie keys create`"


class InvalidToken(Exception):
    """The bearer token is malformed, unknown, revoked, expired or has the wrong secret.

    The message is safe to return to the client. An unknown key id and a wrong
    secret get the same message, so a caller cannot probe which key ids exist.
    """

    def __init__(self, message: str, key_id: str | None = None):
        super().__init__(message)
        self.key_id = key_id


class ApiKeyNotFound(Exception):
    pass


class ApiKeyAlreadyRevoked(Exception):
    """A revocation of a key that was revoked before. ``key.revoked_at`` is the first revocation, which stays."""

    def __init__(self, key: "ApiKey"):
        super().__init__(f"API key {key.key_id} was already revoked at {key.revoked_at.isoformat()}")
        self.key = key


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    name: str
    scopes: list[str]
    rate_per_second: float | None
    burst: int | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN_SCOPE in self.scopes

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class CreatedKey:
    """A new key. ``secret`` is the whole bearer token; it is not stored and cannot be shown again."""

    key_id: str
    secret: str
    name: str
    scopes: list[str]
    expires_at: datetime | None


def create_table(settings: Settings) -> None:
    """Create the api_keys table in the live schema if it is missing (idempotent)."""
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.postgres_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.postgres_schema)))
        conn.execute(TABLE_DDL)


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {', '.join(map(repr, unknown))}; use one or more of {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return sorted(set(scopes), key=SCOPES.index)


def create_api_key(settings: Settings, name: str, scopes: list[str], expires_at: datetime | None = None,
                   rate_per_second: float | None = None, burst: int | None = None) -> CreatedKey:
    """Store a new key and return it with its token, which is not stored anywhere."""
    scopes = validate_scopes(list(scopes))
    if not name.strip():
        raise ValueError("the key name must not be empty; name it after who uses it, e.g. 'billing-service'")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError(f"expires_at {expires_at.isoformat()} has no time zone; pass an aware datetime")
    if rate_per_second is not None and not (math.isfinite(rate_per_second) and rate_per_second > 0):
        raise ValueError(f"rate_per_second must be a finite number greater than 0, not {rate_per_second}")
    if burst is not None and burst < 1:
        raise ValueError(f"burst must be at least 1, not {burst}")

    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with postgres.connect(settings, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_keys (key_id, name, secret_sha256, scopes, rate_per_second, burst, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (key_id, name, secret_digest(secret), scopes, rate_per_second, burst, expires_at),
        )
    log.info("created API key %s (%s) with scopes %s", key_id, name, ", ".join(scopes))
    return CreatedKey(key_id, f"{TOKEN_PREFIX}_{key_id}_{secret}", name, scopes, expires_at)


def list_api_keys(settings: Settings) -> list[ApiKey]:
    with postgres.connect(settings) as conn:
        rows = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id").fetchall()
    return [ApiKey(*row) for row in rows]


def revoke_api_key(settings: Settings, key_id: str) -> ApiKey:
    """Mark a key revoked and return it; raise ApiKeyAlreadyRevoked if it was revoked before, and keep that time."""
    with postgres.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            f"UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL RETURNING {KEY_COLUMNS}",
            (key_id,),
        ).fetchone()
        if row is None:
            row = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,)).fetchone()
            if row is None:
                raise ApiKeyNotFound(f"no API key with id {key_id!r}; `cie keys list` shows the ids")
            raise ApiKeyAlreadyRevoked(ApiKey(*row))
    log.info("revoked API key %s (%s)", row[0], row[1])
    return ApiKey(*row)


def verify_token(conn: psycopg.Connection, token: str, now: datetime | None = None) -> ApiKey:
    """Return the key that ``token`` belongs to, or raise InvalidToken saying why it is rejected.

    ``conn`` is a connection whose search_path is the live schema and whose rows are dicts or tuples.
    """
    match = TOKEN_PATTERN.match(token)
    if match is None:
        raise InvalidToken("invalid token format; expected cie_<key id>_<secret> as printed by `cie keys create`")
    key_id = match["key_id"]
    row = conn.execute(f"SELECT {KEY_COLUMNS}, secret_sha256 FROM api_keys WHERE key_id = %s", (key_id,)).fetchone()
    if row is None:
        raise InvalidToken(UNKNOWN_KEY_MESSAGE, key_id)
    values = list(row.values()) if isinstance(row, dict) else list(row)
    stored_digest = bytes(values.pop())
    if not hmac.compare_digest(secret_digest(match["secret"]), stored_digest):
        raise InvalidToken(UNKNOWN_KEY_MESSAGE, key_id)

    # Only the holder of the right secret learns that the key was revoked or has expired.
    key = ApiKey(*values)
    now = now or datetime.now(timezone.utc)
    if key.revoked_at is not None:
        raise InvalidToken(f"API key {key_id} was revoked at {key.revoked_at.isoformat()}", key_id)
    if key.is_expired(now):
        raise InvalidToken(f"API key {key_id} expired at {key.expires_at.isoformat()}", key_id)
    return key


def touch_last_used(conn: psycopg.Connection, key: ApiKey, now: datetime | None = None) -> bool:
    """Set last_used_at unless it was set within LAST_USED_INTERVAL, so most requests write nothing."""
    now = now or datetime.now(timezone.utc)
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_INTERVAL:
        return False
    conn.execute("UPDATE api_keys SET last_used_at = %s WHERE key_id = %s", (now, key.key_id))
    return True
