"""Request and response models, and every error message the API sends."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, TypeAlias

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    computed_field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from passwords import password_problem
from storage import public_url
from usernames import normalise_username


class Detail:
    """The exact `detail` strings of the API contract."""

    USERNAME_EXISTS = "Username already exists"
    EMAIL_EXISTS = "Email already registered"
    BAD_CREDENTIALS = "Incorrect email or password"
    NOT_AUTHENTICATED = "Not authenticated"
    INVALID_TOKEN = "Invalid or expired token"
    INVALID_REFRESH_TOKEN = "Invalid or expired refresh token"
    CSRF_FAILED = "CSRF token missing or invalid"
    SESSION_NOT_FOUND = "Session not found"
    WRONG_PASSWORD = "Current password is incorrect"
    INVALID_RESET_TOKEN = "Invalid or expired reset token"
    USER_NOT_FOUND = "User not found"
    POST_NOT_FOUND = "Post not found"
    UPDATE_USER_FORBIDDEN = "Not authorized to update this user"
    DELETE_USER_FORBIDDEN = "Not authorized to delete this user"
    UPDATE_PICTURE_FORBIDDEN = "Not authorized to update this user's picture"
    DELETE_PICTURE_FORBIDDEN = "Not authorized to delete this user's picture"
    INVALID_IMAGE = "Invalid image file. Please upload a valid image (JPEG, PNG, GIF, WebP)."
    NO_PICTURE = "No profile picture to delete"
    UPLOAD_FAILED = "Failed to upload image. Please try again."
    UPDATE_POST_FORBIDDEN = "Not authorized to update this post"
    DELETE_POST_FORBIDDEN = "Not authorized to delete this post"
    RATE_LIMITED = "Too many requests. Please try again later."
    DATABASE_UNAVAILABLE = "Service temporarily unavailable. Please try again."
    PASSWORD_CHECKS_BUSY = "Too many password checks in progress. Please try again in a moment."
    IMAGES_BUSY = "Too many pictures are being processed. Please try again in a moment."
    COMMENT_NOT_FOUND = "Comment not found"
    TAG_NOT_FOUND = "Tag not found"
    SITEMAP_NOT_FOUND = "Sitemap not found"
    UPDATE_COMMENT_FORBIDDEN = "Not authorized to update this comment"
    DELETE_COMMENT_FORBIDDEN = "Not authorized to delete this comment"
    INVALID_VERIFICATION_TOKEN = "Invalid or expired verification token"
    EMAIL_ALREADY_VERIFIED = "Email already verified"
    VERIFY_EMAIL_FIRST = "Verify your email address first"
    CHANGE_ROLE_FORBIDDEN = "Not authorized to change roles"
    LAST_ADMIN = "The last admin cannot be demoted"
    SUSPEND_FORBIDDEN = "Not authorized to suspend users"
    SUSPEND_SELF = "Admins cannot suspend themselves"
    ACCOUNT_SUSPENDED = "Account suspended"
    MODERATE_COMMENT_FORBIDDEN = "Not authorized to moderate this comment"
    ALREADY_PUBLISHED = "Post already published: only a draft or a scheduled post takes publish_at"
    SKIP_TOO_DEEP = (
        "skip can be at most 10000. To page further, use cursor pagination: pass the"
        " next_cursor of the previous page as cursor=."
    )
    INVALID_CURSOR = (
        "Invalid cursor: pass the next_cursor of a page unchanged, or leave cursor out to start"
        " from the first page."
    )
    CURSOR_WITH_SKIP = (
        "skip must be 0 with a cursor: the cursor already says where the page starts."
    )
    CURSOR_WITH_SEARCH = (
        "cursor cannot be combined with q: search results are ordered by relevance; page"
        " them with skip."
    )
    IMAGE_QUOTA_EXCEEDED = "Image quota exceeded"
    CONTENT_TOO_MANY_BYTES = (
        "Content must be at most 200000 bytes of UTF-8"
        " (emoji and many non-Latin characters take 3 or 4 bytes each)."
    )


class Message:
    PASSWORD_CHANGED = "Password changed successfully"
    RESET_REQUESTED = (
        "If an account exists with this email, you will receive password reset instructions."
    )
    PASSWORD_RESET = "Password reset successfully. You can now log in with your new password."
    EMAIL_VERIFIED = "Email verified"
    VERIFICATION_SENT = "Verification email sent"
    COMMENT_REPORTED = "Comment reported"


def storable_text(value: str) -> str:
    """JSON can carry NUL characters; PostgreSQL text cannot. (Pydantic's JSON parser already
    refuses unpaired surrogates.)"""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = AfterValidator(storable_text)
# C0 controls other than tab, newline and carriage return, DEL and C1: they show as nothing
# (or a box), and an HTML page may not hold them. NUL is refused by `storable_text` first.
CONTROL_CHARACTERS = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable_text(value: str) -> str:
    if found := CONTROL_CHARACTERS.search(value):
        raise ValueError(f"must not contain control characters (U+{ord(found[0]):04X})")
    return value


Printable = AfterValidator(printable_text)
# NFKC, no control/format/bidi characters, something visible (usernames.py); the database
# keeps one owner per confusable skeleton.
Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
    Text,
    AfterValidator(normalise_username),
]


def acceptable_password(value: str) -> str:
    """Not a common password, not blank (passwords.py)."""
    if problem := password_problem(value):
        raise ValueError(problem)
    return value


# The length alone: registration judges the rules after it has checked that the username and
# email are free (routers/users.py), so a taken email is a 400 whatever the password.
PasswordLength = Annotated[str, Field(min_length=8, max_length=1024), Text]
Password = Annotated[PasswordLength, AfterValidator(acceptable_password)]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Text, Printable
]
# Characters and bytes: 100,000 emoji are 400 KB, and a page of 100 such posts was 40 MB.
MAX_CONTENT_BYTES = 200_000


def within_content_bytes(value: str) -> str:
    # A character takes at most 4 bytes: only long texts need encoding to know.
    if len(value) * 4 > MAX_CONTENT_BYTES and len(value.encode()) > MAX_CONTENT_BYTES:
        raise PydanticCustomError("content_too_many_bytes", Detail.CONTENT_TOO_MANY_BYTES)
    return value


Content = Annotated[
    str,
    Field(min_length=1, max_length=100_000),
    Text,
    AfterValidator(within_content_bytes),
    Printable,
]
Email = Annotated[EmailStr, Field(max_length=320), Text]
CommentText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Text, Printable
]
# A user's few words about themselves: plain text, shown as written (line breaks kept).
MAX_BIO_LENGTH = 500
Bio = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_BIO_LENGTH), Text, Printable
]

MAX_TAGS = 5
TAG_PATTERN = re.compile(r"[a-z0-9-]{1,30}")


def normalize_tag(value: str) -> str:
    """Trimmed and lower-cased, then 1..30 characters of a-z, 0-9 and '-'."""
    tag = value.strip().lower()
    if not TAG_PATTERN.fullmatch(tag):
        raise ValueError("a tag is 1 to 30 characters of a-z, 0-9 and '-'")
    return tag


def normalize_tags(values: list[str]) -> list[str]:
    """Each tag normalised, duplicates dropped, sorted; at most MAX_TAGS distinct ones."""
    tags = sorted({normalize_tag(value) for value in values})
    if len(tags) > MAX_TAGS:
        raise ValueError(f"a post has at most {MAX_TAGS} tags")
    return tags


Tag = Annotated[str, AfterValidator(normalize_tag)]
# The raw list is bounded too (duplicates count there), so no request makes much work.
Tags = Annotated[
    list[Annotated[str, Field(max_length=100)]],
    Field(max_length=20, examples=[["python", "web"]]),
    AfterValidator(normalize_tags),
]


def not_null_in_schema(schema: dict[str, Any]) -> None:
    """The field's JSON schema without null among its types nor as its default."""
    del schema["default"]
    kept = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(kept) == 1:
        schema.update(kept[0])
    elif kept:
        schema["anyOf"] = kept


