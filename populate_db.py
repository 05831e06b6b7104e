"""Fill the database with a few demo users and posts: `uv run python populate_db.py`.

Uses the app's own settings, models and password hashing, so it works on the embedded
database (no DATABASE_URL) as well as on a configured one. Running it twice adds nothing.
"""

import asyncio
import logging

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
POSTS = [
    ("Hello, blog", "The first post of this blog. Posts are listed newest first."),
    ("Async all the way", "Database, storage and password hashing never block the event loop."),
    ("Pictures", "Upload a profile picture on the account page: it becomes a 300x300 JPEG."),
    ("Forgot your password?", "Ask for a reset link: without SMTP it is written to the log."),
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
        for round_ in range(3):
            for i, (title, content) in enumerate(POSTS):
                author = users[(i + round_) % len(users)]
                db.add(models.Post(title=f"{title} ({round_ + 1})", content=content, author=author))
        await db.commit()
    await engine.dispose()
    logger.info(
        "Added %d users (%s; password %r) and %d posts.",
        len(USERS),
        ", ".join(email for _, email in USERS),
        DEMO_PASSWORD,
        3 * len(POSTS),
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(populate())
