"""A reader logged in by cookie: the first page and `GET /api/users/me` by the pages' session
cookie, against an anonymous reader and a bearer token (`--only cookie`).

Three alternating rounds, averaged. The list does not look at who reads it, so a cookie
should cost it nothing; on a route that authenticates, the cookie's lookup stands against the
token's check.
"""

import httpx
from runner import PASSWORD, Result, Seed, average, run_wrk

SCENARIOS = {
    "list_anonymous": "first page, no credentials (3 rounds, alternate with the next)",
    "list_cookie": "first page with the pages' session cookie",
    "me_bearer": "GET /api/users/me with a bearer token (3 rounds, alternate with the next)",
    "me_cookie": "GET /api/users/me with the session cookie",
}


def bench_cookie(base: str, args, state: Seed) -> dict[str, Result]:
    """A reader logged in by the pages' cookie against an anonymous one (the first page), and
    the cookie's own cost on a route that authenticates (against a bearer token); rounds
    alternate, so a drift of the machine's speed falls on both alike."""
    user = state.users[0]
    form = {"username": user["email"], "password": PASSWORD}
    login = httpx.post(f"{base}/api/users/session", data=form, timeout=60)
    login.raise_for_status()
    cookie = f"Cookie: session={login.cookies['session']}; csrf_token={login.cookies['csrf_token']}"
    bearer = f"Authorization: Bearer {user['token']}"
    first_page, me = f"{base}/api/posts?limit=10", f"{base}/api/users/me"
    rounds: dict[str, list[Result]] = {name: [] for name in SCENARIOS}
    for _ in range(3):
        rounds["list_anonymous"].append(run_wrk(first_page, args.seconds, args.connections))
        rounds["list_cookie"].append(
            run_wrk(first_page, args.seconds, args.connections, header=cookie)
        )
        rounds["me_bearer"].append(run_wrk(me, args.seconds, args.connections, header=bearer))
        rounds["me_cookie"].append(run_wrk(me, args.seconds, args.connections, header=cookie))
    return {name: average(*results) for name, results in rounds.items()}