# A field a partial update may leave out but not set to null (reject_explicit_nulls): its
# schema says so. Validated as `X | None` (one error for a bad value, where a union with
# SkipJsonSchema[None] reported one per member), shown without null.
Omittable: TypeAlias = None
OMITTED: Any = Field(None, json_schema_extra=not_null_in_schema)


class ErrorResponse(BaseModel):
    detail: str


class MessageResponse(BaseModel):
    message: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token lives")
    refresh_token: str = Field(description="Single use: POST /api/users/token/refresh")


class RoleChange(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "editor"}]})

    role: Literal["author", "editor", "admin"]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"refresh_token": "the refresh_token of the last answer"}]}
    )

    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


class CsrfToken(BaseModel):
    csrf_token: str = Field(description="Send it back as X-CSRF-Token on unsafe requests")


class SessionInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: Literal["token", "cookie"]
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str
    current: bool


class UserCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "ada",
                    "email": "ada@example.com",
                    "password": "analytical-engine-1843",
                }
            ]
        }
    )

    username: Username
    email: Email
    # Not a common password, nor the username or email: judged by the route (passwords.py).
    password: PasswordLength


class UserUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"username": "ada_lovelace"}]})

    username: Username | Omittable = OMITTED
    email: Email | Omittable = OMITTED
    bio: Annotated[Bio, Field(description="Plain text, at most 500 characters")] | Omittable = (
        OMITTED
    )
    # Needed only when the email changes: a stolen session alone cannot take over the account.
    current_password: Annotated[str, Field(max_length=1024), Text] | Omittable = OMITTED

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        reject_explicit_nulls(self)
        return self


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "current_password": "analytical-engine-1843",
                    "new_password": "difference-engine-1822",
                }
            ]
        }
    )

    current_password: Annotated[str, Field(max_length=1024), Text]
    new_password: Password


