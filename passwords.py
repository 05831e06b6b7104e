"""Password rules, after NIST SP 800-63B: long enough, not a known password, not your name.

No composition rules (a digit, a capital...): they make passwords harder to remember, not to
guess. The length (8..1024) is checked by the schemas; this module refuses what an attacker
tries first: the 30,000 most common passwords of leaked dumps (the list shipped with the
`zxcvbn` package), whitespace only, and the account's own username, email or the email's local
part, all compared case-insensitively.
"""

from zxcvbn.frequency_lists import FREQUENCY_LISTS

COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])  # lower-case, most common first

COMMON = "must not be a commonly used password"
BLANK = "must not be only whitespace"
PERSONAL = "must not be the same as the username or email"


def password_problem(password: str) -> str | None:
    """Why the password is refused whoever sets it, or None."""
    if not password.strip():
        return BLANK
    if password.strip().lower() in COMMON_PASSWORDS:
        return COMMON
    return None


def personal_problem(password: str, *, username: str, email: str) -> str | None:
    """Why the password is refused for this account, or None."""
    local_part = email.rpartition("@")[0]
    personal = {username.casefold(), email.casefold(), local_part.casefold()}
    return PERSONAL if password.strip().casefold() in personal else None
