"""How a run spreads over the cores: the whole suite on pytest-xdist's workers, a part of it in
one process. A plugin of tests/conftest.py.

- The whole suite (`uv run pytest`, or `pytest tests`) runs on a worker per core (`-n auto` in
  addopts). Each worker tests on a database of its own, `<suite database>_gw0`, `_gw1`...: a
  copy (`CREATE DATABASE ... TEMPLATE`) of `<suite database>_template`, which the run makes
  once with the tables before the workers start, and drops at the end. The run must reach the
  coverage threshold of `[tool.coverage.report]` (pytest-cov combines the workers' data).
- A worker takes a test module at a time (`--dist loadfile`: a module's tests share its
  fixtures, such as a server), the longest first: by the time its tests took in the last
  whole run (kept in pytest's cache), or else by their number. So no worker is left with a
  long module at the end while the others idle.
- A part of the suite (a file, a test, `-k`, `--lf`...) runs in one process on the suite's
  database itself: a worker would cost more to start than it saves (each imports the app and
  collects every test). It passes when its tests pass, whatever its coverage, which it does
  not measure unless `--cov-report` asks for a report. `-n` on the command line spreads it
  over workers all the same.

The suite's database is TEST_DATABASE_URL's (tests/conftest.py sets it to the embedded server's
when it starts one, so that the workers use that server too).
"""

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.pool import NullPool

TESTS = Path(__file__).parent
# Set by pytest-xdist in each worker (gw0, gw1...) before it imports anything of the suite.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
# The seconds each test module took in the last whole run, in pytest's cache.
MODULE_SECONDS = "blog/module_seconds"


def own_database_url(suite_url: str) -> str:
    """The database this process tests on: the suite's, or a worker's own copy of it."""
    if WORKER is None:
        return suite_url
    return with_database(suite_url, f"{database_of(suite_url)}_{WORKER}")


def with_database(url: str, database: str) -> str:
    """`url` naming another database of the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def database_of(url: str) -> str:
    database = make_url(url).database
    assert database, f"no database in {url}"
    return database


def template_of(suite_url: str) -> str:
    return f"{database_of(suite_url)}_template"


# --- Which run this is -----------------------------------------------------------------------


def runs_the_whole_suite(config: pytest.Config) -> bool:
    """Every test: no path but the tests' folder, and no option that picks tests (-k, -m
    other than addopts', --lf, --sw, --deselect)."""
    paths = {Path(config.invocation_params.dir, arg).resolve() for arg in config.args}
    addopts = config.getini("addopts")
    marks = addopts[addopts.index("-m") + 1] if "-m" in addopts else ""
    picked = [getattr(config.option, name, None) for name in ("keyword", "lf", "stepwise")]
    picked.append(config.option.deselect)
    return paths == {TESTS} and config.option.markexpr == marks and not any(picked)


def asked_for_workers(config: pytest.Config) -> bool:
    """`-n` or `--numprocesses` on the command line (or in PYTEST_ADDOPTS)."""
    given = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    return any(
        arg.startswith("--numprocesses") or (arg[:2] == "-n" and arg[2:3] != "-")
        for arg in map(str, given)
    )


def is_controller(config: pytest.Config) -> bool:
    """This process hands the tests out to xdist's workers (and runs none itself)."""
    return config.pluginmanager.has_plugin("dsession")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which sets up the workers of -n
def pytest_cmdline_main(config: pytest.Config) -> None:
    if runs_the_whole_suite(config):
        return
    if not asked_for_workers(config):
        config.option.numprocesses = 0  # xdist then runs every test in this process
    coverage = config.pluginmanager.get_plugin("_cov")  # pytest-cov
    if coverage is None or coverage.cov_controller is None:  # --no-cov
        return
    coverage.options.cov_fail_under = None  # the threshold is the whole suite's
    if not any(str(arg).startswith("--cov-report") for arg in config.invocation_params.args):
        # Nor its measure (asked for, it runs as usual): tracing every line doubles the cost
        # of the tests it measures, and of the imports of the app before them.
        coverage.cov_controller.pause()
        coverage.options.no_cov = True


# --- The databases ---------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before xdist starts the workers (its hook is trylast)
def pytest_sessionstart(session: pytest.Session) -> None:
    suite_url = os.environ["TEST_DATABASE_URL"]
    if is_controller(session.config):
        make_template(suite_url)
    elif WORKER is not None:
        recreate(suite_url, database_of(own_database_url(suite_url)), template_of(suite_url))


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown
def pytest_sessionfinish(session: pytest.Session) -> None:
    suite_url = os.environ["TEST_DATABASE_URL"]
    if is_controller(session.config):
        drop(suite_url, template_of(suite_url))
    elif WORKER is not None:
        drop(suite_url, database_of(own_database_url(suite_url)))
    cache = getattr(session.config, "cache", None)  # none with -p no:cacheprovider
    if WORKER is None and runs_the_whole_suite(session.config) and cache is not None:
        cache.set(MODULE_SECONDS, SECONDS)


def make_template(suite_url: str) -> None:
    """The template of the workers' databases: an empty database with the app's tables."""
    from database import Base

    template = template_of(suite_url)
    recreate(suite_url, template)
    engine = create_engine(with_database(suite_url, template), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            Base.metadata.create_all(connection)
    finally:
        engine.dispose()


def recreate(suite_url: str, database: str, template: str | None = None) -> None:
    """A new database `database` (a copy of `template`, if given), in place of any left by a
    run that was killed."""
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin(suite_url) as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{database}"{copy}'))


def drop(suite_url: str, database: str) -> None:
    """Drop `database`, ending any connection still open on it (an app engine's pool)."""
    with admin(suite_url) as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@contextmanager
def admin(suite_url: str) -> Iterator[Connection]:
    """An autocommit connection to the suite's database, for CREATE and DROP DATABASE."""
    engine = create_engine(suite_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


# --- The longest modules first ---------------------------------------------------------------

SECONDS: dict[str, float] = {}  # what each module's tests took in this run


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Setup, call and teardown of every test (a worker's too: xdist reports them here)."""
    module = report.nodeid.split("::", 1)[0]
    SECONDS[module] = SECONDS.get(module, 0.0) + report.duration


@pytest.hookimpl(trylast=True)  # after pytest-randomly has shuffled them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker, the modules in the order xdist is to hand them out: the longest first,
    each module's tests in their shuffled order (the sort is stable)."""
    if WORKER is None:
        return
    cache = getattr(config, "cache", None)
    seconds = cache.get(MODULE_SECONDS, {}) if cache is not None else {}
    tests = Counter(item.nodeid.split("::", 1)[0] for item in items)

    def longest_first(item: pytest.Item) -> tuple[float, int]:
        module = item.nodeid.split("::", 1)[0]
        return -seconds.get(module, 0.0), -tests[module]

    items.sort(key=longest_first)
