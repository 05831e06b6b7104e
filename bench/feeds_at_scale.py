"""Feeds and sitemaps at a million posts: how long each answer takes and how large it is.

    TEST_DATABASE_URL=postgresql+psycopg://... uv run python bench/feeds_at_scale.py [posts]

Builds a scratch database next to TEST_DATABASE_URL's (its name plus `_feeds_scale`), with
60,000 users and the posts (default 1,000,000): half of them by 100 prolific users, so the
first numbered sitemap's user aggregate reads over half the table (the worst case of its
design). Then asks the app in process, a few times each, and drops the database.
"""

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
USERS = 60_000
PROLIFIC = 100
ROUNDS = 3
PATHS = [
    "/feed.xml",
    "/tags/tag7/feed.xml",
    "/users/1/feed.xml",
    "/users/59999/feed.xml",
    "/sitemap.xml",
    "/sitemap-1.xml",
    "/sitemap-2.xml",
    "/sitemap-40.xml",
]
logger = logging.getLogger("feeds_at_scale")


def build(admin_dsn: str, dsn: str, name: str, posts: int) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    from database import upgrade_to_head

    upgrade_to_head(os.environ["DATABASE_URL"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO users (username, username_skeleton, email, password_hash)
               SELECT 'user' || g, 'user' || g, 'user' || g || '@example.com', 'x'
               FROM generate_series(1, %s) g""",
            (USERS,),
        )
        conn.execute(
            """INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,
                                  tags, user_id, date_posted, first_published_at, updated_at,
                                  published)
               SELECT 'Post ' || g, 'Some *words*.', '<p>Some <em>words</em>.</p>',
                      'Some words.', 1, ARRAY['tag' || (g %% 50)],
                      CASE WHEN g %% 2 = 0 THEN 1 + g %% %s ELSE 1 + g %% %s END,
                      now() - g * interval '1 second', now() - g * interval '1 second',
                      now() - g * interval '1 second', g %% 10 <> 5
               FROM generate_series(1, %s) g""",
            (PROLIFIC, USERS, posts),
        )
        conn.execute("VACUUM ANALYZE")


async def measure() -> None:
    import resource

    from httpx import ASGITransport, AsyncClient

    from main import app

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as client:
        for path in PATHS:
            times = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                response = await client.get(path)
                times.append(time.perf_counter() - start)
            logger.info(
                "%-22s %d  best %7.1f ms  worst %7.1f ms  %9d bytes",
                path,
                response.status_code,
                1000 * min(times),
                1000 * max(times),
                len(response.content),
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logger.info("peak resident memory of the process: %.0f MB", peak)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    posts = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    suite = make_url(os.environ["TEST_DATABASE_URL"])
    url = suite.set(database=f"{suite.database}_feeds_scale")
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = suite.set(drivername="postgresql").render_as_string(hide_password=False)
    os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-for-measuring-only-0123456789abcdef")
    os.environ["METRICS_ENABLED"] = "false"
    sys.path.insert(0, str(ROOT))
    start = time.perf_counter()
    build(admin, plain, str(url.database), posts)
    logger.info("built %d posts in %.0f s", posts, time.perf_counter() - start)
    try:
        asyncio.run(measure())
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
