"""How the reset mail reaches the SMTP server: login, STARTTLS, and what the log says."""

import logging
from email import message_from_bytes, policy
from unittest.mock import AsyncMock

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import SecretStr

import email_utils
from config import settings
from tests.conftest import body_of, free_port

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

TOKEN = "tok_abc-123"
MAIL_HOST = "127.0.0.2"  # loopback too, but not what "localhost" resolves to
# The fields of a queued mail: what `send_...` stores and the queue's job sends.
RESET = {"to_email": "alice@example.com", "username": "alice", "token": TOKEN}
NOTICE = {"to_email": "old@example.com", "username": "alice", "new_email": "new@example.com"}


def app_log(caplog) -> list[str]:
    """What the mail module logged (not the SMTP server's own lines)."""
    return [record.getMessage() for record in caplog.records if record.name == "email_utils"]


class Inbox:
    """An aiosmtpd handler that keeps what it receives and who logged in to send it."""

    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


@pytest.fixture
def inbox(monkeypatch):
    """A real SMTP server on loopback that wants a login (over a plain connection: a test),
    and the app pointed at it."""
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname=MAIL_HOST,
        port=free_port(),
        authenticator=inbox.authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    monkeypatch.setattr(settings, "mail_server", MAIL_HOST)
    monkeypatch.setattr(settings, "mail_port", controller.port)
    monkeypatch.setattr(settings, "mail_use_tls", False)
    monkeypatch.setattr(settings, "mail_username", "blog-mailer")
    monkeypatch.setattr(settings, "mail_password", SecretStr("smtp password"))
    yield inbox
    controller.stop()


async def test_the_mail_is_sent_with_the_configured_login(inbox, caplog):
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.deliver_mail("password_reset", RESET)

    assert inbox.logins == [("blog-mailer", "smtp password")]
    [envelope] = inbox.messages
    assert envelope.rcpt_tos == ["alice@example.com"]
    mail = message_from_bytes(envelope.content, policy=policy.default)
    assert body_of(mail, "plain").startswith("Hello alice,")
    assert app_log(caplog) == ["Password reset mail sent to alice@example.com"]


async def test_with_tls_required_nothing_is_sent_to_a_server_without_starttls(inbox, caplog):
    """MAIL_USE_TLS: the password never crosses a plain connection."""
    settings.mail_use_tls = True  # restored by the fixture's monkeypatch

    with pytest.raises(email_utils.MailNotSent):
        await email_utils.deliver_mail("password_reset", RESET)

    assert inbox.logins == []
    assert inbox.messages == []
    assert app_log(caplog) == ["Could not send password reset mail to alice@example.com"]


async def test_without_mail_server_the_log_line_has_recipient_subject_and_link(caplog):
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.send_password_reset_email(None, **RESET)

    link = f"{settings.frontend_url}/reset-password?token={TOKEN}"
    assert app_log(caplog) == [
        "MAIL_SERVER is not set; password reset mail not sent. "
        f"To: alice@example.com Subject: Reset your password Link: {link}"
    ]


async def test_the_email_change_notice_goes_to_the_old_address_over_smtp(inbox, caplog):
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.deliver_mail("email_changed", NOTICE)

    [envelope] = inbox.messages
    assert envelope.rcpt_tos == ["old@example.com"]
    mail = message_from_bytes(envelope.content, policy=policy.default)
    assert mail["Subject"] == "Your email address was changed"
    text = body_of(mail, "plain")
    assert text.startswith("Hello alice,") and "new@example.com" in text
    assert app_log(caplog) == ["Email change notice sent to old@example.com"]


async def test_a_notice_that_cannot_be_sent_is_logged_by_name(inbox, caplog):
    settings.mail_use_tls = True  # a server without STARTTLS: restored by the fixture

    with pytest.raises(email_utils.MailNotSent):
        await email_utils.deliver_mail("email_changed", NOTICE)

    assert inbox.messages == []
    assert app_log(caplog) == ["Could not send email change notice to old@example.com"]


async def test_without_mail_server_the_notice_log_line_has_recipient_and_subject(caplog):
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.send_email_changed_notice(
            None, to_email="old@example.com", username="alice", new_email="new@example.com"
        )

    assert app_log(caplog) == [
        "MAIL_SERVER is not set; email change notice not sent. "
        "To: old@example.com Subject: Your email address was changed"
    ]


async def test_outside_development_a_missing_mail_server_is_an_error_without_the_link(
    monkeypatch, caplog
):
    monkeypatch.setattr(settings, "mail_server", None)
    monkeypatch.setattr(settings, "environment", "production")

    await email_utils.send_password_reset_email(None, **RESET)

    [record] = [record for record in caplog.records if record.name == "email_utils"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "MAIL_SERVER is not set; password reset mail to alice@example.com not sent"
    )


async def test_a_mail_server_that_stops_answering_is_given_up_on_after_15_seconds(monkeypatch):
    """A hung server holds the mail's job 15 s, not aiosmtplib's default 60 s."""
    send = AsyncMock()
    monkeypatch.setattr(aiosmtplib, "send", send)
    monkeypatch.setattr(settings, "mail_server", MAIL_HOST)

    await email_utils.deliver_mail("password_reset", RESET)

    [sent] = send.await_args_list
    assert sent.kwargs["timeout"] == 15


def test_a_frontend_url_with_a_trailing_slash_gives_a_clean_link(monkeypatch):
    monkeypatch.setattr(settings, "frontend_url", "https://blog.example.com/")
    message = email_utils.build_password_reset_email("a@example.com", "alice", TOKEN)
    text = body_of(message, "plain")
    assert f"https://blog.example.com/reset-password?token={TOKEN}\n" in text


def test_a_frontend_url_under_a_path_keeps_its_path(monkeypatch):
    monkeypatch.setattr(settings, "frontend_url", "https://example.com/BLOGX/")
    assert (
        email_utils.reset_link(TOKEN) == f"https://example.com/BLOGX/reset-password?token={TOKEN}"
    )
