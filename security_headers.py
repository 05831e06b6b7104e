"""Security headers on every response (pure ASGI, so streaming responses pass untouched).

Every response carries a Content-Security-Policy: this default one, or the one a route set
itself (the interactive docs in docs.py have their own).
"""

from functools import cache
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import settings

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: https:{extra_img}; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


@cache
def content_security_policy(s3_endpoint_url: str | None) -> bytes:
    """Pictures on an S3-compatible endpoint over plain http (MinIO, moto) must still show."""
    extra = ""
    if s3_endpoint_url and urlsplit(s3_endpoint_url).scheme == "http":
        parts = urlsplit(s3_endpoint_url)
        extra = f" {parts.scheme}://{parts.netloc}"
    return CONTENT_SECURITY_POLICY.format(extra_img=extra).encode()


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in HEADERS if name not in present]
                if b"content-security-policy" not in present:
                    policy = content_security_policy(settings.s3_endpoint_url)
                    headers.append((b"content-security-policy", policy))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
