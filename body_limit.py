"""Refuse request bodies over the upload limit while they arrive, not after.

Starlette's multipart parser spools a whole upload to a temporary file before the route runs,
so the route's own size check alone would come after a 2 GB body had been read. This pure ASGI
middleware answers 413 as soon as the declared Content-Length, or the bytes counted so far in a
chunked body, pass the limit, and reads nothing more.
"""

from fastapi import status
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import settings

# Multipart boundaries and part headers around the file itself.
MULTIPART_ALLOWANCE = 64 * 1024


def too_large_detail() -> str:
    return f"File too large. Maximum size is {settings.max_upload_size_bytes // (1024 * 1024)}MB"


def too_large() -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=too_large_detail())


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.max_upload_size_bytes + MULTIPART_ALLOWANCE
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse({"detail": too_large_detail()}, status_code=413)
            await response(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes FastAPI's body parsing untouched and becomes the
                    # usual JSON error; the rest of the body is never asked for.
                    raise too_large()
            return message

        await self.app(scope, counting_receive, send)
