"""READ_DATABASE_URL against a real streaming replica: the public reads arrive there, every
write and a user's reads of their own data stay on the primary.

The test makes its own primary and hot standby (tests/servers.py) and runs the app under
uvicorn on them. pg_stat_statements on each server tells which statements ran where.
"""

from collections import Counter

import anyio
import httpx
import psycopg
import pytest

import caching
from database import upgrade_to_head
from tests.servers import Cluster, primary_and_standby, uvicorn_app

pytestmark = pytest.mark.anyio

PASSWORD = "replica password"
STATEMENTS = """SELECT query, calls FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"""


async def statements(cluster: Cluster) -> Counter[str]:
    """How often each statement ran on this server (ours, reading the counts, left out)."""
    url = cluster.url(driver="postgresql")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        rows = await (await connection.execute(STATEMENTS)).fetchall()
    return Counter({query: calls for query, calls in rows if "pg_stat_statements" not in query})


class Ran:
    """The statements each server ran during a `with` block."""

    def __init__(self, primary: Cluster, standby: Cluster):
        self.clusters = {"primary": primary, "standby": standby}
        self.before: dict[str, Counter[str]] = {}
        self.ran: dict[str, Counter[str]] = {}

    async def __aenter__(self) -> "Ran":
        for name, cluster in self.clusters.items():
            self.before[name] = await statements(cluster)
        return self

    async def __aexit__(self, *exc) -> None:
        for name, cluster in self.clusters.items():
            self.ran[name] = await statements(cluster) - self.before[name]

    def calls(self, server: str, *words: str) -> int:
        return sum(n for query, n in self.ran[server].items() if all(w in query for w in words))


@pytest.fixture(scope="module")
async def replicated(tmp_path_factory):
    """The app on a primary and its standby: (HTTP client, primary, standby), for this module
    (each test writes as users of its own, and counts the statements that run meanwhile)."""
    tmp_path = tmp_path_factory.mktemp("replica")
    with primary_and_standby() as (primary, standby):
        await anyio.to_thread.run_sync(upgrade_to_head, primary.url())
        url = primary.url(driver="postgresql")
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
            await connection.execute("CREATE EXTENSION pg_stat_statements")
        env = {
            "DATABASE_URL": primary.url(),
            "READ_DATABASE_URL": standby.url(),
            "RATE_LIMIT_ENABLED": "false",
        }
        async with (
            uvicorn_app(env, tmp_path, args=("--no-access-log",)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            yield client, primary, standby


async def wait_until_listed(client: httpx.AsyncClient, post_id: int) -> None:
    """Until the standby has replayed the post (the list is read there)."""
    with anyio.fail_after(30):
        while True:
            page = (await client.get("/api/posts")).json()
            if post_id in [post["id"] for post in page["posts"]]:
                return
            await anyio.sleep(0.05)


async def test_public_reads_go_to_the_replica_and_the_rest_stays_on_the_primary(replicated):
    client, primary, standby = replicated
    account = {"username": "replicated", "email": "replicated@example.com", "password": PASSWORD}
    async with Ran(primary, standby) as writes:
        user = (await client.post("/api/users", json=account)).json()
        form = {"username": account["email"], "password": PASSWORD}
        token = (await client.post("/api/users/token", data=form)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        post = {"title": "Replicated", "content": "Read from the standby."}
        created = await client.post("/api/posts", json=post, headers=headers)
        assert created.status_code == 201
    assert writes.calls("primary", "INSERT INTO users") == 1
    assert writes.calls("primary", "INSERT INTO posts") == 1
    assert writes.ran["standby"] == Counter()

    post = created.json()
    await wait_until_listed(client, post["id"])  # a post created is readable once replayed

    async with Ran(primary, standby) as public:
        for _ in range(5):
            assert (await client.get("/api/posts")).status_code == 200
            assert (await client.get(f"/api/posts/{post['id']}")).status_code == 200
            assert (await client.get(f"/api/users/{user['id']}/posts")).status_code == 200
    assert public.calls("standby", "FROM posts") >= 15
    assert public.ran["primary"] == Counter()

    async with Ran(primary, standby) as own:
        for _ in range(5):
            me = await client.get("/api/users/me", headers=headers)
            assert me.json()["email"] == account["email"]
    assert own.calls("primary", "FROM users", "WHERE users.id") >= 5
    assert own.ran["standby"] == Counter()


async def test_a_304_is_decided_on_the_replica_s_snapshot(replicated):
    """pg_current_snapshot() works on a hot standby: a client holding the current list gets
    its 304 from the replica, most of them without the list being read again."""
    client, primary, standby = replicated
    account = {"username": "etagreplica", "email": "etagreplica@example.com", "password": PASSWORD}
    await client.post("/api/users", json=account)
    form = {"username": account["email"], "password": PASSWORD}
    token = (await client.post("/api/users/token", data=form)).json()["access_token"]
    post = {"title": "Cached", "content": "Validated on the standby."}
    created = await client.post(
        "/api/posts", json=post, headers={"Authorization": f"Bearer {token}"}
    )
    await wait_until_listed(client, created.json()["id"])
    tag = (await client.get("/api/posts")).headers["etag"]

    async with Ran(primary, standby) as conditional:
        for _ in range(5):
            response = await client.get("/api/posts", headers={"If-None-Match": tag})
            assert response.status_code == 304
    assert conditional.ran["standby"][caching.SNAPSHOT] == 5
    # The first renders the list to compare; the others are answered on the snapshot alone
    # (unless the standby replays something meanwhile: never all five).
    # (The snapshot's query reads posts too: the next scheduled post's time.)
    lists = (
        conditional.calls("standby", "FROM posts") - conditional.ran["standby"][caching.SNAPSHOT]
    )
    assert lists < 5
    assert conditional.ran["primary"] == Counter()
