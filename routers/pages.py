"""HTML pages. They render on the server and call the JSON API from the browser.

Posts are rendered here, so every page shows its content without JavaScript; the scripts in
`static/js/` add what needs the token (kept in the browser's storage): the navigation state,
writing, editing and the account page.
"""

import html
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError

from auth import ViewerId
from authors import fetch_authors_page
from comment_queries import fetch_comments_page
from config import settings, site_url
from content import highlighted
from database import ReadDep
from paging import PageStart, page_offset, start_at
from queries import fetch_posts_page, is_public
from routers.posts import PostReadDep
from routers.tags import TagName, fetch_tag_counts
from routers.users import UserReadDep
from schemas import (
    COMMENTS_PER_PAGE,
    MAX_SKIP,
    CursorParam,
    Detail,
    PostResponse,
    ResourceId,
    SearchWords,
    Skip,
)
from search import fetch_headlines, fetch_search_page

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")


def site_identity(request: Request) -> dict[str, str]:
    """SITE_NAME and SITE_DESCRIPTION, for every page's title and header (read at each render)."""
    return {"site_name": settings.site_name, "site_description": settings.site_description}


templates.context_processors.append(site_identity)

# Short messages a page shows after a redirect (`?notice=...`): a fixed set, never echoed text.
NOTICES = {
    "registered": "Your account is ready. Log in to start writing.",
    "password-changed": "Your password has changed. Log in again with the new one.",
    "password-reset": "Your password has been reset. Log in with the new one.",
    "logged-out": "You are logged out.",
    "post-deleted": "The post has been deleted.",
    "account-deleted": "Your account has been deleted.",
    "draft-saved": "Your draft is saved. Only you can see it, here on your account page.",
    "post-scheduled": "Your post is scheduled: it goes out by itself at its time.",
}


def format_date(value: datetime) -> str:
    return f"{value:%B} {value.day}, {value.year}"


# A post card on a list page shows this many characters of the post at most; the post's own
# page shows all of it. (A page of whole posts could weigh megabytes.)
EXCERPT_CHARS = 200
WORD = re.compile(r"\S+")


def excerpt(text: str, length: int = EXCERPT_CHARS) -> str:
    """The text on one line, cut at a word with "…" when longer than `length` characters.

    Reads the words it keeps and no further: a post may be 100,000 characters long.
    """
    kept: list[str] = []
    size = 0  # len(" ".join(kept))
    for match in WORD.finditer(text):
        word = match.group()
        if size + bool(kept) + len(word) > length:
            break
        size += bool(kept) + len(word)
        kept.append(word)
    else:
        return " ".join(kept)
    while kept and size > length - 1:  # room for the "…"
        size -= len(kept.pop()) + bool(kept)
    if not kept:  # a first word longer than the excerpt: cut inside it
        return text.split(None, 1)[0][: length - 1] + "…"
    return " ".join(kept) + "…"


def machine_time(moment: datetime) -> str:
    """A `<time datetime>` value: HTML allows at most three digits of a second's fraction."""
    return moment.isoformat(timespec="milliseconds")


templates.env.globals["notices"] = NOTICES
templates.env.globals["site_url"] = site_url
templates.env.filters["date"] = format_date
templates.env.filters["excerpt"] = excerpt
templates.env.filters["machine_time"] = machine_time


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, **kwargs: Any
) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context or {}, **kwargs)


# A draft is a 404 to the server, which renders pages without the token: its author, logged
# in, is offered the editor, whose script asks the API for the post with the token.
POST_PAGE = re.compile(r"/posts/(\d+)(?:/[^/]*)?")


def draft_editor_url(path: str) -> str | None:
    """The draft editor of the post a 404 page was asked for, if it was a post's page."""
    match = POST_PAGE.fullmatch(path)
    return f"/account/drafts/{match[1]}" if match else None


