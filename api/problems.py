"""Errors as RFC 9457 problem details (``application/problem+json``), one shape for every error."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from schemas.events import EVENT_TYPES

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:cie:problem:"  # stable identifiers that clients match on; not URLs to fetch


class Problem(Exception):
    """An error the API reports to the client as problem details."""

    def __init__(self, status: int, title: str, detail: str, type_: str, headers: dict[str, str] | None = None,
                 **extensions):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers
        self.extensions = extensions


def not_found(kind: str, identifier: str) -> Problem:
    return Problem(404, f"{kind.capitalize()} not found", f"no {kind} with id {identifier!r}", "not-found")


def _response(request: Request, status: int, title: str, detail: str, type_: str,
              headers: dict[str, str] | None = None, **extensions) -> JSONResponse:
    body = {"type": PROBLEM_TYPE_BASE + type_, "title": title, "status": status, "detail": detail,
            "instance": request.url.path, **extensions}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _error_location(error: dict) -> tuple:
    location = tuple(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # pydantic reports a bad or missing tag at the union itself, so the tag field is added to the location.
        location += (error["ctx"]["discriminator"].strip("'"),)
    return location


def _field_name(location: tuple) -> str:
    # ("query", "limit") -> "limit", and ("body", "order.placed", "lines", 0, "quantity") -> "lines[0].quantity".
    # pydantic inserts the event_type tag of the Event union into the location, but the tag is not a request field.
    parts = [part for part in location if part not in ("body", "query", "path", "header", *EVENT_TYPES)]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or ".".join(str(part) for part in location)


def _validation_error(item: dict) -> dict:
    if item["type"] == "json_invalid":
        # pydantic puts the character position of a JSON syntax error where a field name would be.
        position = item["loc"][1] if len(item["loc"]) > 1 else None
        reason = item.get("ctx", {}).get("error", "")
        at = f" at character {position}" if isinstance(position, int) else ""
        return {"field": "body", "location": "body",
                "message": f"invalid JSON{at}" + (f": {reason}" if reason else "")}
    return {"field": _field_name(_error_location(item)), "location": item["loc"][0] if item["loc"] else None,
            "message": item["msg"]}


# Methods that a 405 response may list in Allow, in this order.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Return every method that some route of the app serves on the request's path.

    Starlette's own 405 lists only the methods of the first route whose path
    matches, but several routers can serve one path: GET /v1/customers/{id}
    comes from the customers router and DELETE from the erasure router. Each
    method is tried against every route with ``matches``, because FastAPI
    0.165 nests included routers, so ``app.routes`` contains no flat list.
    """
    allowed = []
    for method in HTTP_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem):
        return _response(request, error.status, error.title, error.detail, error.type, error.headers, **error.extensions)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError):
        errors = [_validation_error(item) for item in error.errors()]
        detail = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
        return _response(request, 422, "Invalid request", detail, "validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException):
        # Starlette raises these itself for an unknown path (404) and a method a path does not allow (405).
        title = str(error.detail)
        detail = title
        headers = getattr(error, "headers", None)
        if error.status_code == 404 and title == "Not Found":
            detail = f"no route matches {request.url.path}; GET /docs lists the API"
        elif error.status_code == 405:
            allowed = ", ".join(_allowed_methods(request))
            headers = {**(headers or {}), "Allow": allowed}
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed or 'none'}"
        return _response(request, error.status_code, title, detail, f"http-{error.status_code}", headers)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, error: Exception):
        # The client gets no internals; Starlette re-raises the error after this, so the server logs its traceback.
        log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.url.path)
        return _response(request, 500, "Internal server error",
                         "the server failed to handle the request; the error is in the API log", "internal")
