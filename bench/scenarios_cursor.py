"""Cursor pages at depth: each list's first page against a page far down it by `cursor`
(`--only cursor`).

All posts 50,000 down (at most half the posts), a user's posts and a tag's posts half-way
down, in alternate runs. Targets: each deep cursor page at least 80 % of its list's first
page (the cost of a cursor page does not grow with depth). With `--only cursor`, `run.py`
also prints the plans of a page's ids by OFFSET and after a cursor
(`explain_offset_and_cursor`).
"""

import sys

import psycopg
from runner import N_TAGS, PROJECT_DIR, Result, Seed, Target, average, run_wrk

CURSOR_DEPTH = 50_000
# The `depth`th post of a list (published, newest first), and a page's ids as the app picks
# them: after an offset, or after a cursor's post.
NTH_POST = """SELECT date_posted, id FROM posts WHERE published{where}
ORDER BY date_posted DESC, id DESC OFFSET %(before)s LIMIT 1"""
PAGE_BY_OFFSET = """SELECT id FROM posts WHERE published
ORDER BY date_posted DESC, id DESC OFFSET %(depth)s LIMIT 11"""
PAGE_AFTER_CURSOR = """SELECT id FROM posts
WHERE published AND (date_posted, id) < (%(date)s, %(id)s)
ORDER BY date_posted DESC, id DESC LIMIT 11"""
SCENARIOS = {
    "cursor_first": "GET /api/posts?limit=10, the first page (3 runs, alternate with the next)",
    "cursor_deep": "GET /api/posts?cursor=<after 50,000 posts>&limit=10",
    "cursor_user_first": "GET /api/users/{id}/posts?limit=10, a user of 20",
    "cursor_user_deep": "the same, cursor=<half the user's posts down>",
    "cursor_tag_first": "GET /api/posts?tag=tag3&limit=10, a tag on a tenth of the posts",
    "cursor_tag_deep": "the same, cursor=<half the tag's posts down>",
}
TARGETS = [
    Target("cursor_deep / cursor_first", "cursor_deep", "cursor_first", 0.8),
    Target("cursor_user_deep / cursor_user_first", "cursor_user_deep", "cursor_user_first", 0.8),
    Target("cursor_tag_deep / cursor_tag_first", "cursor_tag_deep", "cursor_tag_first", 0.8),
]


def cursor_at_depth(dsn: str, secret_key: str, depth: int, where: str = "", **params) -> str:
    """The cursor the app gives after the `depth`th post of a list, found with SQL (not by
    walking the pages) and encoded as the app encodes it."""
    sys.path.insert(0, str(PROJECT_DIR))
    from cursors import Position, cursor_key, encode_cursor

    with psycopg.connect(dsn) as conn:
        row = conn.execute(NTH_POST.format(where=where), {**params, "before": depth - 1}).fetchone()
    return encode_cursor(Position(*row), cursor_key(secret_key))


def bench_cursor_pages(base: str, args, state: Seed, dsn: str, secret_key: str) -> dict:
    """Each list's first page and a page far down it by cursor, in alternate runs (the
    machine's drift hits both alike): all posts 50,000 down (three rounds), a user's and a
    tag's posts half-way down (one round each)."""
    user = state.users[0]["id"]
    deep = cursor_at_depth(dsn, secret_key, min(CURSOR_DEPTH, args.posts // 2))
    by_user = cursor_at_depth(
        dsn, secret_key, args.posts // len(state.users) // 2, " AND user_id = %(user)s", user=user
    )
    by_tag = cursor_at_depth(dsn, secret_key, args.posts // N_TAGS // 2, " AND tags @> '{tag3}'")
    lists = {  # name: (first page, deep page, rounds)
        "cursor": (f"{base}/api/posts?limit=10", f"&cursor={deep}", 3),
        "cursor_user": (f"{base}/api/users/{user}/posts?limit=10", f"&cursor={by_user}", 1),
        "cursor_tag": (f"{base}/api/posts?tag=tag3&limit=10", f"&cursor={by_tag}", 1),
    }
    results = {}
    for name, (first, cursor, rounds) in lists.items():
        run_wrk(first + cursor, 1, args.connections)  # warm up the cursor statement too
        runs: dict[str, list[Result]] = {"first": [], "deep": []}
        for _ in range(rounds):
            runs["first"].append(run_wrk(first, args.seconds, args.connections))
            runs["deep"].append(run_wrk(first + cursor, args.seconds, args.connections))
        results |= {f"{name}_{page}": average(*done) for page, done in runs.items()}
    return results


def explain_offset_and_cursor(dsn: str, depth: int) -> str:
    """EXPLAIN ANALYZE of a page's ids `depth` posts down: by OFFSET, then after a cursor."""
    with psycopg.connect(dsn) as conn:
        nth = conn.execute(NTH_POST.format(where=""), {"before": depth - 1}).fetchone()
        plans = []
        for query, params in (
            (PAGE_BY_OFFSET, {"depth": depth}),
            (PAGE_AFTER_CURSOR, {"date": nth[0], "id": nth[1]}),
        ):
            plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}", params).fetchall()
            literal = psycopg.ClientCursor(conn).mogrify(query, params)
            plans.append(f"{literal}\n" + "\n".join(row[0] for row in plan))
    return "\n\n".join(plans)
