"""Fill the database with a small blog to look at: `uv run python populate_db.py`.

Three authors, posts spread over the last six weeks in Markdown (headings, a table, code,
quotes, lists), tags, comments and one draft. Uses the app's own settings, models and
password hashing, so it works on the embedded database (no DATABASE_URL) as well as on a
configured one. Running it twice adds nothing.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

import models
from auth import hash_password
from database import EMBEDDED, SessionLocal, engine, upgrade_to_head

logger = logging.getLogger("populate_db")

DEMO_PASSWORD = "demo-password"
USERS = [
    ("ada", "ada@example.com"),
    ("grace", "grace@example.com"),
    ("linus", "linus@example.com"),
]

MARKDOWN_TOUR = """This blog's posts are **Markdown**: *emphasis*, `code`, ~~mistakes~~ and
[links](https://commonmark.org/help/).

## A table

| feature | where |
|---|---|
| tags | under each post, and `/tags/{name}` |
| search | the box in the header |
| feeds | `/feed.xml`, per author and per tag |

## Some code

```python
async def read_me(user: CurrentUser) -> models.User:
    \"\"\"The logged-in user, with email.\"\"\"
    return user
```

> Raw HTML such as <b>this</b> is shown as text, never run.
"""

# (days ago, author index, title, Markdown, tags, published)
POSTS = [
    (41, 0, "Hello, blog", "The first post of this blog. Posts are listed newest first, "
     "ten to a page.", ["meta"], True),
    (34, 1, "A tour of Markdown", MARKDOWN_TOUR, ["markdown", "meta"], True),
    (27, 2, "Async all the way", "The database, the picture storage and password hashing "
     "never block the event loop:\n\n- SQLAlchemy 2 on psycopg 3\n- boto3 in a worker thread\n"
     "- argon2 in a pool of its own", ["python", "async"], True),
    (20, 0, "Pictures", "Upload a profile picture on the account page: it becomes a 300x300 "
     "JPEG, cut to a centred square.", ["howto"], True),
    (13, 1, "Forgot your password?", "Ask for a reset link on the login page. Without SMTP "
     "configured, the link is written to the log.", ["howto", "security"], True),
    (6, 2, "Searching the blog", "The search box finds words in titles, tags and text, "
     "*most relevant first*, and marks them in the results.", ["python", "search"], True),
    (1, 0, "Notes for next week", "A draft: only its author sees it, on the account page.",
     ["meta"], False),
]  # fmt: skip
COMMENTS = [  # (post index, author index, hours after the post, text)
    (0, 1, 3, "Welcome! Looking forward to reading more."),
    (0, 2, 20, "Nice and clean. Is there a feed?"),
    (1, 0, 5, "The table renders nicely."),
    (2, 0, 2, "Which argon2 parameters do you use?"),
    (2, 2, 9, "pwdlib's recommended ones; cheap ones in the tests only."),
    (5, 1, 1, "Found my old post in a second."),
]


async def populate() -> None:
    if EMBEDDED:
        await asyncio.to_thread(upgrade_to_head)
    async with SessionLocal() as db:
        if await db.scalar(select(func.count()).select_from(models.User)):
            logger.info("The database already has users; nothing added.")
            return
        password_hash = await hash_password(DEMO_PASSWORD, account=None)
        users = [models.User(username=u, email=e, password_hash=password_hash) for u, e in USERS]
        db.add_all(users)
        now = datetime.now(UTC)
        posts = []
        for days_ago, author, title, content, tags, published in POSTS:
            written = now - timedelta(days=days_ago, hours=days_ago % 5)
            post = models.Post(
                title=title,
                content=content,
                tags=tags,
                published=published,
                author=users[author],
                date_posted=written,
                first_published_at=written if published else None,
                updated_at=written,
            )
            posts.append(post)
        db.add_all(posts)
        for index, author, hours, text in COMMENTS:
            written = posts[index].date_posted + timedelta(hours=hours)
            db.add(
                models.Comment(
                    post=posts[index], author=users[author], content=text, date_posted=written
                )
            )
        await db.commit()
    await engine.dispose()
    logger.info(
        "Added %d users (%s; password %r), %d posts (one a draft) and %d comments.",
        len(USERS),
        ", ".join(email for _, email in USERS),
        DEMO_PASSWORD,
        len(POSTS),
        len(COMMENTS),
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the migrations' own chatter
    asyncio.run(populate())
