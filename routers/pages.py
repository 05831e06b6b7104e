"""HTML pages. They render on the server and call the JSON API from the browser.

Posts are rendered here, so every page shows its content without JavaScript; the scripts in
`static/js/` add what needs the token (kept in the browser's storage): the navigation state,
writing, editing and the account page.
"""

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from database import ReadDep
from routers.comments import fetch_comments_page
from routers.posts import PostReadDep, fetch_posts_page
from routers.users import PublicUserDep
from schemas import COMMENTS_PER_PAGE, Skip, normalize_tag

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")

# Short messages a page shows after a redirect (`?notice=...`): a fixed set, never echoed text.
NOTICES = {
    "registered": "Your account is ready. Log in to start writing.",
    "password-changed": "Your password has changed. Log in again with the new one.",
    "password-reset": "Your password has been reset. Log in with the new one.",
    "logged-out": "You are logged out.",
    "post-deleted": "The post has been deleted.",
    "account-deleted": "Your account has been deleted.",
    "draft-saved": "Your draft is saved. Only you can see it, here on your account page.",
}


def format_date(value: datetime) -> str:
    return f"{value:%B} {value.day}, {value.year}"


templates.env.globals["notices"] = NOTICES
templates.env.filters["date"] = format_date


def render(request: Request, name: str, context: dict | None = None, **kwargs) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context or {}, **kwargs)


def render_error_page(
    request: Request, status_code: int, detail: object, headers: dict | None = None
) -> HTMLResponse:
    context = {"status_code": status_code, "detail": detail if isinstance(detail, str) else "Error"}
    return render(request, "error.html", context, status_code=status_code, headers=headers)


@router.get("/", response_class=HTMLResponse)
@router.get("/posts", response_class=HTMLResponse)
async def home_page(request: Request, db: ReadDep, skip: Skip = 0):
    """The newest posts; "Load more" fetches the next pages from the API."""
    page = await fetch_posts_page(db, skip=skip, limit=None)
    return render(
        request, "home.html", {"page": page, "posts_api": "/api/posts", "list_url": "/posts"}
    )


@router.get("/posts/{post_id}", response_class=HTMLResponse)
async def post_page(request: Request, post: PostReadDep, db: ReadDep, comments_skip: Skip = 0):
    """One post with a page of its comments; its author also gets edit and delete."""
    comments = await fetch_comments_page(db, post.id, skip=comments_skip, limit=COMMENTS_PER_PAGE)
    return render(request, "post.html", {"post": post, "comments": comments})


@router.get("/tags/{name}", response_class=HTMLResponse)
async def tag_page(request: Request, name: str, db: ReadDep, skip: Skip = 0):
    """The published posts with a tag, newest first."""
    try:
        tag = normalize_tag(name)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Tag not found") from None
    page = await fetch_posts_page(db, skip=skip, limit=None, tag=tag)
    return render(
        request,
        "tag_posts.html",
        {
            "tag": tag,
            "page": page,
            "posts_api": f"/api/posts?tag={tag}",
            "list_url": f"/tags/{tag}",
        },
    )


@router.get("/users/{user_id}/posts", response_class=HTMLResponse)
async def user_posts_page(
    request: Request,
    user: PublicUserDep,
    db: ReadDep,
    skip: Skip = 0,
):
    """A user's posts, newest first."""
    page = await fetch_posts_page(db, skip=skip, limit=None, user_id=user.id)
    return render(
        request,
        "user_posts.html",
        {
            "author": user,
            "page": page,
            "posts_api": f"/api/users/{user.id}/posts",
            "list_url": f"/users/{user.id}/posts",
        },
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request):
    """Log in with email and password."""
    return render(request, "login.html")


@router.get("/register", response_class=HTMLResponse)
async def register_page(request: Request):
    """Create an account."""
    return render(request, "register.html")


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request):
    """Profile, picture, password, log out and account deletion (filled in by the browser)."""
    return render(request, "account.html")


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_password_page(request: Request):
    """Ask for a password-reset mail."""
    return render(request, "forgot_password.html")


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(request: Request, token: str = ""):
    """Choose a new password with the token from the reset mail."""
    # The token is in the URL: no Referer may carry it to another site, no cache may keep it.
    return render(
        request,
        "reset_password.html",
        {"token": token},
        headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
    )
