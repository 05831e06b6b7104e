"""GET /metrics: Prometheus text, series by route template, one truth across workers."""

import multiprocessing
import os
import subprocess
import threading
from functools import partial

import anyio
import httpx
import pytest
from anyio import wait_all_tasks_blocked
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import text

import auth
import database
import metrics
from config import Settings, settings
from tests.conftest import create_test_post
from tests.servers import requests_per_worker, uvicorn_app, wait_until

pytestmark = pytest.mark.anyio

POST_TEMPLATE = "/api/posts/{post_id}"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, parsed by prometheus-client's own parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


async def scrape(client) -> dict:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


async def test_metrics_parse_with_prometheus_own_parser_and_list_every_series(client):
    await client.get("/health")
    text = (await client.get("/metrics")).text
    names = {family.name for family in text_string_to_metric_families(text)}
    # rate_limit_refusals appears with the first refusal (a test below)
    expected = {"http_requests", "http_request_duration_seconds", "db_connections_in_use"}
    assert expected | {"password_hashes_waiting"} <= names


async def test_requests_for_different_posts_count_in_one_series_of_the_route_template(
    client, alice
):
    _user, headers = alice
    posts = [await create_test_post(client, headers, title=f"Post {n}") for n in range(5)]
    before = await scrape(client)

    for post in posts:
        assert (await client.get(f"/api/posts/{post['id']}")).status_code == 200

    after = await scrape(client)
    labels = {"method": "GET", "route": POST_TEMPLATE}
    counted = value(after, "http_requests_total", **labels, status="200")
    assert counted - value(before, "http_requests_total", **labels, status="200") == len(posts)
    timed = value(after, "http_request_duration_seconds_count", **labels)
    assert timed - value(before, "http_request_duration_seconds_count", **labels) == len(posts)
    routes = {dict(labels)["route"] for _name, labels in after if "route" in dict(labels)}
    assert not [route for route in routes if any(str(post["id"]) in route for post in posts)]


async def test_paths_that_match_no_route_share_one_label(client):
    before = await scrape(client)
    for path in ("/no/such/page/1", "/no/such/page/2", "/api/nothing-here"):
        assert (await client.get(path)).status_code == 404

    after = await scrape(client)
    labels = {"method": "GET", "route": metrics.UNMATCHED, "status": "404"}
    assert (
        value(after, "http_requests_total", **labels)
        - value(before, "http_requests_total", **labels)
        == 3
    )
    assert not [key for key in after if "/no/such" in str(key) or "nothing-here" in str(key)]


async def test_a_mount_is_labelled_by_its_prefix_and_an_unknown_method_by_one_word(client):
    before = await scrape(client)
    assert (await client.get("/static/css/main.css")).status_code == 200
    assert (await client.request("BREW", "/health")).status_code == 405

    after = await scrape(client)
    static = {"method": "GET", "route": "/static/{path}", "status": "200"}
    brew = {"method": "other", "route": "/health", "status": "405"}
    for labels in (static, brew):
        assert value(after, "http_requests_total", **labels) == (
            value(before, "http_requests_total", **labels) + 1
        )
    assert not [key for key in after if "BREW" in str(key) or "main.css" in str(key)]


async def test_rate_limit_refusals_are_counted_per_limit(client, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_enabled", True)
    before = await scrape(client)
    form = {"username": "nobody@example.com", "password": "whatever1"}
    statuses = [(await client.post("/api/users/token", data=form)).status_code for _ in range(12)]
    assert statuses.count(429) == 2

    after = await scrape(client)
    refused = value(after, "rate_limit_refusals_total", scope="login")
    assert refused - value(before, "rate_limit_refusals_total", scope="login") == 2


async def test_connections_in_use_are_reported_per_pool(client):
    async with database.read_engine.connect() as connection:
        await connection.exec_driver_sql("SELECT 1")
        during = await scrape(client)
    after = await scrape(client)
    assert value(during, "db_connections_in_use", pool="read") == 1
    assert value(after, "db_connections_in_use", pool="read") == 0
    assert value(after, "db_connections_in_use", pool="write") == 0


async def test_password_hashes_waiting_counts_the_queue(client):
    release = threading.Event()
    async with anyio.create_task_group() as tg:
        for _ in range(auth.HASH_WORKERS):  # every hashing thread busy
            tg.start_soon(auth._in_hash_pool, release.wait, 30)
        tg.start_soon(partial(auth.hash_password, account=None), "queued password")  # queued
        await wait_all_tasks_blocked()
        try:
            assert value(await scrape(client), "password_hashes_waiting") == 1
        finally:
            release.set()
    assert value(await scrape(client), "password_hashes_waiting") == 0


def test_a_server_folder_outlives_its_workers_but_not_its_server(tmp_path):
    ended = subprocess.Popen(["true"])  # a pid that no longer runs
    ended.wait()
    pid = ended.pid
    live = tmp_path / metrics.process_key(metrics.server_pid())
    stopped = tmp_path / f"{pid}-123"
    for folder in (live, stopped):
        folder.mkdir()
        (folder / f"counter_{pid}.db").write_bytes(b"")
        (folder / f"gauge_livesum_{pid}.db").write_bytes(b"")

    metrics.remove_stopped_servers(tmp_path, keep=live)
    metrics.forget_dead_workers(live)

    assert not stopped.exists()
    assert sorted(path.name for path in live.iterdir()) == [f"counter_{pid}.db"]


def test_process_key_names_a_running_process_only():
    process = subprocess.Popen(["sleep", "30"])
    try:
        key = metrics.process_key(process.pid)
        assert key is not None and key.startswith(f"{process.pid}-")
    finally:
        process.kill()
        process.wait()
    assert metrics.process_key(process.pid) is None


async def test_two_workers_report_one_truth(engine, tmp_path):
    """Requests answered by both workers add up in every scrape, whichever worker answers."""
    async with uvicorn_app({}, tmp_path, workers=2, args=("--no-access-log",)) as server:
        folders = list((tmp_path / "data" / "metrics").iterdir())
        assert len(folders) == 1  # both workers found the server's folder by themselves

        sent = 0
        # The kernel hands each new connection to whichever worker accepts first: send batches
        # of concurrent requests, each on a connection of its own, until both have answered.
        for _batch in range(20):
            async with anyio.create_task_group() as tg:
                for n in range(10):
                    tg.start_soon(get_missing_post, server.url, 10_000_000 + sent + n)
            sent += 10
            if len(requests_per_worker(folders[0], POST_TEMPLATE, 404)) == 2:
                break

        def counted() -> float:  # a worker counts a request once its response has gone out
            return sum(requests_per_worker(folders[0], POST_TEMPLATE, 404).values())

        await wait_until(lambda: counted() == sent)
        assert len(requests_per_worker(folders[0], POST_TEMPLATE, 404)) == 2

        for _ in range(6):  # fresh connections: scrapes answered by either worker
            async with httpx.AsyncClient(base_url=server.url) as fresh:
                scrape = samples((await fresh.get("/metrics")).text)
            labels = {"method": "GET", "route": POST_TEMPLATE, "status": "404"}
            assert value(scrape, "http_requests_total", **labels) == sent


async def get_missing_post(url: str, post_id: int) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get(f"/api/posts/{post_id}")).status_code == 404


