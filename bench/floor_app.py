"""The floor: the list query hand-written on the same driver, no ORM, no validation.

It answers `GET /api/posts?skip&limit` with the API's JSON shape, on the same database and
the same server (uvicorn, one worker). Nothing on this stack serves that page much faster, so
app / floor says how close the app is to the limit. Run by `run.py` with `FLOOR_DSN` set.
"""

import os
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

pool = AsyncConnectionPool(os.environ["FLOOR_DSN"], min_size=5, max_size=10, open=False)

PAGE = """
SELECT p.id, p.title, p.content, p.user_id, p.date_posted, u.id, u.username, u.image_file
FROM posts p JOIN users u ON u.id = p.user_id
ORDER BY p.date_posted DESC, p.id DESC LIMIT %s OFFSET %s
"""
COUNT = "SELECT count(*) FROM posts"
DEFAULT_PICTURE = "/static/profile_pics/default.jpg"


async def list_posts(request):
    skip = int(request.query_params.get("skip", 0))
    limit = int(request.query_params.get("limit", 10))
    async with pool.connection() as conn:
        rows = await (await conn.execute(PAGE, (limit, skip))).fetchall()
        total = (await (await conn.execute(COUNT)).fetchone())[0]
    posts = [
        {
            "id": r[0],
            "title": r[1],
            "content": r[2],
            "user_id": r[3],
            "date_posted": r[4],
            "author": {
                "id": r[5],
                "username": r[6],
                "image_file": r[7],
                "image_path": DEFAULT_PICTURE,
            },
        }
        for r in rows
    ]
    body = {
        "posts": posts,
        "total": total,
        "skip": skip,
        "limit": limit,
        "has_more": skip + len(posts) < total,
    }
    return Response(to_json(body), media_type="application/json")


@asynccontextmanager
async def lifespan(app):
    await pool.open()
    async with pool.connection() as conn:  # the index the list query wants, whatever the app made
        await conn.execute(
            "CREATE INDEX IF NOT EXISTS floor_posts_date_id ON posts (date_posted DESC, id DESC)"
        )
    yield
    await pool.close()


app = Starlette(routes=[Route("/api/posts", list_posts)], lifespan=lifespan)