class ForgotPassword(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: Email


class ResetPassword(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "the-token-from-the-mailed-link",
                    "new_password": "difference-engine-1822",
                }
            ]
        }
    )

    token: Annotated[str, Field(min_length=1, max_length=200), Text]
    new_password: Password


class VerifyEmail(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"token": "the-token-from-the-mailed-link"}]}
    )

    token: Annotated[str, Field(min_length=1, max_length=200), Text]


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    image_file: str | None
    role: Literal["author", "editor", "admin"] = "author"
    bio: str = ""
    # When the account was made; null only where a list reads its authors without it.
    created_at: datetime | None = None
    # When an admin suspended the account; only editors and admins ever see such a user.
    suspended_at: datetime | None = Field(default=None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use of @property
    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use of @property
    @property
    def image_path(self) -> str:
        return public_url(self.image_file)


class UserPrivate(UserPublic):
    email: str
    email_verified: bool = False
    # A new address waiting for its verification link (EMAIL_VERIFICATION_REQUIRED), else null.
    pending_email: str | None = None


POST_EXAMPLE: dict[str, JsonValue] = {
    "title": "Notes on the engine",
    "content": "It weaves *algebraic* patterns.",
    "tags": ["history", "computing"],
    "published": True,
}


def a_string(value: object) -> object:
    """A time is sent as text: a number (seconds since 1970, which pydantic would take) is not
    one."""
    if not isinstance(value, str | datetime):
        raise PydanticCustomError("datetime_type", "Input should be a valid datetime string")
    return value


def in_the_future(moment: datetime) -> datetime:
    if moment <= datetime.now(UTC):
        raise PydanticCustomError("datetime_future", "publish_at must be in the future")
    return moment


# When a scheduled post goes out: an RFC 3339 string with its offset (no numbers), later than
# now. The post is a draft until then (see PostResponse).
PublishAt = Annotated[
    AwareDatetime,
    BeforeValidator(a_string),
    AfterValidator(in_the_future),
    Field(description="When the post goes out (a future time with its offset); a draft until then"),
]


def reject_draft_with_schedule(published: bool | None, publish_at: datetime | None) -> None:
    if publish_at is not None and published is False:
        raise ValueError("publish_at schedules the post: it cannot be sent with published false")


class PostCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [POST_EXAMPLE]})

    title: Title
    content: Annotated[Content, Field(description="Markdown")]
    tags: Tags = []
    # Strict: 0, 1 and "false" are refused, not read as booleans the schema does not allow.
    published: StrictBool = Field(True, description="false keeps the post as a draft")
    publish_at: PublishAt | None = None

    @model_validator(mode="after")
    def _schedule_is_not_a_draft(self) -> Self:
        reject_draft_with_schedule(self.published, self.publish_at)
        return self