async def test_metrics_can_be_turned_off(engine, tmp_path):
    async with (
        uvicorn_app({"METRICS_ENABLED": "false"}, tmp_path) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/api/posts")).status_code == 200
    assert not (tmp_path / "data" / "metrics").exists()


def test_a_configured_folder_is_used_as_given(tmp_path, monkeypatch):
    folder = tmp_path / "given"
    monkeypatch.setattr(settings, "prometheus_multiproc_dir", folder)
    assert metrics.multiprocess_dir() == folder and folder.is_dir()


def test_workers_started_by_a_supervisor_share_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "prometheus_multiproc_dir", None)
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())
    supervisor = metrics.process_key(os.getppid())
    assert metrics.multiprocess_dir() == tmp_path / "metrics" / supervisor


# --- METRICS_TOKEN ---------------------------------------------------------------------------

METRICS_TOKEN = "scrape-token-for-the-suite-only-4f1c2e"
REFUSED = {"detail": "Not authenticated"}


@pytest.fixture
def metrics_token(monkeypatch) -> str:
    monkeypatch.setattr(settings, "metrics_token", SecretStr(METRICS_TOKEN))
    return METRICS_TOKEN


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Basic {METRICS_TOKEN}",
        METRICS_TOKEN,
        f"Bearer {METRICS_TOKEN.upper()}",
        "Bearer scrape-tøken".encode(),  # bytes beyond ASCII: refused, not a 500
    ],
)
async def test_with_a_token_set_a_scrape_without_it_is_refused(
    client, metrics_token, authorization
):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == REFUSED
    assert "http_requests" not in response.text


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_with_a_token_set_a_scrape_with_it_gets_the_metrics(client, metrics_token, scheme):
    response = await client.get("/metrics", headers={"Authorization": f"{scheme} {metrics_token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "http_requests_total" in response.text


async def test_a_token_beyond_ascii_is_compared_as_the_utf8_bytes_sent(client, monkeypatch):
    monkeypatch.setattr(settings, "metrics_token", SecretStr("scrape-tøken"))
    response = await client.get(
        "/metrics", headers={"Authorization": "Bearer scrape-tøken".encode()}
    )
    assert response.status_code == 200


async def test_with_a_token_set_head_is_refused_without_it_too(client, metrics_token):
    assert (await client.head("/metrics")).status_code == 401
    authorized = {"Authorization": f"Bearer {metrics_token}"}
    assert (await client.head("/metrics", headers=authorized)).status_code == 200


async def test_without_a_token_set_anyone_reaching_the_app_may_scrape(client, monkeypatch):
    monkeypatch.setattr(settings, "metrics_token", None)
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/metrics", headers={"Authorization": "Bearer x"})).status_code == 200


def test_the_token_is_read_from_the_environment_and_kept_out_of_reprs(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", METRICS_TOKEN)
    read = Settings(_env_file=None)
    assert read.metrics_token is not None
    assert read.metrics_token.get_secret_value() == METRICS_TOKEN
    assert METRICS_TOKEN not in repr(read)
    monkeypatch.setenv("METRICS_TOKEN", "")  # an empty variable counts as unset
    assert Settings(_env_file=None).metrics_token is None


async def test_a_scrape_answers_without_the_job_counts_when_the_database_cannot_give_them(
    client, monkeypatch, caplog
):
    monkeypatch.setattr(metrics, "COUNT_JOBS", text("SELECT 1 / 0"))  # the query fails
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "http_requests_total" in response.text
    assert "jobs_waiting" not in response.text
    assert "The job counts were left out of /metrics" in caplog.text
