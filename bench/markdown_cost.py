"""CPU time of rendering a post's Markdown, for hostile shapes of the largest content allowed.

    uv run python bench/markdown_cost.py

Each source is 100,000 characters (the schema's maximum) of one shape that costs a
backtracking Markdown parser seconds: long runs of `[`, `![`, `*`, `_`, backticks, `<`, `>`,
nested lists and quotes, link reference definitions, tables with many columns. Each is
rendered as a post is (content.render_post: HTML, sanitised, plus the excerpt's plain text),
three times; the table gives the slowest CPU time (time.process_time) and what came of it.
The target is at most about 0.2 s of CPU for any of them. Exits 1 when one is over 0.2 s.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import content  # noqa: E402  (the app's module, from the project root)

N = 100_000
TARGET_SECONDS = 0.2
DEPTH = content.MAX_NESTING


def cut(text: str) -> str:
    return text[:N]


CORPUS = {
    "`[` x 100,000": "[" * N,
    "`![` x 50,000": "![" * (N // 2),
    "`![[` repeated": cut("![[" * N),
    "`*` x 100,000": "*" * N,
    "`_` x 100,000": "_" * N,
    "backticks x 100,000": "`" * N,
    "`<` x 100,000": "<" * N,
    "`>` x 100,000 (too deep: refused)": ">" * N,
    "`*a` repeated": cut("*a" * N),
    "`**a ` repeated": cut("**a " * N),
    "`_a ` repeated": cut("_a " * N),
    "`*_` repeated": cut("*_" * N),
    "`` `a `` repeated": cut("`a" * N),
    "`a``` repeated": cut("a``" * N),
    "`[a](` repeated": cut("[a](" * N),
    "`[](` repeated": cut("[](" * N),
    "`<a` repeated": cut("<a" * N),
    "`<http://a` repeated": cut("<http://a" * N),
    "`[` x 50,000 then `]` x 50,000": "[" * (N // 2) + "]" * (N // 2),
    "`\\` x 100,000": "\\" * N,
    "`&amp;` repeated": cut("&amp;" * N),
    "`<div>` repeated": cut("<div>" * N),
    f"quotes {DEPTH - 1} deep, repeated": cut(("> " * (DEPTH - 1) + "x\n\n") * N),
    f"lists {DEPTH // 2 - 1} deep, repeated": cut(
        "".join("  " * i + "- x\n" for i in range(DEPTH // 2 - 1)) * N
    ),
    "`1. ` x 33,333 (too deep: refused)": cut("1. " * N),
    "`- a` lines": cut("- a\n" * N),
    "8,000 link reference definitions": cut("".join(f"[a{i}]: /u{i}\n" for i in range(N))),
    "one reference used 30,000 times": cut("[a]: /u\n" + "[a] " * N),
    "a table of 5,000 columns": cut(
        "|" + "a|" * 5000 + "\n|" + "-|" * 5000 + "\n" + ("|" + "b|" * 5000 + "\n") * 20
    ),
    "ordinary prose": cut("Some *words*, a [link](https://example.com) and `code`.\n\n" * N),
}


def cost(source: str) -> tuple[float, str]:
    slowest, outcome = 0.0, ""
    for _ in range(3):
        started = time.process_time()
        try:
            fields = content.render_post(source)
            outcome = f"{len(str(fields['content_html'])):,} bytes of HTML"
        except content.NestedTooDeep:
            outcome = "refused (422)"
        slowest = max(slowest, time.process_time() - started)
    return slowest, outcome


def main() -> None:
    lines = ["| source (100,000 characters) | CPU, slowest of 3 | result |", "|---|---|---|"]
    worst = 0.0
    for name, source in CORPUS.items():
        seconds, outcome = cost(source)
        worst = max(worst, seconds)
        lines.append(f"| {name} | {seconds * 1000:.0f} ms | {outcome} |")
    lines.append(f"\nslowest: {worst * 1000:.0f} ms (target: {TARGET_SECONDS * 1000:.0f} ms)")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.exit(1 if worst > TARGET_SECONDS else 0)


if __name__ == "__main__":
    main()
