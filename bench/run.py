"""Benchmark the blog API on this machine: one command, a fresh database, one table.

    uv run python bench/run.py                     # one worker, then the floor
    uv run python bench/run.py --workers 1 2       # the same scenarios on 1 and 2 workers
    uv run python bench/run.py --middleware-cost 5 # the first page with/without metrics and IDs

It creates a database on the PostgreSQL server of `BENCH_PG` (default
postgresql://postgres@127.0.0.1:5432; the role needs CREATEDB), runs the migrations, starts the
app with uvicorn on 127.0.0.1, registers users through the API, inserts the posts with SQL, and
loads each scenario with wrk for a fixed time. The worker's memory (VmRSS, VmHWM) is read from
/proc during the load. Then the floor (`floor_app.py`) serves the list on the same database.
The database is dropped at the end. Needs `wrk` (Debian: `apt-get install wrk`) and Linux.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psycopg

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
PASSWORD = "benchmark password"
POST_CONTENT = "Lorem ipsum dolor sit amet. " * 20
N_TAGS = 10  # every post has the tag "bench" and one of tag0..tag9
N_DISCUSSED_POSTS = 100
COMMENTS_PER_POST = 20
# With --rate-limit-storage: the limits are checked (and their storage used), never met.
RATE_LIMITS = ["LOGIN", "LOGIN_ACCOUNT", "REGISTER", "PASSWORD_RESET", "PASSWORD_RESET_ACCOUNT",
               "PASSWORD_CHANGE", "UPLOAD", "POST", "COMMENT"]  # fmt: skip
UNREACHABLE_RATE = "1000000/minute"


# --- Measurements --------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses plus socket errors


def run_wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, header: str = ""
) -> Result:
    """Load `url` for `seconds` with one wrk thread; requests/s and latency percentiles."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", str(script)]
    if header:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Requests/sec" not in out or "Latency Distribution" not in out:
        sys.exit(f"unexpected wrk output:\n{out}")

    def latency_ms(percent: int) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return Result(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=latency_ms(50),
        p99_ms=latency_ms(99),
        errors=errors,
    )


def average(*results: Result) -> Result:
    """Mean rate and median latency; the worst p99."""
    count = len(results)
    return Result(
        rps=sum(r.rps for r in results) / count,
        p50_ms=sum(r.p50_ms for r in results) / count,
        p99_ms=max(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
    )


class MemorySampler:
    """Samples the resident memory of a process and its children from /proc until stopped."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.peak_kb: dict[int, int] = {}  # pid -> highest VmHWM (or VmRSS) seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for pid in [self.pid, *children(self.pid)]:
                peak = max(read_status_kb(pid, "VmRSS"), read_status_kb(pid, "VmHWM"))
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), peak)

    def worker_peak_mb(self) -> float:
        """The biggest process: the worker itself, or the largest of several workers."""
        return max(self.peak_kb.values(), default=0) / 1024

    def total_peak_mb(self) -> float:
        return sum(self.peak_kb.values()) / 1024


def read_status_kb(pid: int, field: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process is gone
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) if match else 0


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (uvicorn's workers when it runs several)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


# --- Database, servers, seed ---------------------------------------------------------------


@contextmanager
def fresh_database(server: str):
    """A new, empty database on `server`, dropped on the way out."""
    name = f"blog_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn(app: str, cwd: Path, env: dict, workers: int, log: Path):
    """Serve `app` on a free loopback port; yields (base URL, server pid)."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with log.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/posts?limit=1", proc, log, workers)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server died:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                time.sleep(0.5 * (workers > 1))  # let the other workers finish starting
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"the server never answered:\n{log.read_text()[-3000:]}")


@dataclass
class Seed:
    users: list[dict]  # id, email, token
    post_ids: list[int]
    last_post_id: int
    discussed_post_ids: list[int]
    attacker_token: str  # an account of its own, for the password-change flood


