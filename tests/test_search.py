"""Full-text search: `GET /api/posts?q=`, on the generated tsvector and its GIN index."""

import json
import random

import pytest
from sqlalchemy import text

from content import MARK_END, MARK_START, highlighted
from queries import COUNTED_UP_TO
from routers import pages
from schemas import MAX_SEARCH_LENGTH, one_negation_between_words
from search import RANKED_MATCHES, SearchKind, fetch_headlines, search_statement
from tests.test_feeds import store_as_written_before
from tests.test_query_counts import count_statements

pytestmark = pytest.mark.anyio


async def write(client, headers, title="A post", content="Nothing to see", **fields) -> dict:
    response = await client.post(
        "/api/posts", json={"title": title, "content": content, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def search(client, q: str, **params) -> dict:
    response = await client.get("/api/posts", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def insert_posts(db_session, user_id: int, count: int, title: str, content: str) -> None:
    """`count` published posts, the g-th `g` seconds old; `title` and `content` are SQL
    expressions of g."""
    await db_session.execute(
        text(
            "INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,"
            f" user_id, date_posted, tags) SELECT {title}, {content}, '', '', 1, :user_id,"
            " now() - g * interval '1 second', ARRAY['t' || g % 3]"
            " FROM generate_series(1, :count) g"
        ),
        {"user_id": user_id, "count": count},
    )


def titles(page: dict) -> list[str]:
    return [post["title"] for post in page["posts"]]


async def test_a_title_match_ranks_above_a_content_match_even_when_older(client, alice):
    _, headers = alice
    await write(client, headers, title="About gardens", content="Tomatoes grow here")
    await write(client, headers, title="Tomatoes", content="A post about a vegetable")
    await write(client, headers, title="Newest", content="Mentions tomatoes once")
    page = await search(client, "tomato")
    assert titles(page) == ["Tomatoes", "Newest", "About gardens"]
    assert page["total"] == 3 and page["has_more"] is False


async def test_a_tag_match_ranks_between_title_and_content(client, alice):
    _, headers = alice
    await write(client, headers, title="By tag", content="x", tags=["knitting"])
    await write(client, headers, title="By content", content="I like knitting")
    await write(client, headers, title="Knitting by title", content="x")
    assert titles(await search(client, "knitting")) == ["Knitting by title", "By tag", "By content"]


async def test_equal_relevance_is_newest_first(client, alice):
    _, headers = alice
    for title in ("One walrus", "Two walrus", "Three walrus"):
        await write(client, headers, title=title)
    assert titles(await search(client, "walrus")) == ["Three walrus", "Two walrus", "One walrus"]


async def test_stemming_finds_other_forms_of_a_word(client, alice):
    _, headers = alice
    await write(client, headers, title="I run every day")
    await write(client, headers, title="Nothing here")
    assert titles(await search(client, "running")) == ["I run every day"]
    assert titles(await search(client, "runs")) == ["I run every day"]


async def test_a_quoted_phrase_needs_the_words_in_order(client, alice):
    _, headers = alice
    await write(client, headers, title="Red panda", content="a red panda sleeps")
    await write(client, headers, title="Panda, red", content="the panda is not red")
    assert titles(await search(client, '"red panda"')) == ["Red panda"]
    assert len((await search(client, "red panda"))["posts"]) == 2


async def test_a_minus_excludes_a_word_and_or_takes_either(client, alice):
    _, headers = alice
    await write(client, headers, title="Cats and dogs")
    await write(client, headers, title="Cats alone")
    await write(client, headers, title="Dogs alone")
    assert titles(await search(client, "cats -dogs")) == ["Cats alone"]
    assert set(titles(await search(client, "alone or dogs"))) == {
        "Cats and dogs",
        "Cats alone",
        "Dogs alone",
    }
    assert set(titles(await search(client, "cats dogs"))) == {"Cats and dogs"}


async def test_q_combines_with_tag(client, alice):
    _, headers = alice
    await write(client, headers, title="Python snakes", tags=["animals"])
    await write(client, headers, title="Python code", tags=["code"])
    await write(client, headers, title="Other code", tags=["code"])
    page = await search(client, "python", tag="code")
    assert titles(page) == ["Python code"]
    assert page["total"] == 1


async def test_drafts_are_never_found_not_even_by_their_author(client, alice, bob):
    _, headers = alice
    await write(client, headers, title="Secret zeppelin plan", published=False)
    await write(client, headers, title="Public zeppelin")
    viewers: list[dict[str, str]] = [{}, headers, bob[1]]
    for viewer in viewers:
        response = await client.get("/api/posts", params={"q": "zeppelin"}, headers=viewer)
        assert titles(response.json()) == ["Public zeppelin"]
        assert response.json()["total"] == 1


async def test_an_edited_post_is_found_by_its_new_words_only(client, alice):
    _, headers = alice
    post = await write(client, headers, title="Old words", content="walrus")
    response = await client.patch(
        f"/api/posts/{post['id']}", json={"content": "narwhal", "tags": ["ocean"]}, headers=headers
    )
    assert response.status_code == 200
    assert (await search(client, "walrus"))["total"] == 0
    assert titles(await search(client, "narwhal")) == ["Old words"]
    assert titles(await search(client, "ocean")) == ["Old words"]


async def test_total_and_paging_by_skip(client, alice):
    _, headers = alice
    for n in range(5):
        await write(client, headers, title=f"Lighthouse {n}")
    await write(client, headers, title="Unrelated")
    first = await search(client, "lighthouse", limit=2)
    assert first["total"] == 5 and first["has_more"] is True and len(first["posts"]) == 2
    last = await search(client, "lighthouse", limit=2, skip=4)
    assert titles(last) == ["Lighthouse 0"] and last["has_more"] is False
    past = await search(client, "lighthouse", limit=2, skip=10)
    assert past["posts"] == [] and past["total"] == 5 and past["has_more"] is False


@pytest.mark.parametrize("q", ["the", "the and of", "!!!", "&|!:*()", "   ", '""', "-", "- or"])
async def test_stop_words_or_punctuation_only_give_an_empty_page(client, alice, q):
    _, headers = alice
    await write(client, headers, title="The and of", content="the ! & | : * ( )")
    page = await search(client, q)
    assert (page["posts"], page["total"], page["has_more"]) == ([], 0, False)


@pytest.mark.parametrize(
    "q",
    [
        "'",
        '"',
        '"unclosed phrase',
        "\\",
        "\\\\'; DROP TABLE posts; --",
        "a & b | !c",
        "a:* & (b | c)",
        "foo:A",
        "<->",
        "a <-> b",
        "((((",
        "-" * 200,
        "or or or",
        "x" * 200,
        "é ü 漢字 🙂",
        "\u200b",
    ],
)
async def test_hostile_queries_are_answered(client, alice, q):
    _, headers = alice
    await write(client, headers, title="Some post", content="with some words")
    response = await client.get("/api/posts", params={"q": q})
    assert response.status_code == 200, response.text
    assert response.json()["posts"] == []


@pytest.mark.parametrize("q", ["", "x" * (MAX_SEARCH_LENGTH + 1), "nul \x00 byte"])
async def test_empty_too_long_or_nul_queries_are_422(client, q):
    response = await client.get("/api/posts", params={"q": q})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "q"]


async def test_matches_older_than_the_ranked_ones_are_counted_and_paged_to(
    client, db_session, alice
):
    """The newest RANKED_MATCHES matches are ranked; the older ones follow, newest first."""
    user, _ = alice
    # The oldest match has the word in its title (the best rank), but is outside the newest
    # RANKED_MATCHES: it comes last. The newest ones: content matches; one title match.
    total = RANKED_MATCHES + 50
    title = f"CASE WHEN g IN (10, {total}) THEN 'Quokka ' || g ELSE 'Post ' || g END"
    await insert_posts(db_session, user["id"], total, title, "'a quokka'")
    first = await search(client, "quokka", limit=3)
    assert first["total"] == total
    assert titles(first) == ["Quokka 10", "Post 1", "Post 2"]
    # The page that crosses from the ranked matches to the older ones.
    crossing = await search(client, "quokka", skip=RANKED_MATCHES - 2, limit=4)
    assert titles(crossing) == [
        f"Post {RANKED_MATCHES - 1}",
        f"Post {RANKED_MATCHES}",
        f"Post {RANKED_MATCHES + 1}",
        f"Post {RANKED_MATCHES + 2}",
    ]
    last = await search(client, "quokka", skip=total - 1, limit=5)
    assert titles(last) == [f"Quokka {total}"] and last["has_more"] is False
    # Every match appears once, on some page.
    seen = []
    for skip in range(0, total, 100):
        seen += titles(await search(client, "quokka", skip=skip, limit=100))
    assert len(seen) == len(set(seen)) == total


async def test_total_beyond_the_counted_bound_is_estimated(client, db_session, alice):
    user, _ = alice
    await insert_posts(db_session, user["id"], COUNTED_UP_TO + 500, "'Post ' || g", "'a wombat'")
    await db_session.execute(text("ANALYZE posts"))
    page = await search(client, "wombat", limit=1)
    assert page["total"] >= COUNTED_UP_TO and page["has_more"] is True


async def statements_for_search(client, q: str, **params) -> int:
    """How many queries a search page sends to PostgreSQL."""
    with count_statements() as statements:
        await search(client, q, **params)
    return len(statements)


async def test_a_search_page_is_one_query_two_only_where_it_crosses_to_older_matches(
    client, db_session, alice
):
    """The ranked matches and the total in one query, also on the page that ends with the
    last ranked match, or that reaches past it when no older match exists; a second query
    reads the older matches only when there are some."""
    user, _ = alice
    await insert_posts(db_session, user["id"], RANKED_MATCHES, "'Post ' || g", "'a numbat'")
    assert await statements_for_search(client, "numbat", limit=3) == 1
    assert await statements_for_search(client, "numbat", skip=RANKED_MATCHES - 2, limit=4) == 1
    await insert_posts(db_session, user["id"], 1, "'One more'", "'a numbat'")
    assert await statements_for_search(client, "numbat", skip=RANKED_MATCHES - 2, limit=2) == 1
    assert await statements_for_search(client, "numbat", skip=RANKED_MATCHES - 2, limit=4) == 2


async def test_a_search_that_reaches_the_counted_bound_asks_the_planner_in_one_more_query(
    client, db_session, alice
):
    """Exactly COUNTED_UP_TO matches: the count stopped there, so there may be more; the total
    is the planner's estimate, read in a second query."""
    user, _ = alice
    await insert_posts(db_session, user["id"], COUNTED_UP_TO, "'Post ' || g", "'a bilby'")
    assert await statements_for_search(client, "bilby", limit=1) == 2


# --- an index serves it -----------------------------------------------------------------------


def sequential_scans(plan: list) -> list[dict]:
    """Every sequential scan of an EXPLAIN (FORMAT JSON) plan."""
    found, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", []))
        if node["Node Type"] == "Seq Scan":
            found.append(node)
    return found


async def explain(db_session, kind: SearchKind, **params) -> str:
    """The plan of the statement the route runs, with these parameters."""
    ranked, _, _ = search_statement(kind)
    connection = await db_session.connection()
    compiled = ranked.compile(dialect=connection.dialect)
    values = {**compiled.params, "skip": 0, "limit": 10, "tag": None, **params}
    result = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", values)
    return json.dumps(result.scalar())


@pytest.mark.parametrize("kind", [SearchKind(), SearchKind(by_tag=True)])
async def test_search_reads_the_gin_index_not_the_whole_table(db_session, alice, kind):
    user, _ = alice
    # Enough rows that a sequential scan is not the cheap plan it is on a tiny table: a rare
    # word in 5 posts, a common one in every tenth.
    content = (
        "'lorem ipsum dolor sit amet '"
        " || CASE WHEN g % 10 = 0 THEN 'common ' ELSE '' END"
        " || CASE WHEN g % 4000 = 0 THEN 'rarity ' ELSE '' END"
    )
    await insert_posts(db_session, user["id"], 20_000, "'Post ' || g", content)
    # What autovacuum does: the index's pending list (where fast GIN updates wait) merged into
    # the index, and fresh statistics.
    await db_session.execute(text("SELECT gin_clean_pending_list('ix_posts_search_vector')"))
    await db_session.execute(text("ANALYZE posts"))
    for word in ("rarity", "common"):
        plan = await explain(db_session, kind, q=word, tag="t1")
        assert "ix_posts_search_vector" in plan, plan
        # (The comment counts may read a tiny comments table whole: that is not the search.)
        scanned_whole = {node.get("Relation Name") for node in sequential_scans(json.loads(plan))}
        assert "posts" not in scanned_whole, plan


async def test_many_random_punctuation_queries_are_all_answered(client, alice):
    """Web-search syntax characters in any order and number (runs of `-` once failed in
    PostgreSQL with "tsquery stack too small")."""
    _, headers = alice
    await write(client, headers, title="Some post", content="with some words")
    rng = random.Random(20261126)
    alphabet = "-- -_!\"'()&|:*<>\\/a·²é\t"
    for _ in range(200):
        q = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, MAX_SEARCH_LENGTH)))
        response = await client.get("/api/posts", params={"q": q})
        assert response.status_code == 200, (q, response.text)


