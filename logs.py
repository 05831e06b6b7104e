"""Logging: text or JSON lines, each naming the request it belongs to.

Every HTTP request gets an ID: the client's `X-Request-ID` when it is sane (1 to 64 of
`A-Za-z0-9-_.`), else a new one; anything else (too long, a newline, a quote) is replaced,
never echoed or logged. The ID goes back in the response's `X-Request-ID` and onto every log
line written while the request runs, uvicorn's access and error lines included, through a
contextvar that a filter on the handler copies into each record (`-` outside a request).

LOG_FORMAT=text (default): `time level logger [request id]: message`.
LOG_FORMAT=json: one object a line with `time`, `level`, `logger`, `message`, `request_id`
(and `exception` with the traceback, when there is one).
"""

import json
import logging
import os
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
NO_REQUEST = "-"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

request_id: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record the handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line (json.dumps escapes every newline a message may carry)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NO_REQUEST),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def make_handler(log_format: str) -> logging.StreamHandler[TextIO]:
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(log_format: str) -> None:
    """The root logger writes `log_format` lines at INFO; uvicorn's loggers write through it."""
    logging.basicConfig(level=logging.INFO, handlers=[make_handler(log_format)])
    # uvicorn gives its loggers handlers of their own; without them its access and error lines
    # reach the root handler, in the same format and with the request ID.
    for name in ("uvicorn", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


def new_request_id() -> str:
    """32 random hex digits (as a UUID4's hex, at a fraction of the cost)."""
    return os.urandom(16).hex()


def choose_request_id(given: bytes | None) -> str:
    """The client's ID when it is sane, else a new one."""
    if given is not None and SANE_ID.fullmatch(given):
        return given.decode()
    return new_request_id()


class RequestIdMiddleware:
    """Sets the request's ID for its log lines and returns it in `X-Request-ID` (pure ASGI)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        current = choose_request_id(given)
        # Never reset: uvicorn runs each request in a task of its own, and logs an unhandled
        # error's traceback in that task after this middleware has returned.
        request_id.set(current)
        header = (HEADER, current.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette's last-resort 500 is sent from outside every middleware, without the
            # ID: send the same one here (Starlette then only re-raises, for uvicorn to log).
            if not started:
                response = PlainTextResponse("Internal Server Error", status_code=500)
                await response(scope, receive, send_with_id)
            raise
