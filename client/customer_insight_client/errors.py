"""Exceptions raised by the client, one class per kind of failure.

Every error response of the API is an RFC 9457 problem details object
(``application/problem+json``). The exception keeps its members as attributes
and the whole decoded body in ``body``, so a caller never has to parse JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from customer_insight_client.retry import parse_retry_after


class CustomerInsightError(Exception):
    """Base class of every exception this package raises."""


@dataclass(frozen=True)
class FieldError:
    """One invalid request field, from the ``errors`` member of a 400 or 422 response."""

    field: str  # e.g. "limit" or "lines[0].quantity"
    location: str | None  # "query", "path" or "body"
    message: str


class APIError(CustomerInsightError):
    """An error response from the API; the subclass names the kind of error.

    Attributes:
        status: the HTTP status code.
        title, detail, type, instance: the problem details members (``None`` when absent).
        errors: the invalid fields of a 400 or 422 response, empty otherwise.
        body: the decoded JSON body, or the raw text when the body is not JSON.
        headers: the response headers.
        method, url: the request that failed.
    """

    def __init__(self, response: httpx.Response, body: dict[str, Any] | str):
        problem = body if isinstance(body, dict) else {}
        self.status: int = response.status_code
        self.title: str | None = problem.get("title") or response.reason_phrase or None
        self.detail: str | None = problem.get("detail") or (body[:300] if isinstance(body, str) and body else None)
        self.type: str | None = problem.get("type")
        self.instance: str | None = problem.get("instance")
        self.errors: list[FieldError] = _field_errors(problem.get("errors"))
        self.body = body
        self.headers = response.headers
        self.method = response.request.method
        self.url = str(response.request.url)
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.method} {self.url} failed with {self.status} {self.title or ''}".rstrip()
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        hint = self._hint()
        return f"{text}. {hint}" if hint else text

    def _hint(self) -> str:
        """Return what the caller can do about the error, or an empty string."""
        return ""


class ValidationError(APIError):
    """400 or 422: the request had invalid fields, listed in ``errors``."""

    @property
    def fields(self) -> list[str]:
        """The names of the invalid fields, in the order the server listed them."""
        return [error.field for error in self.errors]

    def _hint(self) -> str:
        return "Fix the fields listed in the error's `errors` and send the request again." if self.errors else ""


class UnauthorizedError(APIError):
    """401: the API key is missing, unknown or revoked."""

    def _hint(self) -> str:
        return "Pass a valid API key as CustomerInsightAPI(api_key=...)."


class ForbiddenError(APIError):
    """403: the API key is valid but lacks the scope that the operation requires.

    ``required_scope`` is the scope the server named (e.g. ``"events:write"``), or ``None``.
    """

    def __init__(self, response: httpx.Response, body: dict[str, Any] | str):
        self.required_scope: str | None = body.get("required_scope") if isinstance(body, dict) else None
        super().__init__(response, body)

    def _hint(self) -> str:
        if self.required_scope:
            return f"Use an API key with the scope {self.required_scope!r}."
        return "Use an API key with the scope this operation requires."


class NotFoundError(APIError):
    """404: no customer, product or route with that id."""


class RateLimitedError(APIError):
    """429 after the client used up its retries.

    ``retry_after`` is the number of seconds the server asked to wait, or ``None``.
    """

    def __init__(self, response: httpx.Response, body: dict[str, Any] | str):
        self.retry_after: float | None = parse_retry_after(response.headers.get("Retry-After"))
        super().__init__(response, body)

    def _hint(self) -> str:
        if self.retry_after is not None:
            return f"Wait {self.retry_after:g} s before sending the request again."
        return "Wait before sending the request again."


class ServerError(APIError):
    """5xx after the client used up its retries (for 502, 503 and 504) or at once (other 5xx)."""


class TransportError(CustomerInsightError):
    """The request got no HTTP response: the connection failed or timed out after the client's retries.

    The httpx exception is the ``__cause__``.
    """

    def __init__(self, method: str, url: str, error: httpx.TransportError):
        self.method = method
        self.url = url
        super().__init__(f"{method} {url} failed: {type(error).__name__}: {error or 'no message'}. "
                         "Check that the API is running at the client's base_url and reachable.")


class UnexpectedResponseError(CustomerInsightError):
    """A success response whose body does not have the shape the client expects (a server of another version)."""

    def __init__(self, method: str, url: str, status: int, reason: str, body: str):
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        super().__init__(f"{method} {url} returned {status} with a body the client cannot read: {reason}. "
                         "Check that the client and server versions match.")


def _field_errors(items: Any) -> list[FieldError]:
    if not isinstance(items, list):
        return []
    return [FieldError(field=str(item.get("field", "")), location=item.get("location"),
                       message=str(item.get("message", "")))
            for item in items if isinstance(item, dict)]


def decode_body(response: httpx.Response) -> dict[str, Any] | str:
    """Return the JSON object of an error response, or its text when it is not a JSON object."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    return body if isinstance(body, dict) else response.text


def error_for_response(response: httpx.Response) -> APIError:
    """Build the exception for an error response (status 400 or above)."""
    body = decode_body(response)
    status = response.status_code
    if status in (400, 422):
        return ValidationError(response, body)
    if status == 401:
        return UnauthorizedError(response, body)
    if status == 403:
        return ForbiddenError(response, body)
    if status == 404:
        return NotFoundError(response, body)
    if status == 429:
        return RateLimitedError(response, body)
    if status >= 500:
        return ServerError(response, body)
    return APIError(response, body)
