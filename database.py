"""Engine, sessions, the declarative `Base` and the `get_db` dependency."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import (
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


def make_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,  # a connection dropped by a database restart is replaced, not used
        pool_timeout=10,
        # A database that is down answers 503 within seconds instead of holding the request.
        connect_args={"connect_timeout": 5},
    )


engine = make_engine(DATABASE_URL)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_db)]


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
