"""HTML pages. They render on the server and call the JSON API from the browser."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")


def render_error_page(
    request: Request, status_code: int, detail: object, headers: dict | None = None
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status_code": status_code, "detail": detail if isinstance(detail, str) else "Error"},
        status_code=status_code,
        headers=headers,
    )
