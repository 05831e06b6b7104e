"""Engines, sessions, the declarative `Base` and the `get_db` / `get_read_db` dependencies.

Every route reaches the database through `get_db`. The public reads take `get_read_db`, a
sub-dependency of it: on the app's own session that is a connection of the read engine (see
`get_read_db`); on any other session (a test's, say) it is that session's own connection. So a
test that overrides `get_db` alone sees every route, reads included, through its session.
"""

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import nullcontext
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated, Any

import anyio
import psycopg
from fastapi import Depends, Request
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql.elements import ClauseElement

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


def make_engine(
    url: str, *, autocommit: bool = False, statement_timeout_ms: int | None = None
) -> AsyncEngine:
    """The app's engine; `autocommit=True` gives the engine of the read-only routes.

    A read of one statement needs no transaction: in autocommit mode PostgreSQL runs it in its
    own snapshot, and the BEGIN before it and the ROLLBACK that resets the connection after it
    (two round trips, each through the greenlet bridge) go away; the benchmark's list serves
    about a third more pages without them. Nothing can be left open on such a connection, so
    the pool skips the reset.

    The read engine also gets a `statement_timeout` (`DB_READ_STATEMENT_TIMEOUT_MS`, sent as a
    startup option: no round trip): a public read that runs longer, because the table is
    locked or the query went wrong at scale, is cancelled by PostgreSQL and answered with a
    503 (errors.py) instead of holding a connection and a core while every other read queues.
    """
    options = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    if autocommit and statement_timeout_ms is None:
        statement_timeout_ms = settings.db_read_statement_timeout_ms
    connect_args: dict[str, object] = {"connect_timeout": 5}
    if statement_timeout_ms:  # 0: no limit, as in PostgreSQL
        connect_args["options"] = f"-c statement_timeout={statement_timeout_ms}"
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        # A database that is down answers 503 within seconds instead of holding the request.
        connect_args=connect_args,
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
    def remember_when_idle(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def ping_if_idle(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.get("idle_since")  # none on a connection just opened
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out a fresh one.
            raise DisconnectionError("the connection was closed while idle") from error


# The key of `Session.info` that holds the read engine of a session made by the app.
READ_ENGINE = "read_engine"


def make_sessionmaker(
    engine: AsyncEngine, read_engine: AsyncEngine
) -> async_sessionmaker[AsyncSession]:
    """Sessions that write on `engine` and hand the public reads a connection of `read_engine`."""
    return async_sessionmaker(engine, expire_on_commit=False, info={READ_ENGINE: read_engine})


engine = make_engine(DATABASE_URL)
# READ_DATABASE_URL: the public reads go to a replica, which may lag the primary by a moment.
read_engine = make_engine(settings.read_database_url or DATABASE_URL, autocommit=True)
SessionLocal = make_sessionmaker(engine, read_engine)


async def get_db() -> AsyncGenerator[AsyncSession]:
    """An ORM session: every route's way to the database (the reads through `get_read_db`).

    A session that holds no transaction holds no connection either (a public read never
    touches it; a write has committed): closing it does no I/O, so it is closed without the
    greenlet switch of `AsyncSession.close()`, which cost a tenth of a list page's CPU.
    """
    session = SessionLocal()
    try:
        yield session
    finally:
        if session.in_transaction():
            await session.close()
        else:
            session.sync_session.close()


SessionDep = Annotated[AsyncSession, Depends(get_db)]


# SQLAlchemy's asyncio pool lets a request that just arrived take a connection handed back
# ahead of the requests already waiting, and a waiter that loses that race goes to the back of
# the queue: under load a few reads waited over a second (p99 1.2 s at a p50 of 3 ms in the
# benchmark). Reads wait for their turn here instead, first come first served (anyio hands a
# freed slot straight to the oldest waiter), so nobody ever waits inside the pool.
_read_turns = anyio.CapacityLimiter(settings.db_pool_size + settings.db_max_overflow)
# Reads that walk thousands of rows (deep pages) take a turn among themselves first, before
# their read turn: one at a time per worker, so however many clients ask for them they hold
# one read connection and a share of the CPU, and every other read keeps the rest.
_deep_read_turns = anyio.CapacityLimiter(1)


class Turn:
    """A slot of a CapacityLimiter, in arrival order; a 503 after POOL_TIMEOUT_SECONDS.

    A free slot is taken at once: anyio hands a freed slot straight to the oldest waiter, so a
    slot is free only when nobody waits. (`acquire_on_behalf_of` would also pass a turn of the
    event loop first, and the timeout's cancel scope: a tenth of the wait-free read's cost.)
    """

    __slots__ = ("borrower", "turns", "what")

    def __init__(self, turns: anyio.CapacityLimiter, what: str):
        self.turns, self.what = turns, what
        self.borrower = object()  # not the task: a dependency's exit may run in another one

    async def __aenter__(self) -> None:
        try:
            self.turns.acquire_on_behalf_of_nowait(self.borrower)
        except anyio.WouldBlock:
            await self.wait()

    async def wait(self) -> None:
        # asyncio's own timeout (the app runs on asyncio): entered and left in half the time
        # of anyio's cancel scope. anyio's limiter gives up the wait when cancelled either way.
        try:
            async with asyncio.timeout(POOL_TIMEOUT_SECONDS):
                await self.turns.acquire_on_behalf_of(self.borrower)
        except TimeoutError:
            raise PoolTimeoutError(f"no {self.what} became free in time") from None

    async def __aexit__(self, *exc_info: object) -> None:
        self.turns.release_on_behalf_of(self.borrower)


def read_turn() -> Turn:
    """A slot for one read connection, in arrival order; a 503 after POOL_TIMEOUT_SECONDS."""
    return Turn(_read_turns, "read connection")


def deep_read_turn() -> Turn:
    """The turn of an expensive read among the others, taken before its `read_turn`."""
    return Turn(_deep_read_turns, "turn for an expensive read")


# The scope keys of the check `before_read` registers, and of `mark_expensive_read`.
BEFORE_READ = "blog.before_read"
EXPENSIVE_READ = "blog.expensive_read"
ReadCheck = Callable[[AsyncConnection], Awaitable[None]]


def before_read(request: Request, check: ReadCheck) -> None:
    """Run `check` on this request's read connection before the route's first query on it
    (caching.py reads the snapshot there, and may answer 304 at once).

    Call it from a dependency that the route declares before the read connection.
    """
    request.scope[BEFORE_READ] = check


async def get_read_db(session: SessionDep, request: Request) -> AsyncGenerator[AsyncConnection]:
    """A Core connection for the public reads (the hottest paths), taken from `get_db`'s session.

    The app's own session carries its read engine: the read gets a connection of it, in
    autocommit mode, after waiting its turn. Nothing else touches the session, so it never
    opens a connection of its own and closing it costs nothing. Any other session (a test's
    override of `get_db`, joined to the test's transaction) is read through directly: the
    reads then see what the test wrote.

    A route that writes with the session and reads with this connection would not see its own
    uncommitted writes here: routes either read here or write with the session, never both.
    The check of `before_read`, if any, runs on the connection before the route reads.
    """
    deep_turn = deep_read_turn() if request.scope.get(EXPENSIVE_READ) else nullcontext()
    own_read_engine = session.info.get(READ_ENGINE)
    check: ReadCheck | None = request.scope.get(BEFORE_READ)
    if own_read_engine is None:
        async with deep_turn:
            connection = await session.connection()
            if check is not None:
                await check(connection)
            yield connection
        return
    async with deep_turn, read_turn(), own_read_engine.connect() as connection:
        if check is not None:
            await check(connection)
        yield connection


def mark_expensive_read(request: Request) -> None:
    """Make this request's read wait for `deep_read_turn()` before it takes a connection.

    Call it from a dependency that the route declares before the read connection. (A mark on
    the request, as `before_read`'s: a dependency on the session, even one already solved,
    costs FastAPI a pass over it on every request.)
    """
    request.scope[EXPENSIVE_READ] = True


def read_from_primary(session: AsyncSession) -> None:
    """Make this request's reads use the session's own connection, on the primary: a reader's
    own data (their drafts) must not wait for a replica to catch up.

    Call it from a dependency that the route declares before the read connection.
    """
    session.info.pop(READ_ENGINE, None)


ReadDep = Annotated[AsyncConnection, Depends(get_read_db)]


# The prebuilt statements of the hottest reads run on psycopg directly (`fetch_all`).
# SQLAlchemy's execution path (its compiled cache, the greenlet bridge, result processing)
# cost a third of the CPU of a page of posts, more than the rest of the query's round trip.
PSYCOPG: PGDialect_psycopg = PGDialect_psycopg()  # type: ignore[no-untyped-call]  # not annotated


@cache
def compiled_for_psycopg(statement: ClauseElement) -> tuple[str, dict[str, Any]]:
    """A statement's SQL, with psycopg's %(name)s parameters, compiled once per statement; and
    the values bound in it when it was built. Integer constants (a LIMIT...) are written into
    the SQL instead (see `fetch_all`)."""
    compiled = statement.compile(dialect=PSYCOPG)
    sql, bound = str(compiled), dict(compiled.params)
    for name, value in list(bound.items()):
        if type(value) is int:
            sql = inline_integer(sql, name, bound.pop(name))
    return sql, bound


def inline_integer(sql: str, name: str, value: int) -> str:
    """`sql` with the parameter `name` written as the integer literal `value` (an int, so
    nothing but digits and a sign reach the SQL)."""
    return sql.replace(f"%({name})s", str(int(value)))


async def fetch_all(
    db: AsyncConnection | AsyncSession,
    statement: ClauseElement,
    params: Mapping[str, Any],
    *,
    inline: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """The rows of a prebuilt SELECT, as tuples, read by psycopg on this connection (or this
    session's).

    For statements built once at import whose parameters and columns need no SQLAlchemy type
    processing (integers, text, booleans, timestamps, arrays of text: psycopg converts them
    itself). Errors are wrapped as SQLAlchemy wraps them, so they answer as any query's (a 503
    for a database that is down or a read that timed out, errors.py).

    The integer parameters named in `inline` (a page's LIMIT and OFFSET) are written into the
    SQL. psycopg prepares a statement it sees again (five times), and PostgreSQL then plans a
    prepared statement once, for any parameters (a generic plan), when that plan is as good as
    one made for the values at hand. With LIMIT and OFFSET unknown it never is: every page was
    planned anew, a quarter of a millisecond of the server's CPU per request. Each page size
    and depth is a statement of its own instead, and the common ones (the first pages) are
    planned once per connection.
    """
    sql, bound = compiled_for_psycopg(statement)
    values = {**bound, **params}
    if inline:
        sql = inline_integers(sql, tuple((name, values.pop(name)) for name in inline))
    connection = db if isinstance(db, AsyncConnection) else await db.connection()
    return await fetch_sql(connection, sql, values)


@lru_cache(maxsize=1024)
def inline_integers(sql: str, values: tuple[tuple[str, int], ...]) -> str:
    """`inline_integer` for each (name, value), remembered for the page sizes and depths seen."""
    for name, value in values:
        sql = inline_integer(sql, name, value)
    return sql


async def fetch_sql(
    connection: AsyncConnection, sql: str, params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """`fetch_all` for SQL written out."""
    sync = connection.sync_connection
    if sync is not None and not sync.invalidated:
        raw = sync.connection  # checked out: at hand, without get_raw_connection's greenlet
    else:
        raw = await connection.get_raw_connection()  # reconnects, or raises as SQLAlchemy does
    driver = raw.driver_connection  # psycopg's AsyncConnection, open: just checked out
    assert driver is not None
    try:
        cursor = await driver.execute(sql, params)
        rows: list[tuple[Any, ...]] = await cursor.fetchall()
    except psycopg.Error as error:
        # psycopg.Error is the DB-API `Error` that SQLAlchemy types as a protocol of its own.
        disconnected = connection.dialect.is_disconnect(error, driver, None)  # type: ignore[arg-type]
        if disconnected:
            # What SQLAlchemy does when its own execution meets a lost server: this connection
            # is thrown away, and every other one opened before now is replaced on checkout.
            connection.sync_engine.pool._invalidate(raw, error)
            await connection.invalidate(error)
        raise DBAPIError.instance(
            sql, params, error, psycopg.Error, connection_invalidated=disconnected
        ) from error
    return rows


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