def register_and_log_in(client: httpx.Client, name: str) -> dict:
    email = f"{name}@example.com"
    created = client.post(
        "/api/users", json={"username": name, "email": email, "password": PASSWORD}
    )
    created.raise_for_status()
    login = client.post("/api/users/token", data={"username": email, "password": PASSWORD})
    login.raise_for_status()
    return {"id": created.json()["id"], "email": email, "token": login.json()["access_token"]}


def seed(base: str, dsn: str, n_users: int, n_posts: int) -> Seed:
    """Users through the API (real argon2 hashes and tokens), posts straight into the table."""
    with httpx.Client(base_url=base, timeout=60) as client:
        users = [register_and_log_in(client, f"bench{i}") for i in range(n_users)]
        attacker = register_and_log_in(client, "attacker")
    sys.path.insert(0, str(PROJECT_DIR))
    from content import render_post  # every post has the same Markdown: render it once

    rendered = render_post(POST_CONTENT)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,
                                  tags, user_id, date_posted, first_published_at, updated_at)
               SELECT 'Post ' || g, %s, %s, %s, %s,
                      ARRAY['bench', 'tag' || (g %% %s)],
                      (%s::int[])[1 + g %% %s], now() - g * interval '1 minute',
                      now() - g * interval '1 minute', now() - g * interval '1 minute'
               FROM generate_series(1, %s) g""",
            (
                POST_CONTENT,
                rendered["content_html"],
                rendered["excerpt"],
                rendered["reading_time_minutes"],
                N_TAGS,
                [u["id"] for u in users],
                n_users,
                n_posts,
            ),
        )
        # The discussed posts: COMMENTS_PER_POST comments each, from every user in turn.
        discussed = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM posts ORDER BY random() LIMIT %s", (N_DISCUSSED_POSTS,)
            )
        ]
        conn.execute(
            """INSERT INTO comments (post_id, user_id, content, date_posted)
               SELECT p, (%s::int[])[1 + c %% %s], 'A comment worth reading, number ' || c,
                      now() - (%s - c) * interval '1 second'
               FROM unnest(%s::int[]) p, generate_series(1, %s) c""",
            (
                [u["id"] for u in users],
                n_users,
                COMMENTS_PER_POST,
                discussed,
                COMMENTS_PER_POST,
            ),
        )
        conn.execute("VACUUM ANALYZE")  # as autovacuum would soon: statistics, visibility map
        post_ids = [r[0] for r in conn.execute("SELECT id FROM posts ORDER BY random() LIMIT 1000")]
        last_post_id = conn.execute("SELECT max(id) FROM posts").fetchone()[0]
    return Seed(
        users=users,
        post_ids=post_ids,
        last_post_id=last_post_id,
        discussed_post_ids=discussed,
        attacker_token=attacker["token"],
    )


def remove_new_posts(dsn: str, last_post_id: int) -> None:
    """Undo the create scenario, so every list scenario sees the same table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM posts WHERE id > %s", (last_post_id,))
        conn.execute("VACUUM ANALYZE posts")


# --- Scenarios -----------------------------------------------------------------------------


def lua_list(values: list) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def write_scripts(state: Seed, tmp: Path) -> dict[str, Path]:
    """wrk scripts that pick a random post, user, token or account per request."""
    tokens = [u["token"] for u in state.users]
    credentials = [
        f"username={u['email']}&password={PASSWORD.replace(' ', '+')}" for u in state.users
    ]
    scripts = {
        "item": f"""local ids = {lua_list(state.post_ids)}
request = function() return wrk.format("GET", "/api/posts/" .. ids[math.random(#ids)]) end""",
        "discussed": f"""local ids = {lua_list(state.discussed_post_ids)}
request = function() return wrk.format("GET", "/posts/" .. ids[math.random(#ids)]) end""",
        "user_posts": f"""local ids = {lua_list([u["id"] for u in state.users])}
request = function()
  return wrk.format("GET", "/api/users/" .. ids[math.random(#ids)] .. "/posts?limit=10")
end""",
        "create": f"""local tokens = {lua_list(tokens)}
local body = '{{"title": "Benchmark", "content": "A post written by the benchmark."}}'
request = function()
  local headers = {{["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]}}
  return wrk.format("POST", "/api/posts", headers, body)
end""",
        "login": f"""local forms = {lua_list(credentials)}
request = function()
  local headers = {{["Content-Type"] = "application/x-www-form-urlencoded"}}
  return wrk.format("POST", "/api/users/token", headers, forms[math.random(#forms)])
end""",
        # One account guessing its current password: a full argon2 verify per request, and
        # the token stays valid (a wrong guess changes nothing).
        "password_change": f"""local headers = {{["Content-Type"] = "application/json",
                 ["Authorization"] = "Bearer {state.attacker_token}"}}
local body = '{{"current_password": "a wrong guess", "new_password": "another password 1"}}'
request = function() return wrk.format("PATCH", "/api/users/me/password", headers, body) end""",
    }
    paths = {}
    for name, body in scripts.items():
        paths[name] = tmp / f"{name}.lua"
        paths[name].write_text(body + "\n")
    return paths


