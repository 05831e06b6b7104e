"""Who may do what: one map from role to the actions it may take on anything, plus ownership.

As Ghost's fixtures and WordPress's capabilities do it, routes ask `can(user, action, target)`
and never test a role's name:

- an author (every new account) acts on what they own: their posts, their comments, and the
  comments under their posts (which they may also moderate and delete);
- an editor also edits, unpublishes and deletes any post, moderates and deletes any comment,
  and sees what is hidden from the public (pending comments, suspended accounts);
- an admin also changes roles and suspends accounts.

A suspended account may do nothing (its requests are refused before they get here anyway).
"""

from collections.abc import Callable
from typing import Literal, Protocol

from config import settings

AUTHOR, EDITOR, ADMIN = "author", "editor", "admin"
ROLES = (AUTHOR, EDITOR, ADMIN)

Action = Literal[
    "edit_post",
    "delete_post",
    "edit_comment",
    "delete_comment",
    "moderate_comment",
    "see_hidden",
    "change_role",
    "suspend",
]

_EDITOR: frozenset[Action] = frozenset(
    {"edit_post", "delete_post", "delete_comment", "moderate_comment", "see_hidden"}
)
# What each role may do to anything, whoever owns it.
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    AUTHOR: frozenset(),
    EDITOR: _EDITOR,
    ADMIN: _EDITOR | {"change_role", "suspend"},
}


class Actor(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def suspended_at(self) -> object: ...


class Owned(Protocol):
    """A post, or anything else a user wrote."""

    @property
    def user_id(self) -> int: ...


class OnAPost(Protocol):
    """A comment, with the post it is under."""

    @property
    def user_id(self) -> int: ...
    @property
    def post(self) -> Owned: ...


def _comment_and_post_authors(comment: OnAPost) -> set[int]:
    return {comment.user_id, comment.post.user_id}


# Whose own target is: who may act on it without a role that allows the action on anything.
OWNERS: dict[Action, Callable[..., set[int]]] = {
    "edit_post": lambda post: {post.user_id},
    "delete_post": lambda post: {post.user_id},
    "edit_comment": lambda comment: {comment.user_id},
    "delete_comment": _comment_and_post_authors,
    "moderate_comment": lambda comment: {comment.post.user_id},
}


def roles_that_may(action: Action) -> tuple[str, ...]:
    """The roles that may take `action` on anything: for a query that asks it of a row."""
    return tuple(role for role, actions in ROLE_ACTIONS.items() if action in actions)


def can(user: Actor | None, action: Action, target: Owned | OnAPost | None = None) -> bool:
    """Whether `user` may take `action` (on `target`, for the actions that have one)."""
    if user is None or user.suspended_at is not None:
        return False
    if action in ROLE_ACTIONS.get(user.role, frozenset()):
        return True
    owners = OWNERS.get(action)
    return target is not None and owners is not None and user.id in owners(target)


class Verifiable(Protocol):
    @property
    def email_verified(self) -> bool: ...


def must_verify_first(user: Verifiable) -> bool:
    """Whether EMAIL_VERIFICATION_REQUIRED holds the user back: they may write drafts, not
    publish or comment (403 `Verify your email address first`)."""
    return bool(settings.email_verification_required) and not user.email_verified
