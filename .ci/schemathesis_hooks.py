"""Hooks for .ci/schemathesis: the numbers its generator never makes.

Python's JSON parser accepts NaN, Infinity, 1e400 (which parses as Infinity) and integers of
any size; schemathesis only generates finite numbers of ordinary size, and its JSON encoder
refuses NaN. One generated JSON object body in four instead goes out as raw JSON text with one of
these in one of its fields (hypothesis picks which; the number of requests stays the same).
"""

import json

import schemathesis
from hypothesis import strategies as st

NASTY_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400, "-1" + "0" * 400]
PLACEHOLDER = "__nasty_number__"


def with_number(body: dict, field: str, number: str) -> bytes:
    """The body as JSON text, one field's value replaced by the raw number."""
    text = json.dumps({**body, field: PLACEHOLDER})
    return text.replace(json.dumps(PLACEHOLDER), number).encode()


@schemathesis.hook
def flatmap_body(context, body):
    if not isinstance(body, dict) or not body:
        return st.just(body)
    nasty = st.builds(
        with_number, st.just(body), st.sampled_from(sorted(body)), st.sampled_from(NASTY_NUMBERS)
    )
    # One body in four: the others stay as generated, so the run keeps its positive cases.
    return st.integers(0, 3).flatmap(lambda n: nasty if n == 0 else st.just(body))
