"""Markdown to safe HTML, the excerpt and the reading time: pure functions, no HTTP."""

import re
from html.parser import HTMLParser

import pytest

from content import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    EXCERPT_LENGTH,
    make_excerpt,
    plain_text,
    reading_time,
    render_markdown,
    render_post,
    sanitize_html,
)

ALLOWED_SCHEMES = ("http:", "https:", "mailto:")


class Elements(HTMLParser):
    """The tags and attributes a browser would build from the HTML (escaped text is none)."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def dangers(html: str) -> list[str]:
    """Whatever in `html` could run script, load a frame or restyle the page."""
    found = []
    for tag, attrs in Elements(html).found:
        if tag not in ALLOWED_TAGS:
            found.append(f"<{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, ()) and name != "rel":
                found.append(f"{tag} {name}")
            if name in ("href", "src"):
                url = re.sub(r"[\x00-\x20]", "", value or "").lower()
                if ":" in url.split("/")[0] and not url.startswith(ALLOWED_SCHEMES):
                    found.append(f"{tag} {name}={value}")
    return found


# Attacks in the class of the OWASP XSS filter evasion cheat sheet, written into Markdown.
HOSTILE_MARKDOWN = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://xss.example/xss.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;&#x61;&#x76;&#x61;script:alert(1))",
    "[click](javascript&colon;alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pic](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![pic](javascript:alert(1))",
    '![x" onerror="alert(1)](https://example.com/a.png)',
    '[x](https://example.com "title" onmouseover="alert(1)")',
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<body onload=alert(1)>",
    '<object data="https://evil.example/x.swf"></object>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "[<img src=x onerror=alert(1)>](https://example.com)",
    "**<b onmouseover=alert(1)>bold</b>**",
    "<!-- --><script>alert(1)</script><!-- -->",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "| a |\n|---|\n| <script>alert(1)</script> |",
    "```html\n<script>alert(1)</script>\n```",
    "<a href='https://ok.example' onclick='alert(1)'>x</a>",
    "[x](file:///etc/passwd)",
]


@pytest.mark.parametrize("source", HOSTILE_MARKDOWN)
def test_hostile_markdown_renders_to_nothing_that_can_run(source):
    html = render_markdown(source)
    assert dangers(html) == [], html


@pytest.mark.parametrize(
    "source", [s for s in HOSTILE_MARKDOWN if s.startswith("<") and "```" not in s]
)
def test_raw_html_in_markdown_is_shown_as_text(source):
    html = render_markdown(source)
    assert "&lt;" in html  # escaped: the reader sees the source, the browser parses no tag


# Raw HTML reaching the sanitiser directly: the second layer stands on its own.
HOSTILE_HTML = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<img src="data:image/png;base64,iVBORw0KGgo=">',
    "<svg><g onload=alert(1)></g></svg>",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<style>@import 'https://evil.example/x.css';</style>",
    '<p style="position:fixed;top:0">overlay</p>',
    '<form action="https://evil.example"><input name="password"></form>',
    "<details open ontoggle=alert(1)>",
    '<a href="https://ok.example" target="_blank">x</a>',
    "<p><b><i>unclosed",
]


@pytest.mark.parametrize("html", HOSTILE_HTML)
def test_the_sanitiser_alone_removes_anything_that_can_run(html):
    cleaned = sanitize_html(html)
    assert dangers(cleaned) == [], cleaned
    assert "style=" not in cleaned and "target=" not in cleaned


def test_script_and_style_lose_their_content_too():
    assert sanitize_html("<script>alert(1)</script><style>p{}</style>ok") == "ok"


def test_broken_nesting_is_closed():
    assert sanitize_html("<p><strong>bold") == "<p><strong>bold</strong></p>"


def test_links_keep_http_https_mailto_and_relative_urls_and_carry_rel():
    html = render_markdown(
        "[a](https://example.com) [b](http://example.com) [c](mailto:me@example.com) [d](/posts/1)"
    )
    for url in ("https://example.com", "http://example.com", "mailto:me@example.com", "/posts/1"):
        assert f'href="{url}" rel="nofollow ugc noopener"' in html


def test_a_link_with_another_scheme_loses_its_address():
    assert "href" not in sanitize_html('<a href="ftp://example.com/file">x</a>')


def test_images_load_only_from_http_or_https():
    assert 'src="https://example.com/a.png"' in render_markdown("![a](https://example.com/a.png)")
    assert "src=" not in render_markdown("![a](/static/a.png)")
    assert "src=" not in sanitize_html('<img src="mailto:me@example.com">')


def test_markdown_renders_commonmark_tables_and_strikethrough():
    html = render_markdown(
        "# Title\n\n*em* **strong** ~~gone~~ `code`\n\n| a | b |\n|---|--:|\n| 1 | 2 |"
    )
    for fragment in ("<h1>Title</h1>", "<em>em</em>", "<strong>strong</strong>", "<del>gone</del>"):
        assert fragment in html
    assert "<code>code</code>" in html
    assert "<td>1</td>" in html and "<td>2</td>" in html  # alignment styles are dropped


def test_code_blocks_keep_their_text_escaped():
    html = render_markdown("```python\nif a < b and c > d: pass\n```")
    assert "<pre><code>if a &lt; b and c &gt; d: pass\n</code></pre>" in html


def test_plain_text_drops_the_markdown_syntax():
    text = plain_text("# Title\n\nSome *em* and **strong** [link](https://x.example).\n\n- a\n- b")
    assert text == "Title Some em and strong link. a b"


def test_plain_text_keeps_raw_html_as_text():
    assert plain_text("a <b>c</b>") == "a <b>c</b>"


def test_a_short_text_is_its_own_excerpt():
    assert make_excerpt("Just a few words.") == "Just a few words."


def test_a_long_text_is_cut_at_a_word_with_an_ellipsis():
    text = " ".join(f"word{i}" for i in range(100))
    excerpt = make_excerpt(text)
    assert len(excerpt) <= EXCERPT_LENGTH
    assert excerpt.endswith("…")
    assert text.startswith(excerpt[:-1])
    assert text[len(excerpt) - 1] == " "  # the cut falls between two words


def test_a_single_huge_word_is_cut_inside_it():
    excerpt = make_excerpt("x" * 500)
    assert excerpt == "x" * (EXCERPT_LENGTH - 1) + "…"


def test_a_text_of_exactly_the_length_is_not_cut():
    assert make_excerpt("y" * EXCERPT_LENGTH) == "y" * EXCERPT_LENGTH


@pytest.mark.parametrize(("words", "minutes"), [(0, 1), (1, 1), (200, 1), (201, 2), (1000, 5)])
def test_reading_time_is_words_over_200_rounded_up_at_least_one(words, minutes):
    assert reading_time(" ".join(["w"] * words)) == minutes


def test_render_post_gives_the_stored_columns():
    fields = render_post("Hello **world**")
    assert fields == {
        "content_html": "<p>Hello <strong>world</strong></p>\n",
        "excerpt": "Hello world",
        "reading_time_minutes": 1,
    }


def test_the_danger_check_itself_sees_live_attacks():
    """The tests above would catch a sanitiser that let these through."""
    assert dangers('<img src=x onerror="alert(1)">') == ["img onerror"]
    assert dangers('<a href=" javascript:alert(1)">x</a>') == ["a href= javascript:alert(1)"]
    assert dangers("<script>alert(1)</script>") == ["<script>"]
    assert dangers("&lt;script&gt;alert(1)&lt;/script&gt;") == []
