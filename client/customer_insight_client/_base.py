"""Shared parts of the sync and async clients: settings, headers, the retry decision and response parsing."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import httpx
import pydantic

from customer_insight_client.endpoints import Call
from customer_insight_client.errors import TransportError, UnexpectedResponseError, error_for_response
from customer_insight_client.retry import RetryPolicy

log = logging.getLogger("customer_insight_client")

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 10.0  # seconds, for connecting and for each read
VERSION = "0.1.0"


class ClientBase:
    """Settings and the transport-free steps of sending a ``Call``."""

    def __init__(self, api_key: str, base_url: str, timeout: float | httpx.Timeout, max_retries: int,
                 retry_policy: RetryPolicy | None, headers: dict[str, str] | None):
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key is empty: pass the API key, e.g. CustomerInsightAPI(os.environ['CIE_API_KEY'])")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self.headers = {
            "Accept": "application/json, application/problem+json",
            "User-Agent": f"customer-insight-client/{VERSION}",
            **(headers or {}),
            "Authorization": f"Bearer {api_key.strip()}",
        }

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _delay_after_response(self, call: Call[Any], retry: int, response: httpx.Response) -> float | None:
        """Return seconds to wait before retrying ``call`` after ``response``, or ``None`` to stop."""
        if response.status_code in call.result_statuses:
            return None
        delay = self.retry_policy.delay_after_response(retry, response)
        if delay is not None:
            log.info("retrying %s %s in %.2f s after status %d (retry %d of %d)", call.method, call.path, delay,
                     response.status_code, retry + 1, self.retry_policy.max_retries)
        return delay

    def _delay_after_error(self, call: Call[Any], retry: int, error: httpx.TransportError) -> float:
        """Return seconds to wait before retrying ``call`` after a transport error; raise when out of retries."""
        delay = self.retry_policy.delay_after_error(retry, error)
        if delay is None:
            raise TransportError(call.method, f"{self.base_url}{call.path}", error) from error
        log.info("retrying %s %s in %.2f s after %s (retry %d of %d)", call.method, call.path, delay,
                 type(error).__name__, retry + 1, self.retry_policy.max_retries)
        return delay

    @staticmethod
    def _result(call: Call[T], response: httpx.Response) -> T:
        """Parse a final response into the call's models, or raise the exception for its error status."""
        if response.status_code >= 400 and response.status_code not in call.result_statuses:
            raise error_for_response(response)
        method, url = response.request.method, str(response.request.url)
        try:
            data = response.json()
        except ValueError as error:
            raise UnexpectedResponseError(method, url, response.status_code, f"not JSON ({error})",
                                          response.text[:300]) from error
        try:
            return call.parse(data)
        except pydantic.ValidationError as error:
            raise UnexpectedResponseError(method, url, response.status_code, str(error),
                                          response.text[:300]) from error