class PostReplace(BaseModel):
    """PUT: title and content; tags and published stay as they are when left out."""

    model_config = ConfigDict(json_schema_extra={"examples": [POST_EXAMPLE]})

    title: Title
    content: Annotated[Content, Field(description="Markdown")]
    tags: Tags | Omittable = OMITTED
    published: StrictBool | Omittable = OMITTED
    publish_at: PublishAt | None = Field(
        None, description="null: a scheduled post is a draft again"
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        reject_explicit_nulls(self, nullable={"publish_at"})
        reject_draft_with_schedule(self.published, self.publish_at)
        return self


class PostUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"title": "Notes on the Analytical Engine"}]}
    )

    title: Title | Omittable = OMITTED
    content: Content | Omittable = OMITTED
    tags: Tags | Omittable = OMITTED
    published: StrictBool | Omittable = OMITTED
    publish_at: PublishAt | None = Field(
        None, description="null: a scheduled post is a draft again"
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        reject_explicit_nulls(self, nullable={"publish_at"})
        reject_draft_with_schedule(self.published, self.publish_at)
        return self


class PostPreview(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "Some **bold** words."}]})

    content: Annotated[Content, Field(description="Markdown")]


class PreviewResponse(BaseModel):
    content_html: str


class PostImageResponse(BaseModel):
    """An uploaded picture: put `url` in a post's Markdown as `![alt](url)`."""

    url: str
    width: int
    height: int


class PostResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    content: str
    user_id: int
    date_posted: datetime
    author: UserPublic
    content_html: str
    excerpt: str
    reading_time_minutes: int
    tags: list[str]
    published: bool
    comment_count: int
    updated_at: datetime
    # content.slugify(title): the readable part of the post page's address.
    slug: str
    # A scheduled post: when it goes out (its date_posted); null once it is out, or for a draft.
    publish_at: datetime | None = None

    @model_validator(mode="after")
    def _scheduled(self) -> Self:
        """A post published with a date to come (stored so: the public reads filter on the
        clock, queries.py) is a draft until that moment, its `publish_at`."""
        if self.published and self.date_posted > datetime.now(UTC):
            self.published, self.publish_at = False, self.date_posted
        return self

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use of @property
    @property
    def url(self) -> str:
        """The post page's path; any other slug after the id redirects here."""
        return post_path(self.id, self.slug)


def post_path(post_id: int, slug: str) -> str:
    """The path of a post's page: `/posts/{id}/{slug}`."""
    return f"/posts/{post_id}/{slug}"


class PaginatedPosts(BaseModel):
    posts: list[PostResponse]
    total: int
    skip: int
    limit: int
    has_more: bool
    # Where the next page starts (`cursor=`); null on the last page.
    next_cursor: str | None = None


class TagCount(BaseModel):
    name: str
    count: int


class CommentUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "Thank you for this."}]})

    content: Annotated[CommentText, Field(description="Plain text")]


class CommentCreate(CommentUpdate):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"content": "Thank you for this."}, {"content": "Agreed.", "parent_id": 1}]
        }
    )

    parent_id: Annotated[
        int | None,
        Field(
            ge=1,
            le=2**31 - 1,
            description="The comment this one replies to; a reply to a reply answers its"
            " top-level comment (one level deep)",
        ),
    ] = None


