"""Exception handlers: JSON under /api, HTML on pages, a 503 when the database is down."""

import logging
import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg.errors import QueryCanceled
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from http_methods import allowed_methods, route_path
from routers.pages import render_error_page
from schemas import Detail

logger = logging.getLogger(__name__)


def is_page(request: Request) -> bool:
    """Pages get HTML errors; the API, static files and the docs keep JSON."""
    path = request.url.path
    return not path.startswith(
        ("/api/", "/static/", "/media/", "/health", "/docs", "/redoc", "/openapi.json")
    )


async def on_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        # The router names the methods of the first route on the path only; `Allow` must
        # list them all, as OPTIONS does (/api/comments/{id} has PATCH and DELETE).
        allowed, _ = allowed_methods(request.app.routes, route_path(request.scope))
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    if is_page(request):
        return render_error_page(request, exc.status_code, exc.detail, exc.headers)
    return await http_exception_handler(request, exc)


async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    if is_page(request):
        return render_error_page(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid request")
    detail = [public_error(error) for error in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def public_error(error: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's error without the submitted `input`: a 422 never echoes a password back, and
    NaN or Infinity (which Python's JSON parser accepts) cannot make the answer unencodable.
    `ctx` keeps only the values that are plain JSON (limits, patterns, reasons)."""
    public: dict[str, Any] = {key: error[key] for key in ("loc", "msg", "type") if key in error}
    ctx = {key: value for key, value in error.get("ctx", {}).items() if is_plain_json(value)}
    if ctx:
        public["ctx"] = ctx
    return public


def is_plain_json(value: object) -> bool:
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return abs(value) < 2**63  # beyond, some JSON parsers lose precision
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(is_plain_json(item) for item in value)
    return False


async def on_database_unavailable(request: Request, exc: Exception) -> Response:
    # SQLAlchemy wraps psycopg's errors: a statement cancelled by the read engine's
    # statement_timeout (QueryCanceled) is an OperationalError too, and also answers 503.
    if isinstance(getattr(exc, "orig", None), QueryCanceled):
        logger.warning(
            "Query cancelled by PostgreSQL (statement_timeout) during %s %s",
            request.method,
            request.url.path,
        )
    else:
        logger.error("Database unavailable during %s %s: %s", request.method, request.url.path, exc)
    if is_page(request):
        return render_error_page(
            request,
            status.HTTP_503_SERVICE_UNAVAILABLE,
            Detail.DATABASE_UNAVAILABLE,
            {"Retry-After": "5"},
        )
    return JSONResponse(
        {"detail": Detail.DATABASE_UNAVAILABLE},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


# JSON happily carries NUL bytes and unpaired surrogates (and so does a form); PostgreSQL text,
# UTF-8 and argon2 refuse them. That is the client's mistake: a 422 shaped like FastAPI's own.
UNSTORABLE_TEXT = "Text contains a NUL character or an unpaired surrogate"


async def on_unstorable_text(request: Request, exc: Exception) -> Response:
    logger.info("Refused unstorable text in %s %s: %s", request.method, request.url.path, exc)
    if is_page(request):
        return render_error_page(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid request")
    detail = [{"loc": ["body"], "msg": UNSTORABLE_TEXT, "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)
UNSTORABLE: tuple[type[Exception], ...] = (DataError, UnicodeEncodeError)


def install(app: FastAPI) -> None:
    # Starlette types every handler as taking any Exception; it calls each with its own class.
    app.add_exception_handler(StarletteHTTPException, on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    for exc_class in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_class, on_database_unavailable)
    for exc_class in UNSTORABLE:
        app.add_exception_handler(exc_class, on_unstorable_text)
