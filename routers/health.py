"""Health checks for load balancers and orchestrators."""

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from database import DATABASE_URL
from schemas import Detail, errors

router = APIRouter(prefix="/health", tags=["health"])

# Readiness answers within this, whatever the database does.
READY_TIMEOUT_SECONDS = 5


def make_probe_engine(url: str | URL) -> AsyncEngine:
    """An engine for the readiness check alone, outside the request pools.

    When every pooled connection is busy (a burst of writes), the pools have no connection to
    spare: a check that waited for one would call a working app not ready, and the orchestrator
    would take it out of service just when it is loaded. The check opens a connection of its
    own instead (NullPool: nothing kept between probes), which also proves that PostgreSQL
    still accepts new connections.
    """
    return create_async_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})


probe_engine = make_probe_engine(DATABASE_URL)


def get_probe_engine() -> AsyncEngine:
    return probe_engine


@router.get("")
async def liveness() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/ready", responses=errors(503))
async def readiness(engine: Annotated[AsyncEngine, Depends(get_probe_engine)]) -> dict[str, str]:
    """The process answers and the database does too (on a connection of its own)."""
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Detail.DATABASE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        ) from None
    return {"status": "ok"}
