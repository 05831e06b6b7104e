"""Every page parses as HTML without a single error, and what it says in machine form is valid.

html5lib's strict parser raises on any parse error an HTML validator would report as one
(stray end tags, bad nesting, unescaped `<`, control characters); the `datetime` of each
`<time>` must be a valid global date and time string of the HTML standard (at most three
digits of a second's fraction). The pages are filled the way a blog shows off: Markdown with
a table and code, tags, a comment, a search with highlighted words.
"""

import re

import html5lib
import pytest

from tests.conftest import create_test_post

pytestmark = pytest.mark.anyio

SHOWCASE = """# A heading

Some *emphasis*, **strong**, ~~gone~~ and `code`, with a [link](https://example.com).

| language | since |
|---|--:|
| Python | 1991 |

```python
if a < b and c > d:
    pass
```

> A quote, and <b>raw HTML</b> shown as text.
"""
# A valid global date and time string: date, T, time with at most 3 fraction digits, zone.
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})")
TIME_ELEMENT = re.compile(r"<time\b[^>]*\bdatetime=\"([^\"]*)\"")


@pytest.fixture
async def pages(client, alice) -> list[str]:
    user, headers = alice
    post = await create_test_post(client, headers, title="Showing <off> & more", content=SHOWCASE)
    tagged = {"title": "Tagged", "content": "Words about zephyrs.", "tags": ["python", "web"]}
    assert (await client.post("/api/posts", json=tagged, headers=headers)).status_code == 201
    comment = {"content": "A comment with <angle> brackets & an ampersand."}
    url = f"/api/posts/{post['id']}/comments"
    assert (await client.post(url, json=comment, headers=headers)).status_code == 201
    return [
        "/",
        f"/posts/{post['id']}",
        f"/users/{user['id']}/posts",
        "/tags/python",
        "/search?q=zephyrs",
        "/search",
        "/login",
        "/register",
        "/account",
        "/forgot-password",
        "/reset-password?token=abc",
        "/verify-email?token=abc",
        "/posts/999999",  # the error page
    ]


async def test_every_page_parses_without_an_error(client, pages):
    for path in pages:
        response = await client.get(path)
        assert response.headers["content-type"].startswith("text/html"), path
        parser = html5lib.HTMLParser(strict=True)
        try:
            parser.parse(response.text)
        except html5lib.html5parser.ParseError as error:
            pytest.fail(f"{path}: {error}")


async def test_every_time_element_has_a_valid_machine_datetime(client, pages):
    seen = 0
    for path in pages:
        for value in TIME_ELEMENT.findall((await client.get(path)).text):
            assert DATETIME.fullmatch(value), (path, value)
            seen += 1
    assert seen >= 4  # the home page's posts, the post's date and its comment's at least


def test_the_datetime_pattern_refuses_what_the_html_standard_refuses():
    assert DATETIME.fullmatch("2026-12-04T19:00:00.123+00:00")
    assert not DATETIME.fullmatch("2026-12-04T19:00:00.123456+00:00")  # six digits
    assert not DATETIME.fullmatch("2026-12-04 19:00:00")  # no T, no zone


@pytest.mark.parametrize("character", ["\x07", "\x1b", "\x7f", "\x85", "\x9f", "\x0b", "\x0c"])
async def test_control_characters_are_refused_in_titles_content_and_comments(
    client, alice, character
):
    _, headers = alice
    message = f"Value error, must not contain control characters (U+{ord(character):04X})"
    for body in (
        {"title": f"Be{character}ll", "content": "text"},
        {"title": "Bell", "content": f"te{character}xt"},
    ):
        response = await client.post("/api/posts", json=body, headers=headers)
        assert response.status_code == 422
        assert [error["msg"] for error in response.json()["detail"]] == [message]
    post = await create_test_post(client, headers)
    response = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": f"h{character}i"}, headers=headers
    )
    assert response.status_code == 422
    assert [error["msg"] for error in response.json()["detail"]] == [message]
    assert (await client.get("/api/posts")).json()["total"] == 1


async def test_tab_newline_and_carriage_return_stay_allowed(client, alice):
    _, headers = alice
    body = {"title": "Tabs\tare fine", "content": "line one\r\nline two\n\tindented"}
    assert (await client.post("/api/posts", json=body, headers=headers)).status_code == 201
