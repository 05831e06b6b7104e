"""What makes a username: one Unicode form, no invisible tricks, one owner per look.

- Normalised to NFKC, so a fullwidth `ａｌｉｃｅ` is `alice` and a composed `bób` is the
  decomposed one.
- Control (Cc) and format (Cf) characters are refused: zero-width spaces and joiners, soft
  hyphens, and the bidirectional controls (`\\u202e` shows `ecila` as `alice`).
- A name that shows nothing (empty or blank once normalised, or only fillers such as U+3164)
  is refused.
- Two names that look alike have the same confusable skeleton (Unicode UTS #39, computed by
  ICU's spoof checker: Cyrillic `а` and Latin `a`, `paypa1` and `paypal`, `rn` and `m`). The
  skeleton is stored beside the name under a unique index, so the database keeps one owner per
  look, against concurrent registrations too.
"""

import unicodedata

import icu

MAX_LENGTH = 50
# Unicode's Bidi_Control characters (all of category Cf; named here for the error message).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
REFUSED_CATEGORIES = {"Cc": "control", "Cf": "format"}

_spoof_checker = icu.SpoofChecker()


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
    """The UTS #39 skeleton of the case-folded name: equal for names that look alike, in any
    case (`АLICE` with a Cyrillic `А` and `alice`). Folding comes first, as for case-insensitive
    identifiers, so a capital `I` is compared as `i` (`Ian` and `lan` do not collide)."""
    skeleton: str = _spoof_checker.getSkeleton(
        0, unicodedata.normalize("NFKC", username).casefold()
    )
    return skeleton