RARE_WORD = "quetzal"  # in the title of every 25,000th post: 4 at 100,000 posts
COMMON_WORD = "zephyr"  # in the content of every tenth post: 10,000 at 100,000 posts

SCENARIOS = {
    "list": "GET /api/posts?limit=10, first page",
    "deep_page": "GET /api/posts?skip=<posts-20>&limit=10",
    "item": "GET /api/posts/{id}, random post",
    "user_posts": "GET /api/users/{id}/posts?limit=10, random user",
    "tag_page": "GET /tags/tag3, the HTML page of a tag on a tenth of the posts",
    "discussed": f"GET /posts/{{id}}, the HTML page of a post with {COMMENTS_PER_POST} comments",
    "create": "POST /api/posts with a bearer token",
    "list_during_writes": "first page, while 2 more connections write posts (each commit makes"
    " every worker count the list again)",
    "login": "POST /api/users/token (argon2), 4 connections",
    "list_c8": "first page, 8 connections",
    "list_c8_logins": "first page, 8 connections, while 4 more log in",
    "item_c8": "GET /api/posts/{id}, 8 connections (before and after the flood, averaged)",
    "item_c8_pwchanges": "the same, while 40 connections flood password changes",
    "create_c8": "POST /api/posts, 8 connections (before and after the flood, averaged)",
    "create_c8_pwchanges": "the same, while 40 connections flood password changes",
    "item_alone": "GET /api/posts/{id}, 8 connections (deep-page load: alone)",
    "item_during_deep": "the same, while 40 more ask for the deepest page",
    "create_alone": "POST /api/posts, 8 connections (deep-page load: alone)",
    "create_during_deep": "the same, while 40 more ask for the deepest page",
    "deepest_page": "GET /api/posts?skip=10000&limit=100, the 40 connections above",
    "search_rare": f"GET /api/posts?q={RARE_WORD}&limit=10, a word in a few posts' titles",
    "search_common": f"GET /api/posts?q={COMMON_WORD}&limit=10, a word in every tenth post",
    "search_page": f"GET /search?q={COMMON_WORD}, the HTML page, words highlighted",
    "list_200": "first page, in full (its ETag computed)",
    "list_304": "first page with If-None-Match: its ETag (a 304)",
    "cursor_first": "GET /api/posts?limit=10, the first page (3 runs, alternate with the next)",
    "cursor_deep": "GET /api/posts?cursor=<after 50,000 posts>&limit=10",
    "cursor_user_first": "GET /api/users/{id}/posts?limit=10, a user of 20",
    "cursor_user_deep": "the same, cursor=<half the user's posts down>",
    "cursor_tag_first": "GET /api/posts?tag=tag3&limit=10, a tag on a tenth of the posts",
    "cursor_tag_deep": "the same, cursor=<half the tag's posts down>",
    "list_anonymous": "first page, no credentials (3 rounds, alternate with the next)",
    "list_cookie": "first page with the pages' session cookie",
    "me_bearer": "GET /api/users/me with a bearer token (3 rounds, alternate with the next)",
    "me_cookie": "GET /api/users/me with the session cookie",
}
# Scenario groups for --only.
GROUPS = {
    "reads": ["list", "deep_page", "item", "user_posts", "tag_page", "discussed"],
    "create": ["create", "list_during_writes"],
    "logins": ["list_c8", "login", "list_c8_logins"],
    "pwchanges": ["item_c8", "item_c8_pwchanges", "create_c8", "create_c8_pwchanges"],
    "deep": [
        "item_alone",
        "item_during_deep",
        "create_alone",
        "create_during_deep",
        "deepest_page",
    ],
    "search": ["list", "search_rare", "search_common", "search_page"],
    "etag": ["list_200", "list_304"],
    "cookie": ["list_anonymous", "list_cookie", "me_bearer", "me_cookie"],
    "cursor": [
        "cursor_first",
        "cursor_deep",
        "cursor_user_first",
        "cursor_user_deep",
        "cursor_tag_first",
        "cursor_tag_deep",
    ],
}
FLOOD_CONNECTIONS = 40


