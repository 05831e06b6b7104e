"""HEAD on every GET route, OPTIONS that lists a path's methods, a 405 for a method the path
lacks (pure ASGI), and the other spelling of a page's path (OtherSpelling).

FastAPI's routes answer only the methods they declare, so HEAD got a 405, which monitors, feed
readers and crawlers trip on. Declaring HEAD on each route would put it in the OpenAPI schema
as a second operation; instead, a HEAD request runs as the GET it mirrors and its body is
dropped: same status, same headers (ETag, Content-Length), every route included (pages, API,
docs, static files) and any added later. The metrics still count it as HEAD.

An OPTIONS request that is not a CORS preflight (those are answered by the CORS middleware,
outside this one, as configured) gets a 204 with `Allow`: the methods of the routes on that
path, HEAD with GET, and OPTIONS. A path no route has goes on to the router (a 404).

The routes on a path are the most specific ones that match it: at the first segment where two
routes' paths differ, a fixed segment beats a parameter, as the router's order already has it
for the methods both declare. `/api/users/forgot-password` is that route's path, not a user id
of `/api/users/{user_id}`: its methods are POST and OPTIONS. The router knows no such rule: for
PATCH it went on to `PATCH /api/users/{user_id}`, which refused "forgot-password" as an id with
a 422. A method that the path's own routes lack is refused here instead, with a 405 and `Allow`.
"""

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# How methods are listed in `Allow`.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What a mounted app (static files, pictures) answers.
MOUNT_METHODS = frozenset({"GET", "HEAD"})
# How specific a mount is: less than any route (a route's segments rank 0 or 1).
MOUNT_RANK = (2,)


@cache
def path_regex(path: str) -> re.Pattern[str]:
    return compile_path(path)[0]


def answers(context: RouteContext, path: str) -> bool:
    route_path = context.path or ""
    if isinstance(context.original_route, Mount):
        return path == route_path or path.startswith(route_path.rstrip("/") + "/")
    return path_regex(route_path).match(path) is not None


def segments(route_path: str) -> list[str]:
    return route_path.strip("/").split("/")


def path_rank(route_path: str) -> tuple[int, ...]:
    """Smaller is more specific: per segment of the path, 0 fixed, 1 with a parameter."""
    return tuple(int("{" in segment) for segment in segments(route_path))


def rank(context: RouteContext) -> tuple[int, ...]:
    if isinstance(context.original_route, Mount):
        return MOUNT_RANK
    return path_rank(context.path or "")


def allowed_methods(
    routes: Sequence[BaseRoute], path: str
) -> tuple[list[str], RouteContext | None]:
    """The methods the path's routes answer, in METHOD_ORDER (empty: no route has the path),
    and the first of those routes. (Included routers stay a tree: FastAPI's
    `iter_route_contexts` walks it.)"""
    matching = [context for context in iter_route_contexts(routes) if answers(context, path)]
    if not matching:
        return [], None
    most_specific = min(map(rank, matching))
    own = [context for context in matching if rank(context) == most_specific]
    methods: set[str] = set()
    for context in own:
        mount = isinstance(context.original_route, Mount)
        methods |= MOUNT_METHODS if mount else (context.methods or set())
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    order = sorted(methods, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99)
    return order, own[0]


@dataclass(frozen=True)
class Overlaps:
    """The paths of routes that are more specific than another route that may match the same
    path: only a request on such a path can reach a route that is not its own."""

    fixed: frozenset[str]  # paths without parameters, looked up as they are
    patterns: tuple[re.Pattern[str], ...]  # the others


def may_overlap(specific: str, general: str) -> bool:
    """Whether `specific` ranks before `general` and some path may match both."""
    a, b = segments(specific), segments(general)
    if len(a) != len(b) or path_rank(specific) >= path_rank(general):
        return False
    return all(map(segments_overlap, a, b))


def segments_overlap(a: str, b: str) -> bool:
    """Whether some text is both segments: the same fixed text, or one that a parameter's
    segment matches. Two parameters count as overlapping, which errs on the safe side: a path
    in `Overlaps` only costs a closer look."""
    if "{" in a and "{" in b:
        return True
    if "{" not in a and "{" not in b:
        return a == b
    fixed, parametrised = (b, a) if "{" in a else (a, b)
    return path_regex(f"/{parametrised}").match(f"/{fixed}") is not None


