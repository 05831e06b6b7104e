"""What a post's Markdown becomes: safe HTML, a plain-text excerpt and a reading time.

Pure functions, called when a post is written (and by the migration that back-fills existing
posts); nothing here touches the database or HTTP.

Two layers, each from a library made for the job:
- pyromark (Python bindings to pulldown-cmark, the Rust CommonMark parser behind rustdoc and
  mdBook) renders CommonMark plus tables and strikethrough. It parses in time linear in the
  input, whatever its shape: runs of `[`, `![`, `*` or backticks that cost a backtracking
  parser seconds cost it milliseconds. Raw HTML in the source is shown as text: each piece of
  it is escaped in the source before the HTML is made.
- nh3 (the Rust ammonia sanitiser) then keeps only an allowlist of tags, attributes and URL
  schemes, whatever the renderer produced (pulldown-cmark itself keeps any link scheme): a bug
  in the first layer cannot let a script through the second. Links get
  `rel="nofollow ugc noopener"`.

The sanitiser's HTML parser slows down with the depth of the elements it holds open, so a
source that nests more than MAX_NESTING levels (quotes in quotes, lists in lists, emphasis in
emphasis) is refused: `NestedTooDeep`. Nobody writes a quote 33 levels deep; an attacker
writes 50,000.
"""

import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import nh3
import pyromark
from markupsafe import Markup, escape
from pyromark.event import Range

EXCERPT_LENGTH = 200
WORDS_PER_MINUTE = 200
ELLIPSIS = "…"

MAX_NESTING = 32
_OPTIONS = pyromark.Options.ENABLE_TABLES | pyromark.Options.ENABLE_STRIKETHROUGH
# Elements inside a line of text: the others are blocks, which separate words.
_INLINE = frozenset({"Emphasis", "Strong", "Strikethrough", "Link", "Image"})
_RAW_HTML = frozenset({"Html", "InlineHtml"})

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code",
    "em", "strong", "s", "del", "ul", "ol", "li", "a", "img",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
}
# Relative links pass too (nh3 keeps them by default); everything else is dropped.
LINK_SCHEMES = {"http", "https", "mailto"}
IMAGE_SCHEMES = {"http", "https"}


# A picture uploaded for posts on local disk (storage.py's LocalStorage): the one relative
# image source kept. On S3 they have the bucket's http(s) URL, which passes as any other.
LOCAL_POST_IMAGE = re.compile(r"/media/post_images/[0-9a-f]{32}\.webp")


def _only_web_images(tag: str, attribute: str, value: str) -> str | None:
    """Images load only from http(s) URLs and the site's own post pictures: no other relative,
    mailto: or data: picture."""
    if tag != "img" or attribute != "src" or LOCAL_POST_IMAGE.fullmatch(value):
        return value
    return value if urlsplit(value).scheme.lower() in IMAGE_SCHEMES else None


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_only_web_images,
    url_schemes=LINK_SCHEMES,
    link_rel="nofollow ugc noopener",
    strip_comments=True,
)


def sanitize_html(html: str) -> str:
    """Keep only the allowlisted tags, attributes and URL schemes of `html`."""
    return _cleaner.clean(html)


class NestedTooDeep(ValueError):
    """The source nests blocks or emphasis deeper than MAX_NESTING levels."""

    def __init__(self) -> None:
        super().__init__(
            f"must not nest quotes, lists or emphasis more than {MAX_NESTING} levels deep"
        )


def _events(source: str) -> Iterator[tuple[str, Any, Range]]:
    """pulldown-cmark's events as (kind, value, byte range); `NestedTooDeep` as soon as the
    nesting passes MAX_NESTING, before the rest of a hostile source is even looked at."""
    depth = 0
    for event, span in pyromark.events_with_range(source, options=_OPTIONS):
        # Events without a value ("SoftBreak", "Rule") are plain strings.
        kind, value = (event, None) if isinstance(event, str) else next(iter(event.items()))
        if kind == "Start":
            depth += 1
            if depth > MAX_NESTING:
                raise NestedTooDeep
        elif kind == "End":
            depth -= 1
        yield kind, value, span