# --- the search page --------------------------------------------------------------------------


async def test_the_search_page_marks_the_matching_words(client, alice):
    _, headers = alice
    content = "Some words first. Then the gardener was running in the garden. More words."
    await write(client, headers, title="Running shoes", content=content)
    await write(client, headers, title="Unrelated", content="nothing")
    response = await client.get("/search", params={"q": "run"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<mark>Running</mark> shoes" in response.text
    assert "was <mark>running</mark> in the garden" in response.text
    assert "Unrelated" not in response.text
    assert "1 post found" in response.text


async def test_the_search_page_escapes_titles_and_content(client, alice, db_session):
    _, headers = alice
    post = await write(client, headers)
    # The marks' own characters, as a post stored before the API refused them may hold them.
    await store_as_written_before(
        db_session,
        post["id"],
        title="<script>alert(1)</script> evil \x02 title",
        content='evil <img src=x onerror="alert(2)"> & \x03 text',
    )
    response = await client.get("/search", params={"q": "evil"})
    assert response.status_code == 200
    body = response.text.split('id="search-results"', 1)[1]
    assert "<script>" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>evil</mark>" in body
    assert "\x02" not in body and "\x03" not in body
    assert body.count("<mark>") == body.count("</mark>") == 2


async def test_the_search_page_shows_a_posts_text_not_its_markdown(client, alice):
    _, headers = alice
    content = (
        '# Growing **tomatoes**\n\nSee [the guide](https://example.com/guide "a>b") and'
        " ![a picture](https://example.com/p.png), *sun*.\n\n- one *tomato* & 3 < 4 tomato"
    )
    await write(client, headers, title="Pots", content=content)
    response = await client.get("/search", params={"q": "tomato"})
    assert response.status_code == 200
    excerpt = response.text.split('class="post-excerpt">', 1)[1].split("</p>", 1)[0]
    assert excerpt == (
        "Growing <mark>tomatoes</mark> See the guide and , sun."
        " one <mark>tomato</mark> &amp; 3 &lt; 4 <mark>tomato</mark>"
    )


async def test_headlines_are_only_of_published_posts(client, db_session, alice):
    _, headers = alice
    draft = await write(client, headers, title="Secret zebra", content="zebra", published=False)
    public = await write(client, headers, title="Public zebra", content="zebra")
    headlines = await fetch_headlines(db_session, "zebra", [draft["id"], public["id"]])
    assert list(headlines) == [public["id"]]


async def test_a_post_unpublished_between_the_search_and_its_highlights_shows_unmarked(
    client, db_session, alice, monkeypatch
):
    _, headers = alice
    post = await write(client, headers, title="Quokka facts", content="quokka secrets later")
    real = fetch_headlines

    async def unpublished_meanwhile(db, q, post_ids):
        await db_session.execute(text("UPDATE posts SET published = false, title = 'Hidden'"))
        return await real(db, q, post_ids)

    monkeypatch.setattr(pages, "fetch_headlines", unpublished_meanwhile)
    response = await client.get("/search", params={"q": "quokka"})
    assert response.status_code == 200
    assert f'href="{post["url"]}">Quokka facts</a>' in response.text
    assert "<mark>" not in response.text and "Hidden" not in response.text


async def test_a_search_page_past_the_last_result_links_to_the_first(client, alice):
    _, headers = alice
    await write(client, headers, title="Albatross")
    response = await client.get("/search", params={"q": "albatross", "skip": 10})
    assert response.status_code == 200
    assert "No more posts match past this point" in response.text
    assert 'href="/search?q=albatross">Back to the first results' in response.text
    assert "No posts match your search" not in response.text
    assert "Previous" not in response.text


async def test_a_search_of_spaces_only_shows_only_the_box(client):
    response = await client.get("/search", params={"q": "   "})
    assert response.status_code == 200
    assert 'id="search-results"' not in response.text and "found" not in response.text


async def test_the_search_page_without_q_shows_only_the_box(client):
    response = await client.get("/search")
    assert response.status_code == 200
    assert 'role="search"' in response.text
    assert 'id="search-results"' not in response.text


@pytest.mark.parametrize(
    ("q", "message"),
    [("x" * (MAX_SEARCH_LENGTH + 1), "at most 200 characters"), ("a\x00b", "NUL characters")],
)
async def test_the_search_page_explains_a_query_it_cannot_run(client, q, message):
    response = await client.get("/search", params={"q": q})
    assert response.status_code == 422
    assert "This search cannot be run" in response.text and message in response.text
    assert 'role="search"' in response.text


async def test_the_search_page_pages_with_next_and_previous(client, alice):
    _, headers = alice
    for n in range(12):
        await write(client, headers, title=f"Albatross {n}")
    first = await client.get("/search", params={"q": "albatross"})
    assert first.text.count('class="card post-card"') == 10
    assert 'href="/search?q=albatross&amp;skip=10">Next' in first.text
    assert "Previous" not in first.text
    second = await client.get("/search", params={"q": "albatross", "skip": 10})
    assert second.text.count('class="card post-card"') == 2
    assert 'href="/search?q=albatross&amp;skip=0">Previous' in second.text
    assert ">Next<" not in second.text


@pytest.mark.parametrize("path", ["/", "/posts", "/login", "/search?q=x"])
async def test_every_page_has_the_search_box_in_its_header(client, path):
    response = await client.get(path)
    header = response.text.split("</header>", 1)[0]
    assert 'action="/search"' in header and 'name="q"' in header


# --- pure helpers -----------------------------------------------------------------------------


def test_highlighted_escapes_the_text_and_turns_only_the_marks_into_tags():
    marked = f'{MARK_START}<b>{MARK_END} & "x" {MARK_START}y{MARK_END}'
    assert highlighted(marked) == "<mark>&lt;b&gt;</mark> &amp; &#34;x&#34; <mark>y</mark>"


@pytest.mark.parametrize(
    ("q", "kept"),
    [
        ("-word", "-word"),
        ("web-dev -x", "web-dev -x"),
        ("--word", " -word"),
        ("a - - -b", "a     -b"),
        ('-"-"-x', ' " "-x'),
        ("a" + "-" * 50, "a" + " " * 49 + "-"),
    ],
)
def test_one_negation_is_kept_between_two_words(q, kept):
    assert one_negation_between_words(q) == kept
