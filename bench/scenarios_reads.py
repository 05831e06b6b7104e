"""Reads: the hot read paths one after another, each alone on the server (`--only reads`).

The first page of the list, a page deep down it by `skip`, a random post by id, a random
user's posts, the HTML page of a tag carried by a tenth of the posts, and the HTML page of a
post with its comments. Targets: the first page and the deep page at least half the floor's
(`floor_app.py`, run by `runner.bench_floor` after the app).
"""

from pathlib import Path

from runner import COMMENTS_PER_POST, Result, Target, run_wrk

SCENARIOS = {
    "list": "GET /api/posts?limit=10, first page",
    "deep_page": "GET /api/posts?skip=<posts-20>&limit=10",
    "item": "GET /api/posts/{id}, random post",
    "user_posts": "GET /api/users/{id}/posts?limit=10, random user",
    "tag_page": "GET /tags/tag3, the HTML page of a tag on a tenth of the posts",
    "discussed": f"GET /posts/{{id}}, the HTML page of a post with {COMMENTS_PER_POST} comments",
}
LIST_VS_FLOOR = Target("list / floor list", "list", "list", 0.5, floor=True)
DEEP_PAGE_VS_FLOOR = Target(
    "deep_page / floor deep_page", "deep_page", "deep_page", 0.5, floor=True
)


def bench_reads(base: str, args, scripts: dict[str, Path]) -> dict[str, Result]:
    secs, conns = args.seconds, args.connections
    first_page = f"{base}/api/posts?limit=10"
    deep_page = f"{base}/api/posts?skip={args.posts - 20}&limit=10"
    return {
        "list": run_wrk(first_page, secs, conns),
        "deep_page": run_wrk(deep_page, secs, conns),
        "item": run_wrk(base, secs, conns, scripts["item"]),
        "user_posts": run_wrk(base, secs, conns, scripts["user_posts"]),
        "tag_page": run_wrk(f"{base}/tags/tag3", secs, conns),
        "discussed": run_wrk(base, secs, conns, scripts["discussed"]),
    }
