"""A real PostgreSQL server shipped as a wheel (pgserver), for running with zero setup.

Used only when DATABASE_URL is unset: by the app in development and by the test suite.
"""

import logging
import warnings
from pathlib import Path

# pgserver asks platformdirs for a runtime folder on import; without XDG_RUNTIME_DIR (a container,
# CI) it warns and falls back to /tmp, which is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
import pgserver  # noqa: E402

logger = logging.getLogger(__name__)
logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command at INFO


def start_embedded_postgres(data_dir: Path) -> tuple[pgserver.PostgresServer, str]:
    """Start (or join) the server whose data lives in `data_dir`.

    Returns the server (it stops when the last process using it exits, or on `cleanup()`)
    and a SQLAlchemy URL for it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    socket_dir = server.get_uri().split("host=", 1)[1]
    logger.info("Embedded PostgreSQL running with data in %s", data_dir)
    return server, f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"
