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

# This file is the command: its options, which groups run, in what order, and the table. The
# scenarios live in one module per family (scenarios_reads.py ... scenarios_mail.py, and
# scenarios_middleware.py for --middleware-cost); what they share (the database, the servers,
# the seed, wrk, the table) in runner.py.

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import scenarios_cookie
import scenarios_cursor
import scenarios_deep_pages
import scenarios_etag
import scenarios_logins
import scenarios_mail
import scenarios_password_flood
import scenarios_reads
import scenarios_search
import scenarios_writes
from runner import (
    DEFAULT_SERVER,
    PROJECT_DIR,
    MemorySampler,
    Seed,
    bench_floor,
    fresh_database,
    report,
    run_wrk,
    seed,
    uvicorn,
    write_scripts,
)
from scenarios_middleware import bench_middleware_cost

# With --rate-limit-storage: the limits are checked (and their storage used), never met.
RATE_LIMITS = ["LOGIN", "LOGIN_ACCOUNT", "REGISTER", "PASSWORD_RESET", "PASSWORD_RESET_ACCOUNT",
               "PASSWORD_CHANGE", "UPLOAD", "POST", "COMMENT"]  # fmt: skip
UNREACHABLE_RATE = "1000000/minute"


# Scenario groups for --only, in the order --help lists them, and the module of each.
GROUPS = {
    "reads": scenarios_reads,
    "create": scenarios_writes,
    "logins": scenarios_logins,
    "pwchanges": scenarios_password_flood,
    "deep": scenarios_deep_pages,
    "search": scenarios_search,
    "etag": scenarios_etag,
    "cookie": scenarios_cookie,
    "cursor": scenarios_cursor,
    "mail": scenarios_mail,
}
# The table's rows, family by family.
SCENARIOS = [
    name
    for family in (
        scenarios_reads,
        scenarios_writes,
        scenarios_logins,
        scenarios_password_flood,
        scenarios_deep_pages,
        scenarios_search,
        scenarios_etag,
        scenarios_cursor,
        scenarios_cookie,
        scenarios_mail,
    )
    for name in family.SCENARIOS
]
# The ratios the table checks, in the order it prints them.
TARGETS = [
    *scenarios_logins.TARGETS,
    *scenarios_password_flood.TARGETS,
    *scenarios_deep_pages.TARGETS,
    scenarios_reads.LIST_VS_FLOOR,
    *scenarios_etag.TARGETS,
    *scenarios_cursor.TARGETS,
    scenarios_reads.DEEP_PAGE_VS_FLOOR,
    *scenarios_search.TARGETS,
    *scenarios_mail.TARGETS,
]


def bench_app(
    base: str,
    args,
    state: Seed,
    scripts: dict[str, Path],
    dsn: str,
    secret_key: str,
    pid: int = 0,
    sink: scenarios_mail.CountingSink | None = None,
) -> dict:
    """The groups of `--only` (all by default) on the app at `base`, in this order; `sink`:
    the SMTP sink the app's mail goes to (the mail group's)."""
    groups = args.only or list(GROUPS)
    first_page = f"{base}/api/posts?limit=10"
    run_wrk(first_page, 1, args.connections)  # warm up: pool connections, prepared statements
    results = {}
    if "reads" in groups:
        results |= scenarios_reads.bench_reads(base, args, scripts)
    if "create" in groups:
        results |= scenarios_writes.bench_writes(base, args, state, scripts, dsn)
    if "logins" in groups:
        results |= scenarios_logins.bench_logins(base, args, state, scripts)
    if "pwchanges" in groups:
        results |= scenarios_password_flood.bench_password_flood(base, args, state, scripts, dsn)
    if "deep" in groups:
        results |= scenarios_deep_pages.bench_deep_page_load(base, args, state, scripts, dsn)
    if "etag" in groups:
        results |= scenarios_etag.bench_etag(first_page, args.seconds, args.connections, pid)
    if "search" in groups:
        with_list = "reads" not in groups
        results |= scenarios_search.bench_search(base, args, dsn, first_page, with_list)
    if "cursor" in groups:
        results |= scenarios_cursor.bench_cursor_pages(base, args, state, dsn, secret_key)
    if "cookie" in groups:
        results |= scenarios_cookie.bench_cookie(base, args, state)
    if "mail" in groups:
        results |= scenarios_mail.bench_mail(base, args, state, scripts, dsn, sink, pid)
    return results


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
    with tmp_dir, fresh_database(server) as dsn, contextlib.ExitStack() as servers:
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
        sink = None
        if not args.middleware_cost and (args.only is None or "mail" in args.only):
            # The app's mail goes to an SMTP sink on loopback, up until every server stopped.
            smtp_port, sink = servers.enter_context(scenarios_mail.smtp_sink())
            env |= scenarios_mail.mail_settings(smtp_port)
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
                    runs[name] = bench_app(
                        base, args, state, scripts, dsn, env["SECRET_KEY"], pid, sink
                    )
                memory[name] = (sampler.worker_peak_mb(), sampler.total_peak_mb())
            sys.stderr.write(f"{name}: done\n")
        if args.floor:
            runs["floor"] = bench_floor(dsn, args, tmp)
        if args.only and "cursor" in args.only:
            depth = min(scenarios_cursor.CURSOR_DEPTH, args.posts // 2)
            sys.stdout.write(scenarios_cursor.explain_offset_and_cursor(dsn, depth) + "\n\n")

    sys.stdout.write(report(runs, memory, SCENARIOS, TARGETS) + "\n")
    if args.json:
        results = {name: {s: asdict(r) for s, r in run.items()} for name, run in runs.items()}
        args.json.write_text(json.dumps({"results": results, "peak_rss_mb": memory}, indent=1))


if __name__ == "__main__":
    main()
