"""What makes a username: one Unicode form, no invisible tricks, one owner per look.

- Normalised to NFKC, so a fullwidth `ａｌｉｃｅ` is `alice` and a composed `bób` is the
  decomposed one.
- Control (Cc) and format (Cf) characters are refused: zero-width spaces and joiners, soft
  hyphens, and the bidirectional controls (`\\u202e` shows `ecila` as `alice`).
- A name that shows nothing (empty or blank once normalised, or only fillers such as U+3164)
  is refused.
- Two names that look alike have the same confusable skeleton (Unicode UTS #39, computed by
  ICU's spoof checker: Cyrillic `а` and Latin `a`, `paypa1` and `paypal`, `rn` and `m`), with
  the letters that sans-serif fonts draw alike folded together too: `I`, `l`, `1` (and `i`,
  `I`'s own lower case), and `O`, `0`. The skeleton is stored beside the name under a unique
  index, so the database keeps one owner per look, against concurrent registrations too.
"""

import logging
import unicodedata
from collections.abc import Callable

import icu

MAX_LENGTH = 50
# Unicode's Bidi_Control characters (all of category Cf; named here for the error message).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
REFUSED_CATEGORIES = {"Cc": "control", "Cf": "format"}

_spoof_checker = icu.SpoofChecker()
logger = logging.getLogger("alembic.runtime.migration")  # only migrations rename


def normalise_username(value: str) -> str:
    """The stored form of a username, or ValueError saying what is wrong with it."""
    value = unicodedata.normalize("NFKC", value).strip()
    for char in value:
        if char in BIDI_CONTROLS:
            raise ValueError(
                f"must not contain bidirectional control characters (U+{ord(char):04X})"
            )
        kind = REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind:
            raise ValueError(f"must not contain {kind} characters (U+{ord(char):04X})")
    if not username_skeleton(value).strip():
        raise ValueError("must contain a visible character")
    if len(value) > MAX_LENGTH:
        raise ValueError(f"must be at most {MAX_LENGTH} characters once normalised (NFKC)")
    return value


def username_skeleton(username: str) -> str:
    """The UTS #39 skeleton of the case-folded name, case-folded again and with `i` and `l` as
    one letter: equal for names that look alike, in any case (`АLICE` with a Cyrillic `А` and
    `alice`, `aIice` with a capital `I` and `alice`, `b0b` and `BOB`).

    ICU's skeleton maps `1` and `|` to `l` and `0` to `O`, but names are compared case-folded,
    where a capital `I` is an `i`: so `i` joins `l` (and `Ian`, which looks like `lan`, is
    `lan`), and the skeleton is folded once more (`O` is `o`)."""
    skeleton: str = _spoof_checker.getSkeleton(
        0, unicodedata.normalize("NFKC", username).casefold()
    )
    return skeleton.casefold().replace("i", "l")


def rename_look_alikes(
    rows: list[tuple[int, str]], skeleton: Callable[[str], str]
) -> dict[int, tuple[str, str]]:
    """{id: (username, skeleton)} for existing (id, username) rows, each later look-alike of
    an older name renamed to `<name>-<id>` (logged): what a migration that changes the
    skeleton does, since login is by email and nobody is locked out."""
    taken = {skeleton(name) for _id, name in rows}
    lowered = {name.lower() for _id, name in rows}
    seen: set[str] = set()
    result = {}
    for user_id, name in sorted(rows):
        key = skeleton(name)
        if key in seen:
            attempt = 0
            while True:
                suffix = f"-{user_id}" + (f"-{attempt}" if attempt else "")
                candidate = name[: MAX_LENGTH - len(suffix)] + suffix
                candidate_key = skeleton(candidate)
                if candidate_key not in taken and candidate.lower() not in lowered:
                    break
                attempt += 1
            logger.warning(
                "User %s: username %r looks like an older account's; renamed to %r",
                user_id,
                name,
                candidate,
            )
            name, key = candidate, candidate_key
            taken.add(key)
            lowered.add(name.lower())
        seen.add(key)
        result[user_id] = (name, key)
    return result
