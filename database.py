"""Engines, sessions, the declarative `Base` and the `get_db` / `get_read_db` dependencies."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import Depends
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry

from config import settings

# Named constraints make migrations reviewable and let the API map a violation to its message.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url() -> str:
    """The configured database, or an embedded server under `.data/` when none is configured."""
    if settings.database_url:
        return settings.database_url
    from embedded_postgres import start_embedded_postgres

    _server, url = start_embedded_postgres(settings.data_dir / "postgres")
    return url


DATABASE_URL = database_url()
EMBEDDED = settings.database_url is None


# How long a request waits for a free connection before it gets a 503.
POOL_TIMEOUT_SECONDS = 10
# A connection back from the pool after sitting idle this long is pinged before use.
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(url: str, *, autocommit: bool = False) -> AsyncEngine:
    """The app's engine; `autocommit=True` gives the engine of the read-only routes.

    A read of one statement needs no transaction: in autocommit mode PostgreSQL runs it in its
    own snapshot, and the BEGIN before it and the ROLLBACK that resets the connection after it
    (two round trips, each through the greenlet bridge) go away; the benchmark's list serves
    about a third more pages without them. Nothing can be left open on such a connection, so
    the pool skips the reset.
    """
    options = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        # A database that is down answers 503 within seconds instead of holding the request.
        connect_args={"connect_timeout": 5},
        **options,
    )
    ping_after_idle(engine.sync_engine)
    return engine


def ping_after_idle(engine: Engine) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections that sat idle in the pool.

    A connection broken by a database restart or failover is found by a ping on checkout and
    replaced before a request uses it. Pinging every checkout would cost a round trip per
    request (an eighth of the list's throughput), and under load a connection is back in use
    within milliseconds of its last use. If the database restarted in that moment, the request
    on it fails (a 503, nothing written) and SQLAlchemy replaces every connection as old.
    """

    @event.listens_for(engine.pool, "checkin")
    def remember_when_idle(dbapi_connection, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def ping_if_idle(dbapi_connection, record: ConnectionPoolEntry, proxy) -> None:
        idle_since = record.info.get("idle_since")  # none on a connection just opened
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out a fresh one.
            raise DisconnectionError("the connection was closed while idle") from error


engine = make_engine(DATABASE_URL)
# READ_DATABASE_URL: the public reads go to a replica, which may lag the primary by a moment.
read_engine = make_engine(settings.read_database_url or DATABASE_URL, autocommit=True)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_db() -> AsyncIterator[AsyncSession]:
    """An ORM session, for every route that writes (and the reads that need ORM objects)."""
    async with SessionLocal() as session:
        yield session


# SQLAlchemy's asyncio pool lets a request that just arrived take a connection handed back
# ahead of the requests already waiting, and a waiter that loses that race goes to the back of
# the queue: under load a few reads waited over a second (p99 1.2 s at a p50 of 3 ms in the
# benchmark). Reads wait for their turn here instead, first come first served (anyio hands a
# freed slot straight to the oldest waiter), so nobody ever waits inside the pool.
_read_turns = anyio.CapacityLimiter(settings.db_pool_size + settings.db_max_overflow)


@asynccontextmanager
async def read_turn() -> AsyncIterator[None]:
    """A slot for one read connection, in arrival order; a 503 after POOL_TIMEOUT_SECONDS."""
    borrower = object()  # not the task: a dependency's exit may run in another one
    try:
        with anyio.fail_after(POOL_TIMEOUT_SECONDS):
            await _read_turns.acquire_on_behalf_of(borrower)
    except TimeoutError:
        raise PoolTimeoutError("no read connection became free in time") from None
    try:
        yield
    finally:
        _read_turns.release_on_behalf_of(borrower)


async def get_read_db() -> AsyncIterator[AsyncConnection]:
    """A Core connection in autocommit mode, for the public reads: the hottest paths."""
    async with read_turn(), read_engine.connect() as connection:
        yield connection


SessionDep = Annotated[AsyncSession, Depends(get_db)]
ReadDep = Annotated[AsyncConnection, Depends(get_read_db)]


def upgrade_to_head(url: str = DATABASE_URL) -> None:
    """Run the Alembic migrations on `url` up to the latest revision (blocking)."""
    from alembic import command
    from alembic.config import Config

    here = Path(__file__).parent
    config = Config(str(here / "alembic.ini"))
    config.set_main_option("script_location", str(here / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False  # keep the running app's logging as it is
    command.upgrade(config, "head")