def render_error_page(
    request: Request, status_code: int, detail: object, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    context = {
        "status_code": status_code,
        "detail": detail if isinstance(detail, str) else "Error",
        "draft_editor": draft_editor_url(request.url.path) if status_code == 404 else None,
    }
    return render(request, "error.html", context, status_code=status_code, headers=headers)


async def page_skip(request: Request, skip: Annotated[int, Query(ge=0)] = 0) -> int:
    """`skip` of a list page, marked when deep (as the API's `page_offset`); deeper than the
    API allows, an error page pointing to cursors."""
    if skip > MAX_SKIP:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=Detail.SKIP_TOO_DEEP)
    return await page_offset(request, skip)


PageSkip = Annotated[int, Depends(page_skip)]


async def list_page_start(skip: PageSkip, cursor: CursorParam = None) -> PageStart:
    """Where a list page starts, as in the API: after `skip` posts, or after a cursor's post
    (where "Load more" links to, without JavaScript)."""
    return start_at(skip, cursor)


ListStart = Annotated[PageStart, Depends(list_page_start)]


@router.get("/", response_class=HTMLResponse)
@router.get("/posts", response_class=HTMLResponse)
async def home_page(request: Request, start: ListStart, db: ReadDep) -> HTMLResponse:
    """The newest posts; "Load more" fetches the next pages from the API."""
    page = await fetch_posts_page(db, skip=start.skip, after=start.after, limit=None)
    return render(
        request, "home.html", {"page": page, "posts_api": "/api/posts", "list_url": "/posts"}
    )


@router.get("/posts/{post_id}", response_class=HTMLResponse)
async def post_page(
    request: Request, post: PostReadDep, db: ReadDep, comments_skip: Skip = 0
) -> HTMLResponse:
    """One post with a page of its comments, as at its readable address (its canonical link)."""
    return await render_post_page(request, post, db, comments_skip)


@router.get("/posts/{post_id}/{slug}", response_class=HTMLResponse)
async def post_page_by_slug(
    request: Request, slug: str, post: PostReadDep, db: ReadDep, comments_skip: Skip = 0
) -> Response:
    """One post at its readable address; any other slug (an old title's) redirects there."""
    if slug != post.slug:
        query = f"?{request.url.query}" if request.url.query else ""
        # A relative Location: never the Host header's host. A redirect is revalidated, not
        # kept: a title changed back would otherwise loop through the browser's cache.
        cache = "no-cache" if is_public(post) else "private, no-store"
        return RedirectResponse(
            post.url + query, status.HTTP_301_MOVED_PERMANENTLY, {"Cache-Control": cache}
        )
    return await render_post_page(request, post, db, comments_skip)


async def render_post_page(
    request: Request, post: PostResponse, db: ReadDep, comments_skip: int
) -> HTMLResponse:
    """The post, a page of its comments; its author also gets edit and delete."""
    comments = await fetch_comments_page(db, post.id, skip=comments_skip, limit=COMMENTS_PER_PAGE)
    # A page only its author (a draft) or an editor may see is kept out of every cache.
    headers = None if is_public(post) else {"Cache-Control": "private, no-store"}
    context = {"post": post, "comments": comments, "og_image": first_image(post.content_html)}
    return render(request, "post.html", context, headers=headers)


# The sanitiser writes every attribute quoted with `"` (content.py): the first image's source.
IMAGE_SOURCE = re.compile(r'<img\s[^>]*?\bsrc="([^"]*)"')


def first_image(content_html: str) -> str | None:
    """The absolute URL of a post's first picture (its `og:image`), if it has one."""
    match = IMAGE_SOURCE.search(content_html)
    if match is None:
        return None
    source = html.unescape(match[1])
    return site_url(source) if source.startswith("/") else source


@router.get("/authors", response_class=HTMLResponse)
async def authors_page(request: Request, start: ListStart, db: ReadDep) -> HTMLResponse:
    """The authors with a published post, whoever published last first."""
    page = await fetch_authors_page(db, skip=start.skip, after=start.after)
    first = start == PageStart()
    return render(request, "authors.html", {"page": page, "first": first})


@router.get("/tags", response_class=HTMLResponse)
async def tags_page(request: Request, db: ReadDep) -> HTMLResponse:
    """Every tag of the published posts with how many use it, most used first."""
    return render(request, "tags.html", {"tags": await fetch_tag_counts(db, limit=None)})