@contextmanager
def in_background(base: str, seconds: int, connections: int, script: Path):
    """wrk loading `script` for the whole block (it starts a second early and ends after)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds + 2}s", "--timeout", "10s"]
    load = subprocess.Popen([*cmd, "-s", str(script), base], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)  # the load is under way before the measurement starts
        yield
    finally:
        load.wait()


def wait_for_hash_queue(base: str, user: dict) -> None:
    """Return once the hashes queued by a flood are done: a login joins the back of the queue."""
    form = {"username": user["email"], "password": PASSWORD}
    httpx.post(f"{base}/api/users/token", data=form, timeout=120).raise_for_status()


def bench_app(
    base: str, args, state: Seed, scripts: dict[str, Path], dsn: str, secret_key: str, pid: int = 0
) -> dict:
    secs, conns = args.seconds, args.connections
    groups = args.only or list(GROUPS)
    first_page = f"{base}/api/posts?limit=10"
    deep_page = f"{base}/api/posts?skip={args.posts - 20}&limit=10"
    run_wrk(first_page, 1, conns)  # warm up: pool connections, prepared statements
    results = {}
    if "reads" in groups:
        results["list"] = run_wrk(first_page, secs, conns)
        results["deep_page"] = run_wrk(deep_page, secs, conns)
        results["item"] = run_wrk(base, secs, conns, scripts["item"])
        results["user_posts"] = run_wrk(base, secs, conns, scripts["user_posts"])
        results["tag_page"] = run_wrk(f"{base}/tags/tag3", secs, conns)
        results["discussed"] = run_wrk(base, secs, conns, scripts["discussed"])
    if "create" in groups:
        results["create"] = run_wrk(base, secs, conns, scripts["create"])
        with in_background(base, secs, 2, scripts["create"]):
            results["list_during_writes"] = run_wrk(first_page, secs, conns)
        remove_new_posts(dsn, state.last_post_id)
    if "logins" in groups:
        results["list_c8"] = run_wrk(first_page, secs, 8)
        results["login"] = run_wrk(base, secs, 4, scripts["login"])
        time.sleep(2)  # the hashes still queued when wrk stopped
        with in_background(base, secs, 4, scripts["login"]):
            results["list_c8_logins"] = run_wrk(first_page, secs, 8)
        wait_for_hash_queue(base, state.users[0])
    if "pwchanges" in groups:
        # An unrelated read and an unrelated write, alone and during a flood of password
        # changes by one account: slow hashes must not hold what everyone else needs.
        # Alone before and after the flood, averaged: the ratio does not depend on a drift of
        # the machine's speed during the run.
        flood = scripts["password_change"]
        for name in ("item", "create"):
            before = run_wrk(base, secs, 8, scripts[name])
            with in_background(base, secs, FLOOD_CONNECTIONS, flood):
                results[f"{name}_c8_pwchanges"] = run_wrk(base, secs, 8, scripts[name])
            wait_for_hash_queue(base, state.users[0])
            after = run_wrk(base, secs, 8, scripts[name])
            results[f"{name}_c8"] = average(before, after)
            remove_new_posts(dsn, state.last_post_id)
    if "deep" in groups:
        results |= bench_deep_page_load(base, args, state, scripts, dsn)
    if "etag" in groups:
        results |= bench_etag(first_page, secs, conns, pid)
    if "search" in groups:
        results |= bench_search(base, args, dsn, first_page)
    if "cursor" in groups:
        results |= bench_cursor_pages(base, args, state, dsn, secret_key)
    if "cookie" in groups:
        results |= bench_cookie(base, args, state)
    return results


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
    rounds: dict[str, list[Result]] = {name: [] for name in GROUPS["cookie"]}
    for _ in range(3):
        rounds["list_anonymous"].append(run_wrk(first_page, args.seconds, args.connections))
        rounds["list_cookie"].append(
            run_wrk(first_page, args.seconds, args.connections, header=cookie)
        )
        rounds["me_bearer"].append(run_wrk(me, args.seconds, args.connections, header=bearer))
        rounds["me_cookie"].append(run_wrk(me, args.seconds, args.connections, header=cookie))
    return {name: average(*results) for name, results in rounds.items()}


# --- Search ----------------------------------------------------------------------------------


def add_search_words(dsn: str) -> None:
    """Put the searched words into some of the seeded posts (their tsvector follows)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """UPDATE posts SET
                 title = CASE WHEN id %% 25000 = 0 THEN title || ' ' || %s ELSE title END,
                 content = CASE WHEN id %% 10 = 0 THEN content || ' ' || %s ELSE content END
               WHERE id %% 10 = 0""",
            (RARE_WORD, COMMON_WORD),
        )
        # As autovacuum would soon: the GIN index's pending list merged, fresh statistics.
        conn.execute("VACUUM ANALYZE posts")


