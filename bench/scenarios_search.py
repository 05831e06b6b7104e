"""Search: `GET /api/posts?q=` for a rare word and a common one, and the `/search` page,
against the first page of the list (`--only search`).

The group first adds the two words to the seeded posts (one `UPDATE`; PostgreSQL recomputes
their `search_vector`), then runs `VACUUM ANALYZE posts`, as autovacuum would soon. Targets:
the rare word at least half the first page's rate, the common word at least a tenth. The first
page (`list`) is measured here too, unless the reads group measures it.
"""

import psycopg
from runner import Target, run_wrk

RARE_WORD = "quetzal"  # in the title of every 25,000th post: 4 at 100,000 posts
COMMON_WORD = "zephyr"  # in the content of every tenth post: 10,000 at 100,000 posts
SCENARIOS = {
    "search_rare": f"GET /api/posts?q={RARE_WORD}&limit=10, a word in a few posts' titles",
    "search_common": f"GET /api/posts?q={COMMON_WORD}&limit=10, a word in every tenth post",
    "search_page": f"GET /search?q={COMMON_WORD}, the HTML page, words highlighted",
}
TARGETS = [
    Target("search_rare / list", "search_rare", "list", 0.5),
    Target("search_common / list", "search_common", "list", 0.1),
]


def add_search_words(dsn: str) -> None:
    """Put the searched words into some of the seeded posts (their tsvector follows)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """UPDATE posts SET
                 title = CASE WHEN id %% 25000 = 0 THEN title || ' ' || %s ELSE title END,
                 content = CASE WHEN id %% 10 = 0 THEN content || ' ' || %s ELSE content END
               WHERE id %% 10 = 0""",
            (RARE_WORD, COMMON_WORD),
        )
        # As autovacuum would soon: the GIN index's pending list merged, fresh statistics.
        conn.execute("VACUUM ANALYZE posts")


def bench_search(base: str, args, dsn: str, first_page: str, with_list: bool) -> dict:
    """A rare word and a common one against the first page of the list (measured here too,
    `with_list`, unless the reads group did it)."""
    add_search_words(dsn)
    secs, conns = args.seconds, args.connections
    results = {}
    if with_list:
        results["list"] = run_wrk(first_page, secs, conns)
    run_wrk(f"{base}/api/posts?q={COMMON_WORD}&limit=10", 1, conns)  # warm up
    results["search_rare"] = run_wrk(f"{base}/api/posts?q={RARE_WORD}&limit=10", secs, conns)
    results["search_common"] = run_wrk(f"{base}/api/posts?q={COMMON_WORD}&limit=10", secs, conns)
    results["search_page"] = run_wrk(f"{base}/search?q={COMMON_WORD}", secs, conns)
    return results
