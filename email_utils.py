"""Account mail (password reset, email verification, email changed): plain text and HTML from
Jinja templates, sent over SMTP with aiosmtplib.

`queue_mail` stores a mail's job in PostgreSQL (jobs.py); the queue's worker sends it
(`deliver_mail`), retrying until the SMTP server takes it. Without MAIL_SERVER, in development
only, the mail is logged instead, so a developer can finish the flow locally (production
refuses to start without MAIL_SERVER).
"""

import contextlib
import logging
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, select_autoescape

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


async def send_password_reset_email(to_email: str, username: str, token: str) -> None:
    """Runs as a background task: failures are logged, never raised to the client."""
    if not settings.mail_server:
        log_unsent_link("password reset mail", to_email, RESET_SUBJECT, reset_link(token))
        return
    await send_now(build_password_reset_email(to_email, username, token), "password reset mail")


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


async def send_verification_email(to_email: str, username: str, token: str) -> None:
    """Mail the link that proves `to_email` is the user's: after registering, after an email
    change, or asked for again. Runs as a background task: failures are logged, never raised."""
    if not settings.mail_server:
        log_unsent_link("verification mail", to_email, VERIFY_SUBJECT, verification_link(token))
        return
    await send_now(build_verification_email(to_email, username, token), "verification mail")


class MailNotSent(Exception):
    """The SMTP server did not take the mail: the queue runs the job again later."""


async def send_now(message: EmailMessage, what: str) -> None:
    """Send at once; a failure is logged (by `deliver`), never raised."""
    with contextlib.suppress(MailNotSent):
        await deliver(message, what)


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
    to_email: str, username: str, new_email: str, pending: bool = False
) -> None:
    """Tell the old address that the account's email changed (or, `pending`, is about to), so a
    hijack does not go unseen.

    Runs as a background task: failures are logged, never raised to the client.
    """
    if not settings.mail_server:
        message = build_email_changed_notice(to_email, username, new_email, pending)
        logger.info(
            "MAIL_SERVER is not set; email change notice not sent. To: %s Subject: %s",
            to_email,
            message["Subject"],
        )
        return
    await send_now(
        build_email_changed_notice(to_email, username, new_email, pending), "email change notice"
    )


# What the queue's job builds, by the kind `queue_mail` names, and how the log calls it.
MAILS: dict[str, tuple[Callable[..., EmailMessage], str]] = {
    "password_reset": (build_password_reset_email, "password reset mail"),
    "verification": (build_verification_email, "verification mail"),
    "email_changed": (build_email_changed_notice, "email change notice"),
}


async def queue_mail(kind: str, **fields: Any) -> None:
    """Store the mail's job in PostgreSQL (committed on return): it is sent even if this
    process dies the moment after, or the SMTP server is down for a while."""
    import jobs  # jobs.py's task calls `deliver_mail`, here

    await jobs.defer_mail(kind, fields)


async def deliver_mail(kind: str, fields: dict[str, Any]) -> None:
    """The queue's job: build the mail of that kind and send it (MailNotSent when it fails)."""
    build, what = MAILS[kind]
    await deliver(build(**fields), what)
