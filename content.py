"""What a post's Markdown becomes: safe HTML, a plain-text excerpt and a reading time.

Pure functions, called when a post is written (and by the migration that back-fills existing
posts); nothing here touches the database or HTTP.

Two layers, each from a library made for the job:
- markdown-it-py renders CommonMark plus tables and strikethrough (its "js-default" preset).
  That preset has `html` off, so raw HTML in the source comes out as text, and its link
  validator already refuses `javascript:`, `vbscript:` and `file:` URLs.
- nh3 (the Rust ammonia sanitiser) then keeps only an allowlist of tags, attributes and URL
  schemes, whatever the renderer produced: a bug or a plugin in the first layer cannot let a
  script through the second. Links get `rel="nofollow ugc noopener"`.
"""

import math
import re
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape

EXCERPT_LENGTH = 200
WORDS_PER_MINUTE = 200
ELLIPSIS = "…"

_markdown = MarkdownIt("js-default")  # CommonMark + tables + strikethrough; raw HTML is text

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


def _only_web_images(tag: str, attribute: str, value: str) -> str | None:
    """Images load only from http(s) URLs: no relative, mailto: or data: picture."""
    if tag == "img" and attribute == "src" and urlsplit(value).scheme.lower() not in IMAGE_SCHEMES:
        return None
    return value


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


def render_markdown(source: str) -> str:
    """Markdown to HTML that is safe to put in a page as it is."""
    return sanitize_html(_markdown.render(source))


def _text_parts(tokens: list[Token]) -> list[str]:
    """The words a reader sees, in order: inline text and code, without any Markdown syntax."""
    parts: list[str] = []
    for token in tokens:
        if token.type == "inline" and token.children:
            parts.extend(_text_parts(token.children))
        elif token.type in ("text", "code_inline", "code_block", "fence"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak") or token.block:
            parts.append(" ")  # blocks and line breaks separate words
    return parts


_WHITESPACE = re.compile(r"\s+")


def plain_text(source: str) -> str:
    """The text of the Markdown `source`, syntax gone, whitespace collapsed."""
    return _WHITESPACE.sub(" ", "".join(_text_parts(_markdown.parse(source)))).strip()


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


def render_post(source: str) -> dict[str, str | int]:
    """Everything stored next to a post's Markdown, as the columns are named."""
    text = plain_text(source)
    return {
        "content_html": render_markdown(source),
        "excerpt": make_excerpt(text),
        "reading_time_minutes": reading_time(text),
    }


# Search results mark the matching words between these two control characters (PostgreSQL's
# ts_headline, routers/posts.py, after removing any from the text): neither is HTML, so the
# text can be escaped whole and only then the marks made tags.
MARK_START, MARK_END = "\x02", "\x03"


def highlighted(text: str) -> Markup:
    """`text` as safe HTML, its marked words in <mark>."""
    return Markup(str(escape(text)).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))