@router.get("/tags/{name}", response_class=HTMLResponse)
async def tag_page(request: Request, tag: TagName, start: ListStart, db: ReadDep) -> HTMLResponse:
    """The published posts with a tag, newest first."""
    page = await fetch_posts_page(db, skip=start.skip, after=start.after, limit=None, tag=tag)
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


SEARCH_WORDS: TypeAdapter[str] = TypeAdapter(SearchWords)


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, skip: PageSkip, db: ReadDep, q: str = "") -> HTMLResponse:
    """Published posts that match `q`, most relevant first, the matching words marked; no
    `q`: the search box alone."""
    context: dict[str, Any] = {"q": q}
    if not q.strip():  # the header's box sent empty, or spaces: nothing asked yet
        return render(request, "search.html", context)
    try:
        words = SEARCH_WORDS.validate_python(q)
    except ValidationError as error:
        problem = error.errors()[0]["msg"].removeprefix("Value error, ")
        context["problem"] = f"This search cannot be run: {problem}."
        return render(request, "search.html", context, status_code=422)
    page = await fetch_search_page(db, q=words, skip=skip, limit=None)
    headlines = await fetch_headlines(db, words, [post.id for post in page.posts])
    context["page"] = page
    context["highlights"] = {
        post_id: (highlighted(title), highlighted(excerpt))
        for post_id, (title, excerpt) in headlines.items()
    }
    return render(request, "search.html", context)


@router.get("/users/{user_id}/posts", response_class=HTMLResponse)
async def user_posts_page(
    request: Request,
    start: ListStart,
    user: UserReadDep,
    viewer_id: ViewerId,
    db: ReadDep,
) -> HTMLResponse:
    """A user's posts, newest first; a suspended user's, for editors and admins only."""
    # An editor looking at a suspended user sees the posts the public does not: kept private.
    seen_as = viewer_id if user.suspended else None
    page = await fetch_posts_page(
        db, skip=start.skip, after=start.after, limit=None, user_id=user.id, viewer_id=seen_as
    )
    return render(
        request,
        "user_posts.html",
        {
            "author": user,
            "page": page,
            "posts_api": f"/api/users/{user.id}/posts",
            "list_url": f"/users/{user.id}/posts",
        },
        # Returned as is, this response does not get the headers the dependency set.
        headers={"Cache-Control": "private, no-store"} if user.suspended else None,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    """Log in with email and password."""
    return render(request, "login.html")


@router.get("/register", response_class=HTMLResponse)
async def register_page(request: Request) -> HTMLResponse:
    """Create an account."""
    return render(request, "register.html")


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request) -> HTMLResponse:
    """Profile, picture, password, log out and account deletion (filled in by the browser)."""
    return render(request, "account.html")


@router.get("/account/drafts/{post_id}", response_class=HTMLResponse)
async def draft_page(request: Request, post_id: ResourceId) -> HTMLResponse:
    """Edit, preview and publish a draft; the browser loads it with the token."""
    return render(request, "draft.html", {"post_id": post_id})


@router.get("/moderation", response_class=HTMLResponse)
async def moderation_page(request: Request) -> HTMLResponse:
    """The comments waiting for your decision, with approve and hide (filled in by the browser)."""
    return render(request, "moderation.html")


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_password_page(request: Request) -> HTMLResponse:
    """Ask for a password-reset mail."""
    return render(request, "forgot_password.html")


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(request: Request, token: str = "") -> HTMLResponse:
    """Choose a new password with the token from the reset mail."""
    # The token is in the URL: no Referer may carry it to another site, no cache may keep it.
    return render(
        request,
        "reset_password.html",
        {"token": token},
        headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
    )


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(request: Request, token: str = "") -> HTMLResponse:
    """Prove your email address with the token from the verification mail."""
    # The token is in the URL: no Referer may carry it to another site, no cache may keep it.
    return render(
        request,
        "verify_email.html",
        {"token": token},
        headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
    )