class CommentResponse(BaseModel):
    id: int
    post_id: int
    content: str
    date_posted: datetime
    author: UserPublic
    status: Literal["approved", "pending", "hidden"] = "approved"
    # The top-level comment this one replies to; null for a top-level comment.
    parent_id: int | None = None
    reply_count: Annotated[int, Field(description="The replies the viewer sees")] = 0


# The replies a listed comment carries; `reply_count` still counts them all.
MAX_REPLIES_LISTED = 100


class CommentThread(CommentResponse):
    replies: list[CommentResponse] = Field(
        description=f"The first {MAX_REPLIES_LISTED} replies the viewer sees, oldest first"
        " (reply_count counts them all)"
    )


class PaginatedComments(BaseModel):
    """Top-level comments (`total` counts them), each with its replies."""

    comments: list[CommentThread]
    total: int
    skip: int
    limit: int
    has_more: bool


class CommentQueue(BaseModel):
    """Comments waiting for a decision, replies among them (with their parent_id)."""

    comments: list[CommentResponse]
    total: int
    skip: int
    limit: int
    has_more: bool


def reject_explicit_nulls(
    model: BaseModel, nullable: frozenset[str] | set[str] = frozenset()
) -> None:
    """A partial update may leave a field out, but may not set it to null (but `nullable`)."""
    nulls = [name for name in model.model_fields_set - nullable if getattr(model, name) is None]
    if nulls:
        raise ValueError(f"{', '.join(sorted(nulls))} may be omitted but not null")


# Path ids are PostgreSQL integers: anything outside that range is a 422, not a database error.
ResourceId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# An offset makes PostgreSQL walk past every skipped row, on every request: deeper than this,
# clients page with cursors, which cost the same at any depth.
MAX_SKIP = 10_000


def within_skip_limit(skip: int) -> int:
    if skip > MAX_SKIP:
        raise PydanticCustomError("skip_too_deep", Detail.SKIP_TOO_DEEP)
    return skip


Skip = Annotated[
    int,
    # `le` would answer with pydantic's own message; the validator's points to cursors.
    Query(
        ge=0,
        description="At most 10000: page deeper with cursor=",
        json_schema_extra={"maximum": MAX_SKIP},
    ),
    AfterValidator(within_skip_limit),
]
CursorParam = Annotated[
    str | None,
    Query(description="The next_cursor of the previous page: the page right after it"),
]
Limit = Annotated[int | None, Query(ge=1, le=100, description="Defaults to POSTS_PER_PAGE")]
COMMENTS_PER_PAGE = 50
CommentLimit = Annotated[int, Query(ge=1, le=100)]
TagFilter = Annotated[Tag | None, Query(max_length=100, description="Only posts with this tag")]
MAX_SEARCH_LENGTH = 200
# Characters between two words; `_` separates words for PostgreSQL's parser too.
BETWEEN_WORDS = re.compile(r"[\W_]+")


def one_negation_between_words(value: str) -> str:
    """At most one `-` between two words (the last): websearch_to_tsquery nests each `-` as a
    NOT, and past 32 NOTs with no word between them PostgreSQL fails ("tsquery stack too
    small"). A single `-` before a word, and hyphens inside words, are kept."""
    return BETWEEN_WORDS.sub(_last_dash_only, value)


def _last_dash_only(match: re.Match[str]) -> str:
    gap = match.group()
    if gap.count("-") < 2:
        return gap
    last = gap.rindex("-")
    return gap[:last].replace("-", " ") + gap[last:]


# The search page validates its `q` with these same rules (routers/pages.py).
SearchWords = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SEARCH_LENGTH),
    Text,
    AfterValidator(one_negation_between_words),
]
SearchText = Annotated[
    SearchWords | None,
    Query(description='Words to search for: "a phrase", -excluded, this or that'),
]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Document the error statuses a route can answer, with the shared error body."""
    return {code: {"model": ErrorResponse} for code in codes}


# The login form is FastAPI's OAuth2PasswordRequestForm: its example joins the operation here.
LOGIN_FORM_OPENAPI = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "example": {"username": "ada@example.com", "password": "analytical-engine-1843"}
            }
        }
    }
}
