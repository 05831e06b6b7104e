"""How a run spreads over the cores (tests/parallel.py): what each process tests on, and which
runs count as the whole suite."""

import os
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy import make_url

import metrics
from config import settings
from tests import parallel
from tests.conftest import TEST_DATABASE_URL

ADDOPTS = ["-n", "auto", "-m", "not e2e", "--cov"]


def test_this_process_tests_on_its_own_database():
    suite = make_url(os.environ["TEST_DATABASE_URL"]).database
    own = make_url(TEST_DATABASE_URL).database
    assert own == (suite if parallel.WORKER is None else f"{suite}_{parallel.WORKER}")
    assert make_url(os.environ["DATABASE_URL"]).database == own


def test_this_process_counts_its_metrics_in_a_folder_of_its_own():
    """Not in one that the process starting it made (xdist's controller, for a worker): the
    workers' counts would then add up in each one's scrapes."""
    assert metrics.MULTIPROC_DIR.is_relative_to(settings.data_dir)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(metrics.MULTIPROC_DIR)


def config(*args: str, **options: object) -> pytest.Config:
    """What `runs_the_whole_suite` and `asked_for_workers` read of a run's pytest.Config."""
    root = parallel.TESTS.parent
    chosen = {"keyword": "", "markexpr": "not e2e", "deselect": None, "lf": False} | options
    paths = [arg for arg in args if not arg.startswith("-")] or ["tests"]
    read = SimpleNamespace(
        invocation_params=SimpleNamespace(dir=root, args=args),
        args=paths,
        getini=lambda name: ADDOPTS,
        option=SimpleNamespace(**chosen),
    )
    return cast(pytest.Config, read)


@pytest.mark.parametrize(
    ("args", "options", "whole"),
    [
        ((), {}, True),
        (("tests",), {}, True),
        (("tests/",), {}, True),
        (("-x", "--randomly-seed=3"), {}, True),
        (("tests/test_users.py",), {}, False),
        (("tests/test_users.py::test_register_returns_private_user",), {}, False),
        (("tests/e2e",), {"markexpr": "e2e"}, False),
        ((), {"keyword": "login"}, False),
        ((), {"lf": True}, False),
        ((), {"deselect": ["tests/test_users.py"]}, False),
    ],
)
def test_the_whole_suite_is_every_test_of_the_tests_folder(args, options, whole):
    assert parallel.runs_the_whole_suite(config(*args, **options)) is whole


@pytest.mark.parametrize(
    ("args", "asked"),
    [
        (("tests/test_users.py",), False),
        (("tests/test_users.py", "-n", "2"), True),
        (("tests/test_users.py", "-n2"), True),
        (("tests/test_users.py", "--numprocesses=2"), True),
        (("tests/test_users.py", "--no-cov"), False),
    ],
)
def test_workers_are_asked_for_with_n(args, asked, monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    assert parallel.asked_for_workers(config(*args)) is asked
