"""The argon2 settings set the cost written into each new hash; hashing runs at low priority."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import auth
from config import settings

pytestmark = pytest.mark.anyio


def parameters(hashed: str) -> str:
    """`m=...,t=...,p=...` of an argon2 hash string."""
    return hashed.split("$")[3]


@pytest.fixture
def argon2_settings(monkeypatch):
    def set_costs(time_cost, memory_cost, parallelism):
        monkeypatch.setattr(settings, "argon2_time_cost", time_cost)
        monkeypatch.setattr(settings, "argon2_memory_cost", memory_cost)
        monkeypatch.setattr(settings, "argon2_parallelism", parallelism)

    return set_costs


def test_argon2_settings_are_the_cost_of_new_hashes(argon2_settings):
    argon2_settings(time_cost=2, memory_cost=2048, parallelism=3)
    assert parameters(auth._argon2_hasher().hash("a password")) == "m=2048,t=2,p=3"


def test_unset_argon2_settings_keep_the_recommended_cost(argon2_settings):
    argon2_settings(time_cost=None, memory_cost=None, parallelism=None)
    assert parameters(auth._argon2_hasher().hash("a password")) == "m=65536,t=3,p=4"


def test_one_argon2_setting_changes_only_its_own_cost(argon2_settings):
    argon2_settings(time_cost=None, memory_cost=4096, parallelism=None)
    assert parameters(auth._argon2_hasher().hash("a password")) == "m=4096,t=3,p=4"


def thread_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_password_hashes_run_at_the_configured_low_priority():
    expected = max(os.getpriority(os.PRIO_PROCESS, 0), settings.password_hash_niceness)
    assert await auth._in_hash_pool(thread_niceness) == expected


def test_a_niceness_of_zero_leaves_the_hashing_threads_alone(monkeypatch):
    monkeypatch.setattr(settings, "password_hash_niceness", 0)
    with ThreadPoolExecutor(1, initializer=auth._lower_thread_priority) as pool:
        assert pool.submit(thread_niceness).result(timeout=10) == os.getpriority(os.PRIO_PROCESS, 0)


def test_the_hashing_threads_go_below_a_process_already_run_with_nice(monkeypatch):
    lower = min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)
    monkeypatch.setattr(settings, "password_hash_niceness", lower)
    with ThreadPoolExecutor(1, initializer=auth._lower_thread_priority) as pool:
        assert pool.submit(thread_niceness).result(timeout=10) == lower
