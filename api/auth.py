"""Bearer API keys, scopes and rate limits for the API's routers.

Each router is included with ``dependencies=[Depends(require_scope(...))]``, so
every request to it passes these steps before the route runs (and so before
any lookup of the requested customer or product):

1. Read ``Authorization: Bearer <token>``: missing or malformed is 401.
2. Look the key up by its id and compare the secret's SHA-256 in constant time:
   unknown, wrong secret, revoked or expired is 401.
3. Take a token from the key's bucket in Redis: empty is 429 with Retry-After,
   and Redis unreachable is 503 (fail closed).
4. Check the scope: a key without it gets 403 naming the scope.

NOTE: FastAPI parses a JSON request body before it runs any dependency, so a
body that is not JSON at all gets its 422 before the key is checked. A body
that is JSON but invalid gets the 401 first.

The key is read from PostgreSQL on every request (one primary-key lookup on the
API's connection pool), so a revocation takes effect with the next request.
"""

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import Problem
from api.ratelimit import RateLimiterUnavailable
from api.routes.deps import get_stores
from api.stores import Stores
from cie.apikeys import SCOPES, ApiKey, InvalidToken, touch_last_used, verify_token

log = logging.getLogger(__name__)

REALM = "customer-insight"
REDIS_WARNING_INTERVAL = 10.0  # seconds between log lines about an unreachable Redis

# Declares the scheme in the OpenAPI document. The header itself is parsed below, so that
# the 401 for a malformed header can name what is wrong with it.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="cie_<key id>_<secret>",
    description="An API key from `cie keys create`, sent as `Authorization: Bearer <key>`.",
)


_PROBLEM_SCHEMA = {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
    "detail": {"type": "string"}, "instance": {"type": "string"}}}

# Responses that require_scope can return on any route; include_router(..., responses=AUTH_RESPONSES) lists them in OpenAPI.
AUTH_RESPONSES = {
    status: {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}}}
    for status, description in (
        (401, "Missing, malformed, unknown, revoked or expired API key"),
        (403, "The API key lacks the route's scope (named in required_scope)"),
        (429, "The API key's rate limit is exceeded; retry after Retry-After seconds"),
        (503, "The rate limiter (Redis) is unreachable"),
    )
}


def unauthorized(detail: str, token_given: bool) -> Problem:
    challenge = f'Bearer realm="{REALM}"'
    if token_given:
        challenge += ', error="invalid_token"'
    return Problem(401, "Unauthorized", detail, "unauthorized", headers={"WWW-Authenticate": challenge})


def forbidden(key: ApiKey, scope: str) -> Problem:
    return Problem(403, "Forbidden", f"API key {key.key_id} does not have the scope {scope!r} this route requires",
                   "forbidden", required_scope=scope)


def too_many_requests(key: ApiKey, retry_after: int, rate: float, burst: int) -> Problem:
    return Problem(429, "Too many requests",
                   f"API key {key.key_id} is limited to {rate:g} requests per second (bursts of {burst}); "
                   f"retry in {retry_after} s", "rate-limited", headers={"Retry-After": str(retry_after)},
                   retry_after=retry_after)


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise unauthorized("missing Authorization header; send 'Authorization: Bearer <API key>'", token_given=False)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("malformed Authorization header; expected 'Bearer <API key>'", token_given=True)
    return token


def authenticate(request: Request, stores: Stores) -> ApiKey:
    """Return the request's valid API key, or raise a 401 problem."""
    token = _bearer_token(request)
    now = datetime.now(timezone.utc)
    with stores.postgres.connection() as conn:
        try:
            key = verify_token(conn, token, now)
        except InvalidToken as error:
            log.info("rejected API key %s on %s %s: %s", error.key_id or "(malformed)", request.method,
                     request.url.path, error)
            raise unauthorized(str(error), token_given=True) from None
        touch_last_used(conn, key, now)
    return key


class _RepeatCounter:
    """Counts a repeated failure so that it is logged once per interval, with the number of repeats."""

    def __init__(self, interval: float):
        self.interval = interval
        self._lock = threading.Lock()
        self._last_logged = float("-inf")
        self._suppressed = 0

    def due(self) -> int | None:
        """Return the repeats since the last log line if one is due now, else None."""
        with self._lock:
            now = time.monotonic()
            if now - self._last_logged < self.interval:
                self._suppressed += 1
                return None
            repeats, self._suppressed, self._last_logged = self._suppressed, 0, now
            return repeats


_redis_failures = _RepeatCounter(REDIS_WARNING_INTERVAL)


def enforce_rate_limit(key: ApiKey, stores: Stores) -> None:
    rate = key.rate_per_second or stores.settings.rate_limit_per_second
    burst = key.burst or stores.settings.rate_limit_burst
    try:
        decision = stores.rate_limiter.take(key.key_id, rate, burst)
    except RateLimiterUnavailable as error:
        repeats = _redis_failures.due()
        if repeats is not None:
            log.warning("rejected a request of API key %s with 503 because the rate limit could not be checked "
                        "(%d more such rejections since the last warning): %s", key.key_id, repeats, error)
        raise Problem(503, "Service unavailable",
                      "the rate limiter (Redis) is unreachable, so no request is accepted; retry shortly",
                      "rate-limiter-unavailable", headers={"Retry-After": "5"}) from None
    if not decision.allowed:
        raise too_many_requests(key, decision.retry_after, rate, burst)


def require_scope(scope: str) -> Callable[..., ApiKey]:
    """Return a dependency that admits requests whose API key has ``scope`` (or ``admin``)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")

    def check_api_key(request: Request, stores: Stores = Depends(get_stores),
                      _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)) -> ApiKey:
        key = authenticate(request, stores)
        enforce_rate_limit(key, stores)
        if not key.allows(scope):
            log.info("API key %s (%s) lacks scope %s for %s %s", key.key_id, key.name, scope, request.method,
                     request.url.path)
            raise forbidden(key, scope)
        request.state.api_key = key
        return key

    check_api_key.__name__ = f"require_scope_{scope.replace(':', '_')}"
    return check_api_key
