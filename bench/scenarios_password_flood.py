"""A flood of password changes by one account, next to everyone else's reads and writes
(`--only pwchanges`).

An unrelated read (a post by id) and an unrelated write (a new post), each on 8 connections,
alone and while 40 more connections send `PATCH /api/users/me/password` without pause, all
with one account's token and a wrong current password (a full argon2 verify each; the token
stays valid). Targets: the read and the write during the flood at least half their rate
alone.
"""

from pathlib import Path

from runner import (
    Result,
    Seed,
    Target,
    average,
    in_background,
    remove_new_posts,
    run_wrk,
    wait_for_hash_queue,
)

FLOOD_CONNECTIONS = 40
SCENARIOS = {
    "item_c8": "GET /api/posts/{id}, 8 connections (before and after the flood, averaged)",
    "item_c8_pwchanges": "the same, while 40 connections flood password changes",
    "create_c8": "POST /api/posts, 8 connections (before and after the flood, averaged)",
    "create_c8_pwchanges": "the same, while 40 connections flood password changes",
}
TARGETS = [
    Target("item_c8_pwchanges / item_c8", "item_c8_pwchanges", "item_c8", 0.5),
    Target("create_c8_pwchanges / create_c8", "create_c8_pwchanges", "create_c8", 0.5),
]


def bench_password_flood(
    base: str, args, state: Seed, scripts: dict[str, Path], dsn: str
) -> dict[str, Result]:
    # An unrelated read and an unrelated write, alone and during a flood of password
    # changes by one account: slow hashes must not hold what everyone else needs.
    # Alone before and after the flood, averaged: the ratio does not depend on a drift of
    # the machine's speed during the run.
    secs = args.seconds
    results = {}
    flood = scripts["password_change"]
    for name in ("item", "create"):
        before = run_wrk(base, secs, 8, scripts[name])
        with in_background(base, secs, FLOOD_CONNECTIONS, flood):
            results[f"{name}_c8_pwchanges"] = run_wrk(base, secs, 8, scripts[name])
        wait_for_hash_queue(base, state.users[0])
        after = run_wrk(base, secs, 8, scripts[name])
        results[f"{name}_c8"] = average(before, after)
        remove_new_posts(dsn, state.last_post_id)
    return results
