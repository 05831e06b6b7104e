"""The interactive docs: Swagger UI at /docs, ReDoc at /redoc, with nothing from another origin.

FastAPI's own docs pages load their bundles from a CDN and start Swagger UI with an inline
script. Here the bundles (Swagger UI and ReDoc's standalone build) come from the
`fastapi-offline` package, served at /docs/assets; the pages are templates whose start-up code
lives in `static/js/`, so each page runs under a policy with no inline script. ReDoc alone needs
inline styles (it injects them) and a worker from a blob (its search index).
"""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

ASSETS_URL = "/docs/assets"
# `base-uri` and `form-action` have no fallback to `default-src`: without them, markup slipped
# into a page could re-point its relative URLs (a <base>) or send a form to another origin.
# Neither page needs a <base>, and Swagger UI's requests (the login form's too) are fetches.
COMMON_POLICY = (
    "default-src 'self'; script-src 'self'; {style}; img-src 'self' data:; font-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'{extra}"
)
SWAGGER_UI_POLICY = COMMON_POLICY.format(style="style-src 'self'", extra="")
REDOC_POLICY = COMMON_POLICY.format(
    style="style-src 'self' 'unsafe-inline'", extra="; worker-src blob:"
)

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates" / "docs")
# The package's files, read in place: swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js.
assets = StaticFiles(packages=[("fastapi_offline", "static")])


def docs_page(request: Request, template: str, policy: str) -> HTMLResponse:
    app = request.app
    context = {"title": app.title, "openapi_url": app.openapi_url, "assets": ASSETS_URL}
    response = templates.TemplateResponse(request, template, context)
    # The security headers middleware adds its default policy only where none is set.
    response.headers["Content-Security-Policy"] = policy
    return response


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    return docs_page(request, "swagger_ui.html", SWAGGER_UI_POLICY)


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    return docs_page(request, "redoc.html", REDOC_POLICY)