def overlaps(routes: Sequence[BaseRoute]) -> Overlaps:
    paths = {
        context.path or ""
        for context in iter_route_contexts(routes)
        if not isinstance(context.original_route, Mount)
    }
    specific = {path for path in paths if any(may_overlap(path, other) for other in paths)}
    return Overlaps(
        fixed=frozenset(path for path in specific if "{" not in path),
        patterns=tuple(path_regex(path) for path in sorted(specific) if "{" in path),
    )


def route_path(scope: Scope) -> str:
    """The path the router matches: without the `root_path` the app is mounted under."""
    path: str = scope["path"]
    return path.removeprefix(scope.get("root_path", ""))


class HeadAndOptionsMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app
        # Worked out on the first request, and again if the app's routes change.
        self._overlaps: tuple[int, int, Overlaps] | None = None

    def overlaps_of(self, routes: list[BaseRoute]) -> Overlaps:
        key = (id(routes), len(routes))
        if self._overlaps is None or self._overlaps[:2] != key:
            self._overlaps = (*key, overlaps(routes))
        return self._overlaps[2]

    def lacks(self, scope: Scope, path: str) -> bool:
        """Whether the path's own routes lack the request's method while a less specific route
        may have it. One set lookup for most paths: only those of overlapping routes go on."""
        found = self.overlaps_of(scope["app"].routes)
        if path not in found.fixed and not any(p.match(path) for p in found.patterns):
            return False
        return scope["method"] not in allowed_methods(scope["app"].routes, path)[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            await self.options(scope, receive, send)
            return
        if self.lacks(scope, route_path(scope)):
            await method_not_allowed(scope, receive, send)
            return
        if method == "HEAD":
            await self.head(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def options(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed, route = allowed_methods(scope["app"].routes, route_path(scope))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # for the metrics, as the router would
        headers = [(b"allow", ", ".join(allowed).encode())]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def head(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A copy: the server reads the method from its own scope while the response goes out
        # (uvicorn sends no body for HEAD, and logs it). What the router records in the copy
        # (the route, for the metrics) is copied back.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, without_body(send))
        finally:
            scope.update({key: value for key, value in as_get.items() if key != "method"})


def without_body(send: Send) -> Send:
    async def send_without_body(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
        elif not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b""})

    return send_without_body


async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    """The 405 the router gives, through the app's own handler (JSON under /api, a page
    elsewhere), counted on the path's own route."""
    allowed, route = allowed_methods(scope["app"].routes, route_path(scope))
    scope["route"] = route  # for the metrics, as the router would
    exc = HTTPException(405, headers={"Allow": ", ".join(allowed)})
    handler = scope["app"].exception_handlers[HTTPException]  # FastAPI always sets one
    request = Request(scope, receive)
    if inspect.iscoroutinefunction(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    await response(scope, receive, without_body(send) if scope["method"] == "HEAD" else send)


class OtherSpelling:
    """The router's default, for what no route matched: a page asked for with a trailing slash
    it lacks, or without one it has, is redirected to its own spelling by a relative Location,
    which the Host header (set by the client as it likes) cannot point elsewhere. The API has
    the one spelling per route its schema lists; the other is a 404, in JSON. Anything else
    too: the router's 404. (Starlette's own `redirect_slashes` named the Host's host.)"""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        other = path.rstrip("/") if path.endswith("/") else f"{path}/"
        if (
            scope["type"] == "http"
            and not route_path(scope).startswith("/api/")
            and other.startswith("/")
            and not other.startswith("//")  # a Location of `//host` names another site
            and any(
                route.matches({**scope, "path": other})[0] != Match.NONE
                for route in self.app.routes
            )
        ):
            query = scope["query_string"].decode("latin-1")
            location = quote(other) + (f"?{query}" if query else "")  # `?`, `#` and `\` encoded
            await RedirectResponse(location)(scope, receive, send)
            return
        await self.app.router.not_found(scope, receive, send)
