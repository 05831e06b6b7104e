"""Other users' logins while one account storms the routes that check a password.

    uv run python bench/password_storm.py                  # rate limits on, then off
    uv run python bench/password_storm.py --storm 120 --flood   # wrk, as fast as it goes

An attacker holding one account's token sends STORM email changes with a wrong
`current_password` at once (each one a password check: an argon2 hash), every second, from
one client on loopback, bounded in time. Meanwhile other users log in one after another.
Their login time is compared with the same logins alone, before the storm: the target is at
most 2x. With --flood, wrk keeps STORM such requests in flight back to back instead: a request
flood at whatever rate the server answers, which no app-level limit can make free (each
refusal still costs the worker a little: that is the proxy's `limit_conn`/`limit_req`).

Both with rate limits on (the per-user and per-client limits refuse most of the storm) and
off (only PASSWORD_HASH_PER_ACCOUNT stands between the storm and the shared hash queue). The
app runs with pwdlib's real argon2 parameters. Same database handling as run.py (runner.py).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import (  # noqa: E402  (this folder's shared runner)
    DEFAULT_SERVER,
    PASSWORD,
    PROJECT_DIR,
    fresh_database,
    register_and_log_in,
    uvicorn,
)

LOGINS = 20  # per measurement, one after another, spread over the other users


def logins(base: str, users: list[dict], count: int) -> list[float]:
    """Seconds each of `count` logins took, one at a time."""
    times = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for n in range(count):
            user = users[n % len(users)]
            form = {"username": user["email"], "password": PASSWORD}
            started = time.perf_counter()
            response = client.post("/api/users/token", data=form)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
    return times


def storm_script(attacker: dict, path: Path) -> Path:
    """A wrk script: the attacker's email change with a wrong password, again and again."""
    body = json.dumps({"email": "taken-over@example.com", "current_password": "a wrong guess"})
    path.write_text(f"""local headers = {{["Content-Type"] = "application/json",
                 ["Authorization"] = "Bearer {attacker["token"]}"}}
request = function()
  return wrk.format("PATCH", "/api/users/{attacker["id"]}", headers, '{body}')
end
""")
    return path


def bursts(base: str, attacker: dict, size: int, stop: threading.Event) -> Counter[int | str]:
    """`size` wrong email changes at once, every second, until `stop`; their statuses (or the
    name of the error, for a request that got no answer)."""
    statuses: Counter[int | str] = Counter()
    url = f"/api/users/{attacker['id']}"
    headers = {"Authorization": f"Bearer {attacker['token']}"}
    body = {"email": "taken-over@example.com", "current_password": "a wrong guess"}
    limits = httpx.Limits(max_connections=size)
    with (
        httpx.Client(base_url=base, timeout=60, limits=limits) as client,
        ThreadPoolExecutor(max_workers=size) as pool,
    ):

        def one(_: int) -> int | str:
            try:
                return client.patch(url, json=body, headers=headers).status_code
            except httpx.HTTPError as error:  # counted, not raised: the storm goes on
                return type(error).__name__

        while not stop.is_set():
            started = time.monotonic()
            statuses.update(pool.map(one, range(size)))
            stop.wait(max(0.0, 1 - (time.monotonic() - started)))
    return statuses


def measure(base: str, users: list[dict], script: Path, attacker: dict, args) -> dict:
    logins(base, users, 4)  # warm up: connections, the first hashes
    alone = logins(base, users, LOGINS)
    if args.flood:
        wrk = ["wrk", "-t1", f"-c{args.storm}", f"-d{args.seconds}s", "--timeout", "30s"]
        flood = subprocess.Popen([*wrk, "-s", str(script), base], stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1)  # the storm is under way before the measurement starts
            during = logins(base, users, LOGINS)
        finally:
            if flood.poll() is None:  # wrk stops on SIGINT and still prints what it did
                flood.send_signal(signal.SIGINT)
            output, _ = flood.communicate()
        storm = " ".join(line.strip() for line in output.splitlines() if "requests in" in line)
    else:
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as runner:
            storming = runner.submit(bursts, base, attacker, args.storm, stop)
            time.sleep(1)  # the storm is under way before the measurement starts
            try:
                during = logins(base, users, LOGINS)
            finally:
                stop.set()
            answers = storming.result()
        storm = ", ".join(f"{n} x {status}" for status, n in sorted(answers.items(), key=str))
    return {
        "alone_ms": statistics.median(alone) * 1000,
        "during_ms": statistics.median(during) * 1000,
        "during_max_ms": max(during) * 1000,
        "storm": storm,
    }


def run(server: str, limits_on: bool, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="blog-storm-") as tmp, fresh_database(server) as dsn:
        env = {
            **os.environ,
            "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "RATE_LIMIT_ENABLED": str(limits_on).lower(),
            # The measured logins come from the same address as the storm: only the limits
            # that protect them from the storm's account are measured, not the per-client ones.
            "RATE_LIMIT_LOGIN": "1000000/minute",
            "RATE_LIMIT_REGISTER": "1000000/minute",
            "DATA_DIR": str(Path(tmp) / "data"),
            "MEDIA_DIR": str(Path(tmp) / "media"),
        }
        for name in ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST", "ARGON2_PARALLELISM"):
            env.pop(name, None)  # pwdlib's real parameters
        migrate = [sys.executable, "-m", "alembic", "upgrade", "head"]
        subprocess.run(migrate, cwd=PROJECT_DIR, env=env, check=True, capture_output=True)
        log = Path(tmp) / "app.log"
        with uvicorn("main:app", PROJECT_DIR, env, 1, log) as (base, _pid):
            with httpx.Client(base_url=base, timeout=60) as client:
                users = [register_and_log_in(client, f"reader{n}") for n in range(4)]
                attacker = register_and_log_in(client, "attacker")
            script = storm_script(attacker, Path(tmp) / "storm.lua")
            return measure(base, users, script, attacker, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--storm", type=int, default=120, help="email changes in flight")
    parser.add_argument("--seconds", type=int, default=60, help="the flood's longest duration")
    parser.add_argument("--flood", action="store_true", help="wrk back to back, not bursts")
    args = parser.parse_args()
    server = os.environ.get("BENCH_PG", DEFAULT_SERVER).rstrip("/")
    lines = [
        "| rate limits | login alone (median) | during the storm (median) | ratio | slowest"
        " during | the storm's answers |",
        "|---|---|---|---|---|---|",
    ]
    for limits_on in (True, False):
        result = run(server, limits_on, args)
        ratio = result["during_ms"] / result["alone_ms"]
        lines.append(
            f"| {'on' if limits_on else 'off'} | {result['alone_ms']:.0f} ms"
            f" | {result['during_ms']:.0f} ms | {ratio:.2f} | {result['during_max_ms']:.0f} ms"
            f" | {result['storm']} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
