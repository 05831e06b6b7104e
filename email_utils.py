"""Account mail (password reset, email verification, email changed): plain text and HTML from
Jinja templates, sent over SMTP with aiosmtplib.

A route calls `send_password_reset_email` (or another `send_...`) with its session before it
commits: the mail's job is stored in PostgreSQL in the same transaction (jobs.py), and the
queue's worker sends it (`deliver_mail`), retrying until the SMTP server takes it. Without
MAIL_SERVER, in development only, the mail is logged instead, so a developer can finish the
flow locally (production refuses to start without MAIL_SERVER).
"""

import logging
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from config import settings

logger = logging.getLogger(__name__)

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "email"),
    autoescape=select_autoescape(["html"]),
)

RESET_SUBJECT = "Reset your password"


def reset_link(token: str) -> str:
    return f"{settings.frontend_url.rstrip('/')}/reset-password?token={token}"


def build_email(
    to_email: str, subject: str, template: str, context: dict[str, object]
) -> EmailMessage:
    """A mail in plain text and HTML, from `templates/email/<template>.txt` and `.html`."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to_email
    message["Subject"] = subject
    message.set_content(templates.get_template(f"{template}.txt").render(context))
    message.add_alternative(
        templates.get_template(f"{template}.html").render(context), subtype="html"
    )
    return message


def build_password_reset_email(to_email: str, username: str, token: str) -> EmailMessage:
    context: dict[str, object] = {
        "username": username,
        "link": reset_link(token),
        "minutes": settings.reset_token_expire_minutes,
    }
    return build_email(to_email, RESET_SUBJECT, "password_reset", context)


def log_unsent_link(what: str, to_email: str, subject: str, link: str) -> None:
    """Without MAIL_SERVER: the mail is not sent, and the log says so."""
    if settings.environment != "development":  # production refuses to start without one
        logger.error("MAIL_SERVER is not set; %s to %s not sent", what, to_email)
        return
    # Development only: the developer finishes the flow from the log. A live link is a key to
    # the account, so no other mode ever writes one.
    logger.info(
        "MAIL_SERVER is not set; %s not sent. To: %s Subject: %s Link: %s",
        what,
        to_email,
        subject,
        link,
    )


async def send_password_reset_email(
    db: AsyncSession | None, *, to_email: str, username: str, token: str
) -> None:
    """Queue the reset mail in `db`'s transaction: it goes out once that commits."""
    if not settings.mail_server:
        log_unsent_link("password reset mail", to_email, RESET_SUBJECT, reset_link(token))
        return
    await queue_mail(db, "password_reset", to_email=to_email, username=username, token=token)


VERIFY_SUBJECT = "Verify your email address"


def verification_link(token: str) -> str:
    return f"{settings.frontend_url.rstrip('/')}/verify-email?token={token}"


def build_verification_email(to_email: str, username: str, token: str) -> EmailMessage:
    context: dict[str, object] = {
        "username": username,
        "email": to_email,
        "link": verification_link(token),
        "hours": settings.email_verification_expire_hours,
    }
    return build_email(to_email, VERIFY_SUBJECT, "verify_email", context)


async def send_verification_email(
    db: AsyncSession | None, *, to_email: str, username: str, token: str
) -> None:
    """Queue the link that proves `to_email` is the user's (after registering, after an email
    change, or asked for again) in `db`'s transaction: it goes out once that commits."""
    if not settings.mail_server:
        log_unsent_link("verification mail", to_email, VERIFY_SUBJECT, verification_link(token))
        return
    await queue_mail(db, "verification", to_email=to_email, username=username, token=token)


class MailNotSent(Exception):
    """The SMTP server did not take the mail: the queue runs the job again later."""


async def deliver(message: EmailMessage, what: str) -> None:
    """Send over SMTP; a failure is logged and raised as MailNotSent (the job is retried).

    aiosmtplib ignores a failing QUIT once the server has accepted the mail, so an accepted
    mail never raises here and is never sent twice by a retry."""
    password = settings.mail_password.get_secret_value() if settings.mail_password else None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.mail_server,
            port=settings.mail_port,
            username=settings.mail_username,
            password=password,
            start_tls=settings.mail_use_tls,
            timeout=15,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        logger.exception("Could not send %s to %s", what, message["To"])
        raise MailNotSent(f"{what} to {message['To']}") from error
    else:
        logger.info("%s sent to %s", what.capitalize(), message["To"])


EMAIL_CHANGED_SUBJECT = "Your email address was changed"
EMAIL_CHANGE_PENDING_SUBJECT = "Your email address is about to change"


def build_email_changed_notice(
    to_email: str, username: str, new_email: str, pending: bool = False
) -> EmailMessage:
    """The notice to the old address; `pending`: the change waits for the new address's link
    (EMAIL_VERIFICATION_REQUIRED), so the mail says the old address still holds the account."""
    context: dict[str, object] = {"username": username, "new_email": new_email}
    if pending:
        return build_email(to_email, EMAIL_CHANGE_PENDING_SUBJECT, "email_change_pending", context)
    return build_email(to_email, EMAIL_CHANGED_SUBJECT, "email_changed", context)


async def send_email_changed_notice(
    db: AsyncSession | None,
    *,
    to_email: str,
    username: str,
    new_email: str,
    pending: bool = False,
) -> None:
    """Tell the old address that the account's email changed (or, `pending`, is about to), so a
    hijack does not go unseen; queued in `db`'s transaction, as the other mails."""
    if not settings.mail_server:
        message = build_email_changed_notice(to_email, username, new_email, pending)
        logger.info(
            "MAIL_SERVER is not set; email change notice not sent. To: %s Subject: %s",
            to_email,
            message["Subject"],
        )
        return
    await queue_mail(
        db,
        "email_changed",
        to_email=to_email,
        username=username,
        new_email=new_email,
        pending=pending,
    )


# What the queue's job builds, by the kind `queue_mail` names, and how the log calls it.
MAILS: dict[str, tuple[Callable[..., EmailMessage], str]] = {
    "password_reset": (build_password_reset_email, "password reset mail"),
    "verification": (build_verification_email, "verification mail"),
    "email_changed": (build_email_changed_notice, "email change notice"),
}


async def queue_mail(db: AsyncSession | None, kind: str, **fields: Any) -> None:
    """Store the mail's job in PostgreSQL, in `db`'s transaction (None: committed on return):
    once committed, it is sent even if this process dies the moment after, or the SMTP server
    is down for a while."""
    import jobs  # jobs.py's task calls `deliver_mail`, here

    await jobs.defer_mail(db, kind, fields)


async def deliver_mail(kind: str, fields: dict[str, Any]) -> None:
    """The queue's job: build the mail of that kind and send it (MailNotSent when it fails)."""
    build, what = MAILS[kind]
    await deliver(build(**fields), what)
