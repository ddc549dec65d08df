"""The retry decision: which failures to retry, and how long to wait first.

The wait is the server's Retry-After when it sent one, otherwise exponential backoff with full jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

# 429 Too Many Requests, 502 Bad Gateway, 503 Service Unavailable and 504 Gateway Timeout. After a 504 the
# server may have done the work, but every operation of the API is safe to repeat.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

# Connection failures and timeouts. UnsupportedProtocol and other local mistakes are not retried.
RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header (delay in seconds or an HTTP date) into seconds from now, at least 0.

    Returns ``None`` when the header is missing or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are in GMT
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


@dataclass
class RetryPolicy:
    """How many times to retry and how long to wait between tries.

    Attributes:
        max_retries: retries after the first try; 0 turns retrying off.
        backoff_base: seconds; retry n (from 0) waits a random time in [0, backoff_base * 2**n].
        backoff_max: seconds; the cap on that upper bound.
        max_retry_after: seconds; a Retry-After longer than this is not waited for, and the error is raised
            at once so that the caller decides.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")

    def delay_after_response(self, retry: int, response: httpx.Response) -> float | None:
        """Return the seconds to wait before retry number ``retry`` (from 0), or ``None`` to stop retrying."""
        if response.status_code not in RETRYABLE_STATUSES or retry >= self.max_retries:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            return self.backoff(retry)
        if retry_after > self.max_retry_after:
            return None
        return retry_after

    def delay_after_error(self, retry: int, error: httpx.TransportError) -> float | None:
        """Return the seconds to wait before retry number ``retry`` after a transport error, or ``None``."""
        if not isinstance(error, RETRYABLE_ERRORS) or retry >= self.max_retries:
            return None
        return self.backoff(retry)

    def backoff(self, retry: int) -> float:
        """Return a random delay in [0, min(backoff_max, backoff_base * 2**retry)] ("full jitter")."""
        return self.random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** retry))
