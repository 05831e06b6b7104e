"""Deep pages next to everything else: a read and a write while 40 clients hammer the deepest
page (`--only deep`).

The table is topped up to 20,000 posts (removed afterwards), so the deepest and largest page
`skip` allows (`skip=10000&limit=100`) is full and its total is past the exact count. An
unrelated read (a post by id) and an unrelated write (a new post) on 8 connections, alone and
while 40 more connections ask for that page. Targets: the read and the write during the deep
pages at least half their rate alone: the deep pages may slow them down, not take the server
from them.
"""

import threading
import time
from pathlib import Path

import psycopg
from runner import Result, Seed, Target, insert_posts, remove_new_posts, run_wrk

DEEPEST_PAGE = "/api/posts?skip=10000&limit=100"  # the deepest and largest page skip allows
DEEP_PAGE_CONNECTIONS = 40
DEEP_PAGE_POSTS = 20_000  # so that page is full, and its total is past the exact count

SCENARIOS = {
    "item_alone": "GET /api/posts/{id}, 8 connections (deep-page load: alone)",
    "item_during_deep": "the same, while 40 more ask for the deepest page",
    "create_alone": "POST /api/posts, 8 connections (deep-page load: alone)",
    "create_during_deep": "the same, while 40 more ask for the deepest page",
    "deepest_page": "GET /api/posts?skip=10000&limit=100, the 40 connections above",
}
TARGETS = [
    Target("item_during_deep / item_alone", "item_during_deep", "item_alone", 0.5),
    Target("create_during_deep / create_alone", "create_during_deep", "create_alone", 0.5),
]


def add_posts_up_to(dsn: str, state: Seed, count: int) -> None:
    """More posts, as the seed writes them, until the table holds `count` (removed afterwards)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
        insert_posts(conn, [u["id"] for u in state.users], have + 1, count)
        conn.execute("VACUUM ANALYZE posts")


def bench_deep_page_load(base: str, args, state: Seed, scripts: dict[str, Path], dsn: str) -> dict:
    """An unrelated read and an unrelated write, alone and while 40 clients hammer the deepest
    page: the deep pages may slow them down, not take the server from them."""
    secs = args.seconds
    add_posts_up_to(dsn, state, DEEP_PAGE_POSTS)
    results = {
        "item_alone": run_wrk(base, secs, 8, scripts["item"]),
        "create_alone": run_wrk(base, secs, 8, scripts["create"]),
    }
    deep: dict[str, Result] = {}
    hammer = threading.Thread(
        target=lambda: deep.update(
            deepest_page=run_wrk(f"{base}{DEEPEST_PAGE}", 2 * secs + 3, DEEP_PAGE_CONNECTIONS)
        )
    )
    hammer.start()
    try:
        time.sleep(1)  # the deep pages are under way before the measurements start
        results["item_during_deep"] = run_wrk(base, secs, 8, scripts["item"])
        results["create_during_deep"] = run_wrk(base, secs, 8, scripts["create"])
    finally:
        hammer.join()
    remove_new_posts(dsn, state.last_post_id)
    return results | deep
