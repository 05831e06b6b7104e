"""Logins: argon2 logins, and the first page while logins keep the hashes busy
(`--only logins`).

The first page on 8 connections alone, logins on 4 (argon2 with pwdlib's parameters), then
the first page again while 4 more connections log in without pause. Target: the first page
during logins at least 70 % of the first page alone: slow hashes must not take the server
from the reads.
"""

import time
from pathlib import Path

from runner import Result, Seed, Target, in_background, run_wrk, wait_for_hash_queue

SCENARIOS = {
    "login": "POST /api/users/token (argon2), 4 connections",
    "list_c8": "first page, 8 connections",
    "list_c8_logins": "first page, 8 connections, while 4 more log in",
}
TARGETS = [Target("list_c8_logins / list_c8", "list_c8_logins", "list_c8", 0.7)]


def bench_logins(base: str, args, state: Seed, scripts: dict[str, Path]) -> dict[str, Result]:
    secs = args.seconds
    first_page = f"{base}/api/posts?limit=10"
    results = {"list_c8": run_wrk(first_page, secs, 8)}
    results["login"] = run_wrk(base, secs, 4, scripts["login"])
    time.sleep(2)  # the hashes still queued when wrk stopped
    with in_background(base, secs, 4, scripts["login"]):
        results["list_c8_logins"] = run_wrk(first_page, secs, 8)
    wait_for_hash_queue(base, state.users[0])
    return results
