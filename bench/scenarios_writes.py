"""Writes: posts created with a bearer token, and the first page while posts are written
(`--only create`).

Each commit changes what the list counts, so the first page is measured while two more
connections keep writing. The new posts are deleted afterwards, so every later scenario sees
the seeded table.
"""

from pathlib import Path

from runner import Result, Seed, in_background, remove_new_posts, run_wrk

SCENARIOS = {
    "create": "POST /api/posts with a bearer token",
    "list_during_writes": "first page, while 2 more connections write posts (each commit makes"
    " every worker count the list again)",
}


def bench_writes(
    base: str, args, state: Seed, scripts: dict[str, Path], dsn: str
) -> dict[str, Result]:
    secs, conns = args.seconds, args.connections
    first_page = f"{base}/api/posts?limit=10"
    results = {"create": run_wrk(base, secs, conns, scripts["create"])}
    with in_background(base, secs, 2, scripts["create"]):
        results["list_during_writes"] = run_wrk(first_page, secs, conns)
    remove_new_posts(dsn, state.last_post_id)
    return results
