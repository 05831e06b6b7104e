"""How many logins one client gets through RATE_LIMIT_LOGIN with 2 workers, per storage.

    uv run python bench/limits_per_worker.py                                    # memory://
    uv run python bench/limits_per_worker.py memory:// redis://127.0.0.1:6379/13

For each storage URL and each repeat: starts `uvicorn main:app --workers 2` on a free
loopback port over a fresh, migrated database (the server is restarted for every repeat, so
every window starts empty), registers one user, then sends `--logins` logins from one client,
each on a new connection (so the kernel may hand them to either worker), and counts the 200s.
A Redis database given is flushed before and after each repeat: give one nothing else uses.
The database is dropped at the end. Same PostgreSQL server as run.py (`BENCH_PG`).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
from redis import Redis
from runner import DEFAULT_SERVER, PROJECT_DIR, fresh_database, uvicorn

PASSWORD = "a password for the limits"
EMAIL = "limits@example.com"


def flush(storage: str) -> None:
    if storage.startswith(("redis://", "rediss://")):
        with Redis.from_url(storage, socket_timeout=5) as redis:
            redis.flushdb()


def one_repeat(env: dict[str, str], workers: int, logins: int, log: Path) -> list[int]:
    """Status codes of `logins` logins, each on its own connection, to a fresh server."""
    with uvicorn("main:app", PROJECT_DIR, env, workers, log) as (base, _pid):
        form = {"username": EMAIL, "password": PASSWORD}
        created = httpx.post(
            f"{base}/api/users",
            json={"username": "limits", "email": EMAIL, "password": PASSWORD},
            timeout=60,
        )
        created.raise_for_status()
        # httpx.post opens and closes a connection per call: a new accept() each time.
        return [httpx.post(f"{base}/api/users/token", data=form, timeout=60).status_code
                for _ in range(logins)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("storage", nargs="*", default=["memory://"], help="storage URLs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--logins", type=int, default=20, help="logins per repeat (at most 20)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate", default="5/minute", help="RATE_LIMIT_LOGIN")
    args = parser.parse_args()
    if not 1 <= args.logins <= 20 or not 1 <= args.repeats <= 10:
        sys.exit("--logins: 1 to 20 (the per-account limit is 20/hour); --repeats: 1 to 10")

    server = os.environ.get("BENCH_PG", DEFAULT_SERVER).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="blog-limits-") as tmp_name:
        tmp = Path(tmp_name)
        for storage in args.storage:
            got_through = []
            for repeat in range(args.repeats):
                with fresh_database(server) as dsn:
                    env = {
                        **os.environ,
                        "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
                        "ENVIRONMENT": "development",
                        "SECRET_KEY": uuid.uuid4().hex * 2,
                        "RATE_LIMIT_ENABLED": "true",
                        "RATE_LIMIT_LOGIN": args.rate,
                        "RATE_LIMIT_STORAGE_URL": storage,
                        "DATA_DIR": str(tmp / "data"),
                        "MEDIA_DIR": str(tmp / "media"),
                    }
                    migrate = [sys.executable, "-m", "alembic", "upgrade", "head"]
                    subprocess.run(
                        migrate, cwd=PROJECT_DIR, env=env, check=True, capture_output=True
                    )
                    flush(storage)
                    try:
                        codes = one_repeat(env, args.workers, args.logins, tmp / "app.log")
                    finally:
                        flush(storage)
                unexpected = sorted({c for c in codes if c not in (200, 429)})
                if unexpected:
                    sys.exit(f"unexpected status codes {unexpected}: {codes}")
                got_through.append(codes.count(200))
                sys.stderr.write(f"{storage} repeat {repeat + 1}: {codes}\n")
            counts = ", ".join(str(n) for n in got_through)
            sys.stdout.write(
                f"{storage}, {args.workers} workers, RATE_LIMIT_LOGIN={args.rate}: "
                f"{counts} of {args.logins} logins got through\n"
            )


if __name__ == "__main__":
    main()
