"""HEAD on every GET route, and OPTIONS that lists a route's methods (pure ASGI).

FastAPI's routes answer only the methods they declare, so HEAD got a 405, which monitors, feed
readers and crawlers trip on. Declaring HEAD on each route would put it in the OpenAPI schema
as a second operation; instead, a HEAD request runs as the GET it mirrors and its body is
dropped: same status, same headers (ETag, Content-Length), every route included (pages, API,
docs, static files) and any added later. The metrics still count it as HEAD.

An OPTIONS request that is not a CORS preflight (those are answered by the CORS middleware,
outside this one, as configured) gets a 204 with `Allow`: the methods of the routes on that
path, HEAD with GET, and OPTIONS. A path no route has goes on to the router (a 404).
"""

import re
from collections.abc import Sequence
from functools import cache

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# How methods are listed in `Allow`.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What a mounted app (static files, pictures) answers.
MOUNT_METHODS = frozenset({"GET", "HEAD"})


@cache
def path_regex(path: str) -> re.Pattern[str]:
    return compile_path(path)[0]


def answers(context: RouteContext, path: str) -> bool:
    route_path = context.path or ""
    if isinstance(context.original_route, Mount):
        return path == route_path or path.startswith(route_path.rstrip("/") + "/")
    return path_regex(route_path).match(path) is not None


def allowed_methods(
    routes: Sequence[BaseRoute], path: str
) -> tuple[list[str], RouteContext | None]:
    """The methods some route answers on `path`, in METHOD_ORDER (empty: none), and the first
    of those routes. (Included routers stay a tree: FastAPI's `iter_route_contexts` walks it.)"""
    methods: set[str] = set()
    first = None
    for context in iter_route_contexts(routes):
        if not answers(context, path):
            continue
        first = first or context
        mount = isinstance(context.original_route, Mount)
        methods |= MOUNT_METHODS if mount else (context.methods or set())
    if first is None:
        return [], None
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    order = sorted(methods, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99)
    return order, first


def route_path(scope: Scope) -> str:
    """The path the router matches: without the `root_path` the app is mounted under."""
    path: str = scope["path"]
    return path.removeprefix(scope.get("root_path", ""))


class HeadAndOptionsMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed, route = allowed_methods(scope["app"].routes, route_path(scope))
            if route is None:
                await self.app(scope, receive, send)
                return
            scope["route"] = route  # for the metrics, as the router would
            headers = [(b"allow", ", ".join(allowed).encode())]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})

        # A copy: the server reads the method from its own scope while the response goes out
        # (uvicorn sends no body for HEAD, and logs it). What the router records in the copy
        # (the route, for the metrics) is copied back.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            scope.update({key: value for key, value in as_get.items() if key != "method"})
