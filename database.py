"""Engine, sessions, the declarative `Base` and the `get_db` dependency."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

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


def make_engine(url: str, *, autocommit: bool = False) -> AsyncEngine:
    """The app's engine; `autocommit=True` gives the engine of the read-only routes.

    A read of one statement needs no transaction: in autocommit mode PostgreSQL runs it in its
    own snapshot, and the BEGIN before it and the ROLLBACK that resets the connection after it
    (two round trips, each through the greenlet bridge) go away. That is a third of the list's
    cost. Nothing can be left open on such a connection, so the pool skips the reset.
    """
    options = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,  # a connection dropped by a database restart is replaced, not used
        pool_timeout=10,
        # A database that is down answers 503 within seconds instead of holding the request.
        connect_args={"connect_timeout": 5},
        **options,
    )


engine = make_engine(DATABASE_URL)
read_engine = make_engine(DATABASE_URL, autocommit=True)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_db() -> AsyncIterator[AsyncSession]:
    """An ORM session, for every route that writes (and the reads that need ORM objects)."""
    async with SessionLocal() as session:
        yield session


async def get_read_db() -> AsyncIterator[AsyncConnection]:
    """A Core connection in autocommit mode, for the public reads: the hottest paths."""
    async with read_engine.connect() as connection:
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
