"""Zero setup: with no DATABASE_URL the app runs its own PostgreSQL and migrates it."""

import fcntl
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import httpx
import psutil
import pytest
from pgserver.postgres_server import get_server
from sqlalchemy import create_engine, inspect

import database
from config import Settings, settings
from embedded_postgres import (
    forget_exited_processes,
    running_postmaster,
    start_embedded_postgres,
    stop_if_unused,
)
from tests.conftest import free_port


@pytest.fixture
def no_database_configured(monkeypatch, tmp_path):
    monkeypatch.setattr(settings, "database_url", None)
    monkeypatch.setattr(settings, "data_dir", tmp_path / ".data")
    yield tmp_path / ".data"
    get_server(tmp_path / ".data" / "postgres").cleanup()  # stop it now, not at exit


def test_embedded_postgres_starts_under_data_dir_and_migrates(no_database_configured):
    url = database.database_url()
    assert (no_database_configured / "postgres" / "PG_VERSION").is_file()
    database.upgrade_to_head(url)
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"users", "posts", "password_reset_tokens", "alembic_version"} <= tables


# --- Stopping: the server goes when the last process that uses it does -----------------------

ROOT = Path(__file__).parent.parent
START_SECONDS = 120  # a first start creates the database; a busy machine is slow to import
STOP_SECONDS = 60


def postgres_processes_on(data_dir: Path) -> list[psutil.Process]:
    """PostgreSQL processes whose data folder is `data_dir`."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(data_dir) in (process.info["cmdline"] or []):
            found.append(process)
    return found


def assert_no_server_on(data_dir: Path) -> None:
    assert not (data_dir / "postmaster.pid").exists()
    assert postgres_processes_on(data_dir) == []


def wait_until_stopped(data_dir: Path) -> None:
    """Until the server on `data_dir` has stopped (its watchdog stops it once the last process
    using it is gone); then nothing of it is left running."""
    _gone, alive = psutil.wait_procs(postgres_processes_on(data_dir), timeout=STOP_SECONDS)
    assert alive == [], f"still running {STOP_SECONDS} s later: {alive}"
    assert_no_server_on(data_dir)


def test_a_user_that_died_without_leaving_does_not_keep_the_server_running(tmp_path):
    data_dir = (tmp_path / "postgres").resolve()
    server, _url = start_embedded_postgres(data_dir)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=STOP_SECONDS)
    users = server.global_process_id_list
    users.put([gone.pid, *users.get()])  # as if it had joined, then been killed by a signal

    forget_exited_processes(server)
    assert users.get() == [os.getpid()]
    server.cleanup()  # what this process's exit does

    assert_no_server_on(data_dir)


def test_the_watchdog_stops_the_server_once_no_process_uses_it(tmp_path):
    data_dir = (tmp_path / "postgres").resolve()
    server, url = start_embedded_postgres(data_dir)
    joined = running_postmaster(data_dir)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=STOP_SECONDS)
    users = server.global_process_id_list
    users.put([gone.pid, *users.get()])  # it joined, then was killed by a signal

    stop_if_unused(data_dir, joined)  # what that process's watchdog does once it is gone
    assert users.get() == [os.getpid()]  # this process still uses the server: it runs
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()

    users.put([gone.pid])  # as if this process too had been killed before its exit hooks
    stop_if_unused(data_dir, joined)
    assert users.get() == []
    assert_no_server_on(data_dir)


def test_the_watchdog_stops_the_server_of_a_data_folder_removed_meanwhile(tmp_path):
    """Its server then serves nobody: the one that ran when the watchdog started is stopped
    (here a stand-in, which a postmaster's SIGINT ends as it ends the postmaster)."""
    stand_in = subprocess.Popen(["sleep", "60"])
    process = psutil.Process(stand_in.pid)
    try:
        stop_if_unused(tmp_path / "removed", process)  # which waits for it to end
        assert not process.is_running()
    finally:
        if process.is_running():
            stand_in.kill()


def uv() -> str:
    """The uv that runs this suite (`uv run` tells its commands where it is), else the PATH's."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "the README's commands need uv, found neither in UV nor on the PATH"
    return found


# What a clone of the project holds beyond the app, and the local state of a checkout.
LEFT_OUT = shutil.ignore_patterns(
    ".git", "tests", "bench", ".venv", "uv.lock", ".env", ".data", "media", "mutants",
    "__pycache__", ".*_cache", ".coverage*", "htmlcov", "test-artifacts",
)  # fmt: skip


def copy_of_the_project(folder: Path) -> Path:
    """The app's files in `folder`: a fresh checkout of it, where nothing is configured."""
    shutil.copytree(ROOT, folder, ignore=LEFT_OUT)
    return folder


def take_the_terminal() -> None:
    """In the child, which leads a new session: make its stdin, a pseudo-terminal, its
    controlling terminal; its process group is then that terminal's foreground group."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class DevServer:
    """The README's `uv run fastapi dev` in a copy of the project, with nothing configured
    (the app is found through `[tool.fastapi]` in the copy's pyproject.toml), as a terminal
    runs it: a session of its own whose controlling terminal is a pseudo-terminal of the
    test's. uv runs it in this suite's environment as it is."""

    def __init__(self, project: Path):
        self.port = free_port()
        self.log = project.parent / f"fastapi-{self.port}.log"
        # No setting, no activated environment (as in a terminal), no xdist worker's marks.
        unset = {name.upper() for name in Settings.model_fields} | {"TEST_DATABASE_URL"}
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in unset and "XDIST" not in name and name != "VIRTUAL_ENV"
        }
        env |= {"UV_PROJECT_ENVIRONMENT": sys.prefix, "UV_NO_SYNC": "1"}
        self.terminal, tty = pty.openpty()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [uv(), "run", "fastapi", "dev", "--port", str(self.port)],
                cwd=project,
                env=env,
                stdin=tty,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=take_the_terminal,
            )
        os.close(tty)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"fastapi dev exited:\n{self.output()}"
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/health/ready", timeout=2)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling interval, bounded by the deadline
        raise AssertionError(f"fastapi dev not ready in {START_SECONDS} s:\n{self.output()}")

    def interrupt(self) -> int:
        """Ctrl+C: the terminal sends SIGINT to its foreground process group (uv, fastapi's
        reloader and its worker); the exit code."""
        os.write(self.terminal, b"\x03")
        return self.process.wait(timeout=STOP_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_SECONDS)
        os.close(self.terminal)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def test_ctrl_c_on_fastapi_dev_stops_the_embedded_server(tmp_path):
    project = copy_of_the_project(tmp_path / "blog")
    pgdata = project / ".data" / "postgres"
    try:
        for _start in ("first", "second on the same data folder"):
            app = DevServer(project)
            try:
                app.wait_until_ready()
                assert app.interrupt() == 0, app.output()
            finally:
                app.kill()
            wait_until_stopped(pgdata)
            assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    finally:  # never leave a server behind, even when an assertion failed
        for process in postgres_processes_on(pgdata):
            process.kill()
