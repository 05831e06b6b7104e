"""The account mails (password reset, email verification, the notice of a change): their content,
the log fallback, and real delivery over SMTP."""

import logging
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

import email_utils
from config import settings
from tests.conftest import body_of, deliver_queued_mails, free_port

pytestmark = pytest.mark.anyio

TOKEN = "tok_abc-123"
LINK = f"{settings.frontend_url}/reset-password?token={TOKEN}"


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_sink(monkeypatch):
    """A real SMTP server on loopback, and the app pointed at it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setattr(settings, "mail_server", "127.0.0.1")
    monkeypatch.setattr(settings, "mail_port", controller.port)
    monkeypatch.setattr(settings, "mail_use_tls", False)
    yield inbox
    controller.stop()


def test_reset_mail_has_text_and_html_with_the_link():
    message = email_utils.build_password_reset_email("alice@example.com", "alice", TOKEN)
    assert (message["To"], message["From"]) == ("alice@example.com", settings.mail_from)
    assert message["Subject"] == email_utils.RESET_SUBJECT
    text = body_of(message, "plain")
    html = body_of(message, "html")
    assert "Hello alice" in text and LINK in text
    assert f'href="{LINK}"' in html
    assert "60 minutes" in text


def test_reset_mail_escapes_the_username_in_html():
    message = email_utils.build_password_reset_email("a@example.com", "<b>x</b>", TOKEN)
    html = body_of(message, "html")
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


async def test_without_mail_server_the_mail_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.send_password_reset_email(
            None, to_email="alice@example.com", username="alice", token=TOKEN
        )
    assert "alice@example.com" in caplog.text
    assert LINK in caplog.text


RESET_FIELDS = {"to_email": "alice@example.com", "username": "alice", "token": TOKEN}


async def test_mail_is_delivered_over_smtp(smtp_sink):
    await email_utils.deliver_mail("password_reset", RESET_FIELDS)
    [envelope] = smtp_sink.messages
    assert envelope.rcpt_tos == ["alice@example.com"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == email_utils.RESET_SUBJECT
    assert LINK in body_of(message, "plain")


async def test_smtp_failure_is_logged_and_raised_for_the_queue_to_retry(monkeypatch, caplog):
    monkeypatch.setattr(settings, "mail_server", "127.0.0.1")
    monkeypatch.setattr(settings, "mail_port", 9)  # discard port: nothing listens here
    monkeypatch.setattr(settings, "mail_use_tls", False)
    with pytest.raises(email_utils.MailNotSent):
        await email_utils.deliver_mail("password_reset", RESET_FIELDS)
    assert "Could not send password reset mail to alice@example.com" in caplog.text


async def test_forgot_password_mail_arrives_end_to_end(client, db_session, smtp_sink):
    await client.post(
        "/api/users",
        json={"username": "alice", "email": "alice@example.com", "password": "long enough pw"},
    )
    response = await client.post("/api/users/forgot-password", json={"email": "alice@example.com"})
    assert response.status_code == 202
    assert await deliver_queued_mails(db_session) == 2
    mails = [message_from_bytes(e.content, policy=policy.default) for e in smtp_sink.messages]
    # The registration's verification mail came first.
    assert [mail["Subject"] for mail in mails] == [
        email_utils.VERIFY_SUBJECT,
        email_utils.RESET_SUBJECT,
    ]
    text = body_of(mails[1], "plain")
    token = text.split("token=", 1)[1].split()[0]
    reset = await client.post(
        "/api/users/reset-password", json={"token": token, "new_password": "another long pw"}
    )
    assert reset.status_code == 200


# --- The verification mail and the notice of a change that waits ------------------------------

VERIFY_LINK = f"{settings.frontend_url}/verify-email?token={TOKEN}"


def test_verification_mail_has_text_and_html_with_the_link_and_the_address():
    message = email_utils.build_verification_email("alice@example.com", "alice", TOKEN)
    assert (message["To"], message["From"]) == ("alice@example.com", settings.mail_from)
    assert message["Subject"] == email_utils.VERIFY_SUBJECT
    text = body_of(message, "plain")
    html = body_of(message, "html")
    assert "Hello alice" in text and VERIFY_LINK in text and "alice@example.com" in text
    assert f'href="{VERIFY_LINK}"' in html
    assert f"{settings.email_verification_expire_hours} hours" in text


def test_verification_mail_escapes_the_username_in_html():
    html = body_of(email_utils.build_verification_email("a@example.com", "<b>x</b>", TOKEN), "html")
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


async def test_without_mail_server_the_verification_mail_is_logged_in_development(caplog):
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.send_verification_email(
            None, to_email="alice@example.com", username="alice", token=TOKEN
        )
    assert "verification mail not sent" in caplog.text
    assert "alice@example.com" in caplog.text
    assert VERIFY_LINK in caplog.text


async def test_without_mail_server_outside_development_no_verification_link_is_logged(
    monkeypatch, caplog
):
    monkeypatch.setattr(settings, "environment", "production")
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.send_verification_email(
            None, to_email="alice@example.com", username="alice", token=TOKEN
        )
    assert "verification mail to alice@example.com not sent" in caplog.text
    assert TOKEN not in caplog.text


async def test_verification_mail_is_delivered_over_smtp(smtp_sink):
    await email_utils.deliver_mail("verification", RESET_FIELDS)
    [envelope] = smtp_sink.messages
    assert envelope.rcpt_tos == ["alice@example.com"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == email_utils.VERIFY_SUBJECT
    assert VERIFY_LINK in body_of(message, "plain")


def test_a_waiting_change_notice_says_the_old_address_still_holds_the_account():
    message = email_utils.build_email_changed_notice(
        "alice@example.com", "alice", "alice.new@example.com", pending=True
    )
    assert message["Subject"] == email_utils.EMAIL_CHANGE_PENDING_SUBJECT
    text = body_of(message, "plain")
    assert "alice.new@example.com" in text
    assert "until then, this\naddress stays the account's" in text
    assert "alice.new@example.com" in body_of(message, "html")
    done = email_utils.build_email_changed_notice("alice@example.com", "alice", "n@example.com")
    assert done["Subject"] == email_utils.EMAIL_CHANGED_SUBJECT


async def test_registration_mail_arrives_and_its_link_verifies_end_to_end(
    client, db_session, smtp_sink
):
    account = {"username": "alice", "email": "alice@example.com", "password": "long enough pw"}
    assert (await client.post("/api/users", json=account)).status_code == 201
    assert await deliver_queued_mails(db_session) == 1
    [envelope] = smtp_sink.messages
    assert envelope.rcpt_tos == ["alice@example.com"]
    text = body_of(message_from_bytes(envelope.content, policy=policy.default), "plain")
    token = text.split("/verify-email?token=", 1)[1].split()[0]
    response = await client.post("/api/users/verify-email", json={"token": token})
    assert response.status_code == 200
