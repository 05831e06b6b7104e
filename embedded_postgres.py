"""A real PostgreSQL server shipped as a wheel (pgserver), for running with zero setup.

Used only when DATABASE_URL is unset: by the app in development and by the test suite.

`python embedded_postgres.py PID DATA_DIR` is the watchdog that `start_embedded_postgres`
starts (see `watch_over`).
"""

import atexit
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import psutil

# pgserver asks platformdirs for a runtime folder on import; without XDG_RUNTIME_DIR (a container,
# CI) it warns and falls back to /tmp, which is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
from pgserver.postgres_server import PostgresServer, get_server  # noqa: E402
from pgserver.utils import DiskList  # noqa: E402

logger = logging.getLogger(__name__)
logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command at INFO

# How long the server may take to shut down (it ends its sessions and writes a checkpoint).
STOP_SECONDS = 30


def start_embedded_postgres(data_dir: Path) -> tuple[PostgresServer, str]:
    """Start (or join) the server whose data lives in `data_dir`.

    Returns the server (it stops when the last process using it is gone, or on `cleanup()`)
    and a SQLAlchemy URL for it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    # Runs before pgserver's own exit hook (atexit runs the last registered first).
    atexit.register(forget_exited_processes, server)
    watch_over(server)
    socket_dir = server.get_uri().split("host=", 1)[1]
    logger.info("Embedded PostgreSQL running with data in %s", data_dir)
    return server, f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"


def forget_exited_processes(server: PostgresServer) -> None:
    """Drop the processes that are gone from the server's list of users.

    pgserver stops the server when the last process on its list (`.handle_pids.json` in the
    data folder) exits, and a process takes itself off that list at exit. One killed by a
    signal never does. Called at exit, before pgserver looks at the list.
    """
    with server._lock:  # the inter-process lock pgserver takes around that list
        users = server.global_process_id_list.get()
        alive = [pid for pid in users if pid == os.getpid() or _is_running(pid)]
        if alive != users:
            server.global_process_id_list.put(alive)


# The watchdog of each data folder this process uses (one, however often it starts the server).
_watchdogs: dict[Path, subprocess.Popen[bytes]] = {}


def watch_over(server: PostgresServer) -> None:
    """Have a process of its own stop the server once this process is gone, however it went.

    A process that exits normally stops the server in its exit hooks if it was the last user;
    one killed by a signal never runs them. `fastapi dev` is such a case: on Ctrl+C its worker
    shuts down gracefully, then dies of the SIGTERM that uvicorn raises again, and the reloader
    above it never imports the app when the entrypoint comes from `[tool.fastapi]`. The
    watchdog runs in a session of its own (Ctrl+C in the terminal does not reach it), waits
    for this process to end, then stops the server unless another live process still uses it.
    """
    running = _watchdogs.get(server.pgdata)
    if running is not None and running.poll() is None:
        return
    _watchdogs[server.pgdata] = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), str(os.getpid()), str(server.pgdata)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_when_gone(pid: int, data_dir: Path) -> None:
    """The watchdog's work: once process `pid` has ended, stop the server if no process uses
    it any more (`stop_if_unused`)."""
    joined = running_postmaster(data_dir)
    wait_for_exit(pid)
    stop_if_unused(data_dir, joined)


def stop_if_unused(data_dir: Path, joined: psutil.Process | None) -> None:
    """Take the exited processes off the server's list and, if none is left, stop the server
    (a fast shutdown, as pgserver's own `pg_ctl stop`). Under pgserver's lock, so a process
    joining meanwhile (the next worker of `fastapi dev --reload`) either counts as a user or
    finds the server stopped and starts it again. A data folder removed meanwhile (a copy of
    the project's, a test's) leaves its server to serve nobody: `joined`, the server that
    ran when the watchdog started, is stopped."""
    with PostgresServer._lock:
        users = DiskList(data_dir / ".handle_pids.json")  # what pgserver keeps there
        if users.path.exists():
            alive = [user for user in users.get() if _is_running(user)]
            users.put(alive)
            if alive:
                return
        postmaster = running_postmaster(data_dir) or joined
        if postmaster is not None and postmaster.is_running():  # the same, not a pid reused
            stop_postmaster(postmaster)
            logger.info("Embedded PostgreSQL in %s stopped: no process uses it", data_dir)


def wait_for_exit(pid: int) -> None:
    """Until process `pid` has ended; a zombie, which its parent has yet to reap, has ended."""
    if sys.platform == "linux":  # a descriptor that becomes readable when the process ends
        try:
            descriptor = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            select.select([descriptor], [], [])
        finally:
            os.close(descriptor)
    else:  # polls until the process is gone
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait()


def running_postmaster(data_dir: Path) -> psutil.Process | None:
    """The server running on `data_dir` (its pid is the first line of `postmaster.pid`)."""
    try:
        postmaster = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
        return postmaster if postmaster.name() == "postgres" else None  # else a pid reused
    except (FileNotFoundError, IndexError, ValueError, psutil.NoSuchProcess):
        return None


def stop_postmaster(postmaster: psutil.Process) -> None:
    """A fast shutdown (SIGINT to the postmaster); waits until it has stopped."""
    try:
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(STOP_SECONDS)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        postmaster.kill()


def _is_running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


if __name__ == "__main__":
    stop_when_gone(int(sys.argv[1]), Path(sys.argv[2]))
