"""Errors as RFC 9457 problem details (``application/problem+json``), one shape for every error."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.events import EVENT_TYPES

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


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem):
        return _response(request, error.status, error.title, error.detail, error.type, error.headers, **error.extensions)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError):
        errors = [{"field": _field_name(_error_location(item)), "location": item["loc"][0] if item["loc"] else None,
                   "message": item["msg"]} for item in error.errors()]
        detail = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
        return _response(request, 422, "Invalid request", detail, "validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException):
        return _response(request, error.status_code, str(error.detail), str(error.detail), f"http-{error.status_code}",
                         getattr(error, "headers", None))