def bench_search(base: str, args, dsn: str, first_page: str) -> dict:
    """A rare word and a common one against the first page of the list (measured here too
    unless the reads group did it)."""
    add_search_words(dsn)
    secs, conns = args.seconds, args.connections
    results = {}
    if "reads" not in (args.only or list(GROUPS)):
        results["list"] = run_wrk(first_page, secs, conns)
    run_wrk(f"{base}/api/posts?q={COMMON_WORD}&limit=10", 1, conns)  # warm up
    results["search_rare"] = run_wrk(f"{base}/api/posts?q={RARE_WORD}&limit=10", secs, conns)
    results["search_common"] = run_wrk(f"{base}/api/posts?q={COMMON_WORD}&limit=10", secs, conns)
    results["search_page"] = run_wrk(f"{base}/search?q={COMMON_WORD}", secs, conns)
    return results


ETAG_ROUNDS = 3


def bench_etag(first_page: str, seconds: int, connections: int, pid: int) -> dict[str, Result]:
    """The first page in full, then asked by clients that hold it: a 304 that reads the
    database snapshot only (caching.py), as long as nothing commits on the server meanwhile
    (on a shared server, what others commit turns some of them into a render and a hash).

    Interleaved rounds, the run of median rate of each; and the server's CPU time per request,
    which swings much less than the rate on a machine where other work competes for the cores.
    """
    tag = httpx.get(first_page).headers["etag"]
    conditional = httpx.get(first_page, headers={"If-None-Match": tag})
    if conditional.status_code != 304:
        sys.exit(f"expected a 304 for the first page's own ETag, got {conditional.status_code}")
    headers = {"list_200": "", "list_304": f"If-None-Match: {tag}"}
    runs: dict[str, list[Result]] = {name: [] for name in headers}
    cpu_us: dict[str, list[float]] = {name: [] for name in headers}
    for round_ in range(ETAG_ROUNDS):
        for name in sorted(headers, reverse=round_ % 2 == 1):  # alternate who goes first
            before = server_cpu_seconds(pid)
            result = run_wrk(first_page, seconds, connections, header=headers[name])
            runs[name].append(result)
            cpu_us[name].append((server_cpu_seconds(pid) - before) / (result.rps * seconds) * 1e6)
    cpu = {name: statistics.median(values) for name, values in cpu_us.items()}
    rates = {name: " ".join(f"{r.rps:.0f}" for r in results) for name, results in runs.items()}
    sys.stderr.write(
        f"etag: CPU us per request in the server: 200 {cpu['list_200']:.0f}, 304"
        f" {cpu['list_304']:.0f}, 200/304 {cpu['list_200'] / cpu['list_304']:.2f};"
        f" runs (req/s): 200 {rates['list_200']}, 304 {rates['list_304']}\n"
    )
    return {
        name: sorted(results, key=lambda r: r.rps)[len(results) // 2]
        for name, results in runs.items()
    }


def server_cpu_seconds(pid: int) -> float:
    """CPU time of the server and its workers so far."""
    return sum(cpu_seconds(p) for p in [pid, *children(pid)])


# --- Cursor pages at depth -------------------------------------------------------------------

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


# --- Deep pages next to everything else ------------------------------------------------------

DEEPEST_PAGE = "/api/posts?skip=10000&limit=100"  # the deepest and largest page skip allows
DEEP_PAGE_CONNECTIONS = 40
DEEP_PAGE_POSTS = 20_000  # so that page is full, and its total is past the exact count


def add_posts_up_to(dsn: str, state: Seed, count: int) -> None:
    """More posts, as the seed writes them, until the table holds `count` (removed afterwards)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
        conn.execute(
            """INSERT INTO posts (title, content, user_id, date_posted)
               SELECT 'Post ' || g, repeat('Lorem ipsum dolor sit amet. ', 20),
                      (%s::int[])[1 + g %% %s], now() - g * interval '1 minute'
               FROM generate_series(%s::int, %s::int) g""",
            ([u["id"] for u in state.users], len(state.users), have + 1, count),
        )
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


def bench_floor(dsn: str, args, tmp: Path) -> dict:
    env = {**os.environ, "FLOOR_DSN": dsn}
    with uvicorn("floor_app:app", BENCH_DIR, env, 1, tmp / "floor.log") as (base, _pid):
        first_page = f"{base}/api/posts?limit=10"
        run_wrk(first_page, 1, args.connections)
        return {
            "list": run_wrk(first_page, args.seconds, args.connections),
            "deep_page": run_wrk(
                f"{base}/api/posts?skip={args.posts - 20}&limit=10", args.seconds, args.connections
            ),
        }


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_middleware_cost(env: dict, dsn: str, args, tmp: Path) -> str:
    """The first page from the app and from `bare_app.py` (the same app without the metrics
    and request-ID middleware), side by side, in interleaved runs: the median of each.

    Besides the rate, each run's CPU time per request in the server: on a machine where other
    work competes for the cores, the rate swings from run to run, the CPU a request costs
    much less so.
    """
    bare_env = {**env, "METRICS_ENABLED": "false"}
    with (
        uvicorn("main:app", PROJECT_DIR, env, 1, tmp / "with.log") as (with_base, with_pid),
        uvicorn("bench.bare_app:app", PROJECT_DIR, bare_env, 1, tmp / "bare.log") as (bare, pid),
    ):
        seed(with_base, dsn, args.users, args.posts)
        servers = {
            "with": (f"{with_base}/api/posts?limit=10", with_pid),
            "without": (f"{bare}/api/posts?limit=10", pid),
        }
        for url, _pid in servers.values():
            run_wrk(url, 1, args.connections)  # warm up
        runs: dict[str, list[Result]] = {"with": [], "without": []}
        cpu_us: dict[str, list[float]] = {"with": [], "without": []}
        for round_ in range(args.middleware_cost):
            order = ["with", "without"] if round_ % 2 == 0 else ["without", "with"]
            for name in order:  # alternate who goes first: drift hits both alike
                url, server_pid = servers[name]
                before = cpu_seconds(server_pid)
                result = run_wrk(url, args.seconds, args.connections)
                used = cpu_seconds(server_pid) - before
                runs[name].append(result)
                cpu_us[name].append(used / (result.rps * args.seconds) * 1e6)

    def median(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[name])

    lines = [f"first page, {args.middleware_cost} interleaved runs of {args.seconds} s each, "
             f"{args.connections} connections, 1 worker"]  # fmt: skip
    lines.append(
        f"{'':24}{'median req/s':>13}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/req':>11}   runs (req/s)"
    )
    for name, label in (("with", "metrics + request IDs"), ("without", "without them")):
        rates = " ".join(f"{r.rps:.0f}" for r in runs[name])
        lines.append(
            f"{label:24}{median(name, 'rps'):13.0f}{median(name, 'p50_ms'):8.1f}"
            f"{median(name, 'p99_ms'):8.1f}{statistics.median(cpu_us[name]):11.0f}   {rates}"
        )
    ratio = median("with", "rps") / median("without", "rps")
    verdict = "ok" if ratio >= 0.9 else "MISSED"
    lines.append(f"with / without, median rates: {ratio:.3f} (target >= 0.90) {verdict}")
    # Each round's two runs are seconds apart: their ratio cancels most of the machine's drift.
    pairs = [w.rps / b.rps for w, b in zip(runs["with"], runs["without"], strict=True)]
    lines.append(f"with / without, median of each round's ratio: {statistics.median(pairs):.3f}")
    cpu = statistics.median(cpu_us["with"]) / statistics.median(cpu_us["without"])
    lines.append(f"CPU per request in the server, with / without: {cpu:.3f}")

    # The same comparison without the network or wrk: ASGI calls in one process, its CPU time.
    in_process = [sys.executable, str(BENCH_DIR / "middleware_cpu.py"), str(args.middleware_cost),
                  "500"]  # fmt: skip
    measured = subprocess.run(
        in_process, cwd=PROJECT_DIR, env={**env, "PYTHONPATH": str(PROJECT_DIR)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    cpu_us = json.loads(measured.stdout.splitlines()[-1])["cpu_us"]
    lines.append(
        f"in one process, CPU us per request: with {cpu_us['with']:.0f}, without "
        f"{cpu_us['without']:.0f}, ratio {cpu_us['with'] / cpu_us['without']:.3f}"
    )
    return "\n".join(lines)


# --- Report --------------------------------------------------------------------------------


def report(runs: dict[str, dict], memory: dict[str, tuple[float, float]]) -> str:
    names = list(runs)
    lines = [f"{'scenario':16}" + "".join(f"{n:>30}" for n in names)]
    lines.append(f"{'':16}" + "".join(f"{'req/s   p50 ms   p99 ms':>30}" for _ in names))
    for scenario in SCENARIOS:
        if not any(scenario in run for run in runs.values()):
            continue
        cells = []
        for name in names:
            r = runs[name].get(scenario)
            cell = f"{r.rps:8.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f}" if r else ""
            cells.append(f"{cell}{'!' if r and r.errors else ' ':1}".rjust(30))
        lines.append(f"{scenario:16}" + "".join(cells))
    lines.append("(! = some non-2xx responses or socket errors)")
    for name, (worker_mb, total_mb) in memory.items():
        lines.append(f"peak RSS {name}: largest process {worker_mb:.0f} MB, all {total_mb:.0f} MB")

    app, floor = runs[names[0]], runs.get("floor") or {}
    targets = [  # (label, measured, baseline, target ratio)
        ("list_c8_logins / list_c8", app.get("list_c8_logins"), app.get("list_c8"), 0.7),
        ("item_c8_pwchanges / item_c8", app.get("item_c8_pwchanges"), app.get("item_c8"), 0.5),
        (
            "create_c8_pwchanges / create_c8",
            app.get("create_c8_pwchanges"),
            app.get("create_c8"),
            0.5,
        ),
        (
            "item_during_deep / item_alone",
            app.get("item_during_deep"),
            app.get("item_alone"),
            0.5,
        ),
        (
            "create_during_deep / create_alone",
            app.get("create_during_deep"),
            app.get("create_alone"),
            0.5,
        ),
        ("list / floor list", app.get("list"), floor.get("list"), 0.5),
        ("list_304 / list_200", app.get("list_304"), app.get("list_200"), 1.5),
        ("cursor_deep / cursor_first", app.get("cursor_deep"), app.get("cursor_first"), 0.8),
        (
            "cursor_user_deep / cursor_user_first",
            app.get("cursor_user_deep"),
            app.get("cursor_user_first"),
            0.8,
        ),
        (
            "cursor_tag_deep / cursor_tag_first",
            app.get("cursor_tag_deep"),
            app.get("cursor_tag_first"),
            0.8,
        ),
        ("deep_page / floor deep_page", app.get("deep_page"), floor.get("deep_page"), 0.5),
        ("search_rare / list", app.get("search_rare"), app.get("list"), 0.5),
        ("search_common / list", app.get("search_common"), app.get("list"), 0.1),
    ]
    checks = [
        (label, measured.rps / baseline.rps, target)
        for label, measured, baseline, target in targets
        if measured and baseline
    ]
    for label, ratio, target in checks:
        verdict = "ok" if ratio >= target else "MISSED"
        lines.append(f"{names[0]} {label}: {ratio:.2f} (target >= {target:.2f}) {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="workers per run")
    parser.add_argument("--seconds", type=int, default=5, help="duration of each scenario")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the floor")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--only", nargs="+", choices=list(GROUPS), help="run only these groups of scenarios"
    )
    parser.add_argument(
        "--rate-limit-storage",
        metavar="URL",
        help="rate limits on, their windows in this storage (e.g. redis://127.0.0.1:6379/13), "
        "every rate raised so no request is refused",
    )
    parser.add_argument(
        "--middleware-cost",
        type=int,
        metavar="ROUNDS",
        help="only compare the first page with and without the metrics and request-ID middleware",
    )
    args = parser.parse_args()

    server = os.environ.get("BENCH_PG", DEFAULT_SERVER).rstrip("/")
    runs, memory = {}, {}
    tmp_dir = tempfile.TemporaryDirectory(prefix="blog-bench-")
    with tmp_dir, fresh_database(server) as dsn:
        tmp = Path(tmp_dir.name)
        env = {
            **os.environ,
            "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "RATE_LIMIT_ENABLED": "false",  # the load comes from one address
            "DATA_DIR": str(tmp / "data"),
            "MEDIA_DIR": str(tmp / "media"),
        }
        if args.rate_limit_storage:  # every limit checked in that storage, none ever met
            env |= {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_STORAGE_URL": args.rate_limit_storage}
            env |= {f"RATE_LIMIT_{name}": UNREACHABLE_RATE for name in RATE_LIMITS}
        migrate = [sys.executable, "-m", "alembic", "upgrade", "head"]
        subprocess.run(migrate, cwd=PROJECT_DIR, env=env, check=True, capture_output=True)
        if args.middleware_cost:
            sys.stdout.write(bench_middleware_cost(env, dsn, args, tmp) + "\n")
            return
        state = None
        for workers in args.workers:
            name = f"app {workers} worker" + "s" * (workers > 1)
            log = tmp / f"app-{workers}.log"
            with uvicorn("main:app", PROJECT_DIR, env, workers, log) as (base, pid):
                if state is None:
                    started = time.monotonic()
                    state = seed(base, dsn, args.users, args.posts)
                    scripts = write_scripts(state, tmp)
                    seeded_in = time.monotonic() - started
                    sys.stderr.write(
                        f"seeded {args.users} users, {args.posts} posts in {seeded_in:.0f} s\n"
                    )
                with MemorySampler(pid) as sampler:
                    runs[name] = bench_app(base, args, state, scripts, dsn, env["SECRET_KEY"], pid)
                memory[name] = (sampler.worker_peak_mb(), sampler.total_peak_mb())
            sys.stderr.write(f"{name}: done\n")
        if args.floor:
            runs["floor"] = bench_floor(dsn, args, tmp)
        if args.only and "cursor" in args.only:
            depth = min(CURSOR_DEPTH, args.posts // 2)
            sys.stdout.write(explain_offset_and_cursor(dsn, depth) + "\n\n")

    sys.stdout.write(report(runs, memory) + "\n")
    if args.json:
        results = {name: {s: asdict(r) for s, r in run.items()} for name, run in runs.items()}
        args.json.write_text(json.dumps({"results": results, "peak_rss_mb": memory}, indent=1))


if __name__ == "__main__":
    main()
