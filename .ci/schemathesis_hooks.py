"""Hooks for .ci/schemathesis: the numbers its generator never makes.

Python's JSON parser accepts NaN, Infinity and integers of any size (1e400 parses as
Infinity); schemathesis only generates finite numbers of ordinary size. Each generated JSON
object body may instead carry one of these in one of its fields (hypothesis picks which, so
the number of requests stays the same).
"""

import schemathesis
from hypothesis import strategies as st

NASTY_NUMBERS = [float("nan"), float("inf"), float("-inf"), 10**400, -(10**400)]


def with_number(body: dict, field: str, number: float | int) -> dict:
    return {**body, field: number}


@schemathesis.hook
def flatmap_body(context, body):
    if not isinstance(body, dict) or not body:
        return st.just(body)
    nasty = st.builds(
        with_number, st.just(body), st.sampled_from(sorted(body)), st.sampled_from(NASTY_NUMBERS)
    )
    return st.one_of(st.just(body), nasty)
