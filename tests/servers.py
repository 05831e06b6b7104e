"""Real servers for the tests that need processes: the app under uvicorn with its workers.

Everything listens on a free port of 127.0.0.1, is waited for with a deadline, and is stopped
(then killed, if it must be) when the `async with` block ends.
"""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx

from tests.conftest import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
START_DEADLINE_SECONDS = 90  # two workers import the app at once on a busy 2-core machine


class Server:
    """A running uvicorn: its base URL and the log it writes (stdout and stderr together)."""

    def __init__(self, url: str, log: Path, process: anyio.abc.Process):
        self.url, self.log, self.process = url, log, process

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    async def wait_for_log(self, text: str, seconds: float = 30) -> None:
        """Until the server has logged `text` (its lines are written by another process)."""
        with anyio.fail_after(seconds):
            while True:
                if text in self.log.read_text():
                    return
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
        process.terminate()
        with anyio.move_on_after(20):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


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