def _element(value: Any) -> str:
    """The name of a Start or End event's element: "Paragraph", or the key of {"Link": ...}."""
    return value if isinstance(value, str) else next(iter(value))


def _read(source: str) -> tuple[str, str]:
    """One pass over the source: (the source with its raw HTML escaped, its plain text)."""
    encoded = source.encode()
    escaped: list[bytes] = []
    done = 0  # bytes of the source copied to `escaped` so far
    parts: list[str] = []
    in_image = 0  # an image's alt text is not what a reader reads
    for kind, value, span in _events(source):
        if kind in _RAW_HTML:
            start, end = span["start"], span["end"]
            # `&lt;` is text to CommonMark (outside code, where raw HTML never is): the tag is
            # shown as written, and no new tag can appear where none was.
            escaped += [encoded[done:start], encoded[start:end].replace(b"<", b"&lt;")]
            done = end
            parts.append(value)
        elif kind in ("Text", "Code"):
            if not in_image:
                parts.append(value)
        elif kind in ("Start", "End"):
            element = _element(value)
            if element == "Image":
                in_image += 1 if kind == "Start" else -1
            elif element not in _INLINE:
                parts.append(" ")  # blocks separate words
        elif kind in ("SoftBreak", "HardBreak", "Rule"):
            parts.append(" ")
    if escaped:
        source = b"".join([*escaped, encoded[done:]]).decode()
    return source, " ".join("".join(parts).split())


def _render(source: str) -> tuple[str, str]:
    """(safe HTML, plain text) of the Markdown `source`."""
    escaped, text = _read(source)
    return sanitize_html(pyromark.html(escaped, options=_OPTIONS)), text


def render_markdown(source: str) -> str:
    """Markdown to HTML that is safe to put in a page as it is."""
    return _render(source)[0]


def plain_text(source: str) -> str:
    """The text of the Markdown `source`, syntax gone, whitespace collapsed."""
    return _read(source)[1]


def make_excerpt(text: str, length: int = EXCERPT_LENGTH) -> str:
    """At most `length` characters of plain `text`, cut at a word and ended with "…" when cut."""
    if len(text) <= length:
        return text
    cut = text[: length - len(ELLIPSIS) + 1]  # one more: is the cut at the end of a word?
    head = cut.rsplit(" ", 1)[0] if " " in cut else cut[:-1]  # one long word: cut inside it
    return head.rstrip(" .,;:!?-") + ELLIPSIS if head.strip() else cut[:-1] + ELLIPSIS


def reading_time(text: str) -> int:
    """Minutes to read plain `text` at WORDS_PER_MINUTE, at least one."""
    return max(1, math.ceil(len(text.split()) / WORDS_PER_MINUTE))


MAX_SLUG_LENGTH = 80
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(title: str) -> str:
    """The readable part of a post's URL: lowercase ASCII words joined by `-`, at most
    MAX_SLUG_LENGTH characters (cut at a word where one ends in time), `post` when nothing is
    left (a title of emoji or Chinese)."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > MAX_SLUG_LENGTH:
        cut = slug[: MAX_SLUG_LENGTH + 1]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut[:MAX_SLUG_LENGTH]
    return slug.strip("-") or "post"


def render_post(source: str) -> dict[str, str | int]:
    """Everything stored next to a post's Markdown, as the columns are named."""
    html, text = _render(source)
    return {
        "content_html": html,
        "excerpt": make_excerpt(text),
        "reading_time_minutes": reading_time(text),
    }


# Search results mark the matching words between these two control characters (PostgreSQL's
# ts_headline, search.py, after removing any from the text): neither is HTML, so the
# text can be escaped whole and only then the marks made tags.
MARK_START, MARK_END = "\x02", "\x03"


def highlighted(text: str) -> Markup:
    """`text` as safe HTML, its marked words in <mark>."""
    return Markup(str(escape(text)).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))
