"""Zero setup: with no DATABASE_URL the app runs its own PostgreSQL and migrates it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from pgserver.postgres_server import get_server
from sqlalchemy import create_engine, inspect

import database
from config import Settings, settings
from embedded_postgres import forget_exited_processes, start_embedded_postgres
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
FASTAPI = Path(sys.executable).parent / "fastapi"
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


class DevServer:
    """`fastapi dev` with nothing configured, in its own process group as a terminal runs it."""

    def __init__(self, workdir: Path, data_dir: Path):
        self.port = free_port()
        self.log = workdir / f"fastapi-{self.port}.log"
        unset = {name.upper() for name in Settings.model_fields} | {"TEST_DATABASE_URL"}
        env = {name: value for name, value in os.environ.items() if name not in unset}
        env["DATA_DIR"] = str(data_dir)
        command = [str(FASTAPI), "dev", str(ROOT / "main.py"), "--host", "127.0.0.1"]
        with self.log.open("wb") as log:  # cwd without a .env: nothing configured there either
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

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
        """Ctrl+C in a terminal: SIGINT to the whole process group; the exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=STOP_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_SECONDS)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def test_ctrl_c_on_fastapi_dev_stops_the_embedded_server(tmp_path):
    data_dir = (tmp_path / "data").resolve()
    pgdata = data_dir / "postgres"
    try:
        for _start in ("first", "second on the same data folder"):
            app = DevServer(tmp_path, data_dir)
            try:
                app.wait_until_ready()
                assert app.interrupt() == 0, app.output()
            finally:
                app.kill()
            assert_no_server_on(pgdata)
    finally:  # never leave a server behind, even when an assertion failed
        for process in postgres_processes_on(pgdata):
            process.kill()
