"""A test that leaves a committed row behind fails the whole run, naming the table.

Such a row makes later tests depend on the order they run in (a duplicate username, a count
off by one). The check runs once, when the session's tables are dropped; here a small suite
with one leaking test runs in a process of its own, on a database of its own.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from tests.conftest import TEST_DATABASE_URL

ROOT = Path(__file__).parent.parent


def environment(**settings: str) -> dict[str, str]:
    """The environment of a pytest run of the test's own: this one's, with `settings` on top,
    less an xdist worker's marks (that run would take this worker's database for its own).
    Plugins load only when the conftest asks for them: the schemathesis and hypothesis ones,
    which such a run has no addopts to turn off, take a second to load."""
    inherited = {name: value for name, value in os.environ.items() if "XDIST" not in name}
    return {**inherited, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **settings}


LEAKING_TESTS = """
import pytest
from sqlalchemy import insert

import models

pytestmark = pytest.mark.anyio


async def test_commits_a_user_and_leaves_it(engine):
    async with engine.begin() as conn:
        user = {"username": "leftover", "username_skeleton": "leftover"}
        user |= {"email": "leftover@example.com", "password_hash": "x"}
        await conn.execute(insert(models.User).values(**user))


async def test_rolls_back_what_it_writes(client):
    response = await client.post(
        "/api/users",
        json={"username": "kept", "email": "kept@example.com", "password": "a long password"},
    )
    assert response.status_code == 201
"""


@pytest.fixture
def own_database_url():
    """An empty database on the test server, dropped afterwards."""
    server = make_url(TEST_DATABASE_URL)
    name = f"{server.database}_leftovers_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_row_left_behind_fails_the_run_and_names_its_table(own_database_url, tmp_path):
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_leaks.py").write_text(LEAKING_TESTS)
    env = environment(TEST_DATABASE_URL=own_database_url)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]

    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )

    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    assert "Tests left rows in the test database (users: 1)" in run.stdout


SKIPPING_TESTS = """
import pytest


def test_needs_a_missing_program():
    pytest.skip("no such program on this machine")


def test_runs():
    assert True
"""


@pytest.mark.parametrize(("fail_on_skip", "exit_code"), [("1", 1), ("", 0)])
def test_a_skipped_test_fails_the_run_only_when_fail_on_skip_is_set(
    tmp_path, fail_on_skip, exit_code
):
    """CI sets FAIL_ON_SKIP=1: a machine without a program a test needs cannot pass by skipping
    it; on a developer's machine the skip is reported with its reason."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_skips.py").write_text(SKIPPING_TESTS)
    env = environment(FAIL_ON_SKIP=fail_on_skip)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:randomly"]

    run = subprocess.run(
        command + ["-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == exit_code, run.stdout + run.stderr
    assert "1 passed, 1 skipped" in run.stdout
    assert "no such program on this machine" in run.stdout
