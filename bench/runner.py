"""The shared runner of the benchmark: what every scenario family stands on.

A fresh database (`fresh_database`), the app or the floor served by uvicorn on a free loopback
port (`uvicorn`, `bench_floor`), the seed (`seed`: users through the API, posts and comments
with SQL) and the wrk scripts that pick a random post, user, token or account per request
(`write_scripts`); wrk runs and their parsed results (`run_wrk`, `Result`, `average`,
`in_background`), the server's memory and CPU time read from /proc (`MemorySampler`,
`server_cpu_seconds`), and the table with its target ratios (`report`, `Target`). The
scenarios themselves live in `scenarios_*.py`, one module per family; `run.py` is the command.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """CPU time of the server and its workers so far."""
    return sum(cpu_seconds(p) for p in [pid, *children(pid)])


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


def insert_posts(conn: psycopg.Connection, user_ids: list[int], first: int, last: int) -> None:
    """Posts number `first` to `last` (one minute older each), as the app would store them:
    the same Markdown rendered once, the tags `bench` and one of tag0..tag9, by the users in
    turn."""
    sys.path.insert(0, str(PROJECT_DIR))
    from content import render_post  # every post has the same Markdown: render it once

    rendered = render_post(POST_CONTENT)
    conn.execute(
        """INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,
                              tags, user_id, date_posted, first_published_at, updated_at)
           SELECT 'Post ' || g, %s, %s, %s, %s,
                  ARRAY['bench', 'tag' || (g %% %s)],
                  (%s::int[])[1 + g %% %s], now() - g * interval '1 minute',
                  now() - g * interval '1 minute', now() - g * interval '1 minute'
           FROM generate_series(%s::int, %s::int) g""",
        (
            POST_CONTENT,
            rendered["content_html"],
            rendered["excerpt"],
            rendered["reading_time_minutes"],
            N_TAGS,
            user_ids,
            len(user_ids),
            first,
            last,
        ),
    )


def seed(base: str, dsn: str, n_users: int, n_posts: int) -> Seed:
    """Users through the API (real argon2 hashes and tokens), posts straight into the table."""
    with httpx.Client(base_url=base, timeout=60) as client:
        users = [register_and_log_in(client, f"bench{i}") for i in range(n_users)]
        attacker = register_and_log_in(client, "attacker")
    user_ids = [u["id"] for u in users]
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_posts(conn, user_ids, 1, n_posts)
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
                user_ids,
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


def wait_for_hash_queue(base: str, user: dict) -> None:
    """Return once the hashes queued by a flood are done: a login joins the back of the queue."""
    form = {"username": user["email"], "password": PASSWORD}
    httpx.post(f"{base}/api/users/token", data=form, timeout=120).raise_for_status()


# --- wrk scripts ---------------------------------------------------------------------------


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
        "forgot_password": f"""local emails = {lua_list([u["email"] for u in state.users])}
local headers = {{["Content-Type"] = "application/json"}}
request = function()
  local body = '{{"email": "' .. emails[math.random(#emails)] .. '"}}'
  return wrk.format("POST", "/api/users/forgot-password", headers, body)
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


def bench_floor(dsn: str, args, tmp: Path) -> dict:
    """The first page and the deep page from `floor_app.py` (hand-written psycopg) on the same
    database: about as fast as this stack can serve the list."""
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


# --- Report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A ratio the table checks: the rate of `measured` over that of `baseline`, at least
    `ratio`, both from the first run (the baseline from the floor's run if `floor`)."""

    label: str
    measured: str
    baseline: str
    ratio: float
    floor: bool = False


def report(
    runs: dict[str, dict],
    memory: dict[str, tuple[float, float]],
    scenarios: list[str],
    targets: list[Target],
) -> str:
    """The table: a row per scenario in `scenarios` that some run measured, a column per run;
    then each run's peak memory, and each target whose two scenarios were measured."""
    names = list(runs)
    lines = [f"{'scenario':16}" + "".join(f"{n:>30}" for n in names)]
    lines.append(f"{'':16}" + "".join(f"{'req/s   p50 ms   p99 ms':>30}" for _ in names))
    for scenario in scenarios:
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
    checks = []
    for target in targets:
        measured = app.get(target.measured)
        baseline = (floor if target.floor else app).get(target.baseline)
        if measured and baseline:
            checks.append((target.label, measured.rps / baseline.rps, target.ratio))
    for label, ratio, target in checks:
        verdict = "ok" if ratio >= target else "MISSED"
        lines.append(f"{names[0]} {label}: {ratio:.2f} (target >= {target:.2f}) {verdict}")
    return "\n".join(lines)
