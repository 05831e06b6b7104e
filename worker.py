"""Run the queue's jobs apart from the app: `uv run python -m worker` (RUN_WORKER_IN_APP=false).

Any number of them may run, on any number of machines, against the app's database. Ctrl+C (or
SIGTERM) stops one cleanly: it takes no new job, lets the jobs in flight finish (or, after
jobs.SHUTDOWN_GRACE_SECONDS, puts them back in the queue) and leaves.
"""

import asyncio
import logging

import jobs
from config import settings
from logs import configure_logging

logger = logging.getLogger(__name__)


async def run_worker(**options: object) -> None:
    """Open the queue and work until stopped (procrastinate handles SIGINT and SIGTERM)."""
    async with jobs.app.open_async():
        logger.info("Worker started")
        await jobs.app.run_worker_async(**options)  # type: ignore[arg-type]


def main() -> None:
    configure_logging(settings.log_format)
    asyncio.run(run_worker())


if __name__ == "__main__":
    main()
