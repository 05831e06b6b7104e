"""A real PostgreSQL server shipped as a wheel (pgserver), for running with zero setup.

Used only when DATABASE_URL is unset: by the app in development and by the test suite.
"""

import atexit
import logging
import os
import warnings
from pathlib import Path

import psutil

# pgserver asks platformdirs for a runtime folder on import; without XDG_RUNTIME_DIR (a container,
# CI) it warns and falls back to /tmp, which is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
from pgserver.postgres_server import PostgresServer, get_server  # noqa: E402

logger = logging.getLogger(__name__)
logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command at INFO


def start_embedded_postgres(data_dir: Path) -> tuple[PostgresServer, str]:
    """Start (or join) the server whose data lives in `data_dir`.

    Returns the server (it stops when the last process using it exits, or on `cleanup()`)
    and a SQLAlchemy URL for it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    # Runs before pgserver's own exit hook (atexit runs the last registered first).
    atexit.register(forget_exited_processes, server)
    socket_dir = server.get_uri().split("host=", 1)[1]
    logger.info("Embedded PostgreSQL running with data in %s", data_dir)
    return server, f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"


def forget_exited_processes(server: PostgresServer) -> None:
    """Drop the processes that are gone from the server's list of users.

    pgserver stops the server when the last process on its list (`.handle_pids.json` in the
    data folder) exits, and a process takes itself off that list at exit. One killed by a
    signal never does: `fastapi dev`'s worker dies of the SIGTERM its reloader sends on Ctrl+C,
    so the server outlived the app. Called at exit, before pgserver looks at the list.
    """
    with server._lock:  # the inter-process lock pgserver takes around that list
        users = server.global_process_id_list.get()
        alive = [pid for pid in users if pid == os.getpid() or _is_running(pid)]
        if alive != users:
            server.global_process_id_list.put(alive)


def _is_running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
