"""The SMTP sender against real aiosmtpd servers on 127.0.0.1: STARTTLS when the server offers it (the
certificate checked), AUTH only over TLS, SMTPS from the first byte, and typed outcomes for refusals."""
from __future__ import annotations

import ssl
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from gateway.devtools.simulators.smtp_sink import MailSink
from gateway.providers.smtp import EmailPermanent, EmailRetryable, EmailSender
from tests.factories import tls_files
from tests.helpers import free_port

HOST = "localhost"


class Logins:
    """aiosmtpd authenticator: accepts relay/s3cret-pass and records whether each login came over TLS."""

    def __init__(self):
        self.seen = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.seen.append((auth_data.login, session.ssl is not None))
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"relay", b"s3cret-pass"))


@pytest.fixture
def tls(tmp_path):
    cert, key = tls_files(tmp_path, HOST)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    return server_side, ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def serve():
    """Start a real SMTP server with the given options; stopped at the end."""
    started = []

    def start(**options):
        sink, logins = MailSink(), Logins()
        controller = Controller(sink, hostname="127.0.0.1", port=free_port(), authenticator=logins,
                                auth_require_tls=True, **options)
        controller.start()
        started.append(controller)
        return controller, sink, logins

    yield start
    for controller in started:
        controller.stop(no_assert=True)


def message(to="jane@example.com") -> EmailMessage:
    mail = EmailMessage()
    mail["To"], mail["Subject"], mail["Message-ID"] = to, "Receipt LP1", "<email.request.1.receipt.1@lipa.example>"
    mail.set_content("Thank you.")
    return mail


def sender(port, scheme="smtp", auth="", client_tls=None) -> EmailSender:
    return EmailSender(url=f"{scheme}://{auth}{HOST}:{port}", sender="Lipa <r@lipa.example>", timeout_s=5,
                       tls_context=client_tls)


def test_starttls_when_offered_then_login_over_tls(serve, tls):
    server_side, client_side = tls
    controller, sink, logins = serve(tls_context=server_side)
    assert sender(controller.port, auth="relay:s3cret-pass@", client_tls=client_side).send(message())
    (kept,) = sink.messages()
    assert kept["to"] == ["jane@example.com"] and logins.seen == [(b"relay", True)]


def test_a_certificate_for_another_name_is_refused_and_retried_later(serve, tls, tmp_path):
    server_side, _ = tls
    other, _ = tls_files(tmp_path, "mail.other.example")
    controller, sink, _ = serve(tls_context=server_side)
    with pytest.raises(EmailRetryable):
        sender(controller.port, client_tls=ssl.create_default_context(cafile=str(other))).send(message())
    assert sink.messages() == []


def test_no_password_in_clear_without_starttls(serve):
    controller, sink, logins = serve()
    with pytest.raises(EmailRetryable, match="not sent in clear"):
        sender(controller.port, auth="relay:s3cret-pass@").send(message())
    assert logins.seen == [] and sink.messages() == []
    assert sender(controller.port).send(message())  # no password: plain SMTP is fine
    assert len(sink.messages()) == 1


def test_smtps_is_tls_from_the_first_byte(tls):
    from aiosmtpd.controller import Controller as Plain

    server_side, client_side = tls
    sink = MailSink()
    controller = Plain(sink, hostname="127.0.0.1", port=free_port(), server_hostname=HOST,
                       ssl_context=server_side)
    controller.start()
    try:
        assert sender(controller.port, scheme="smtps", client_tls=client_side).send(message())
    finally:
        controller.stop(no_assert=True)
    assert len(sink.messages()) == 1


def test_a_refusal_at_data_is_retryable_for_4xx_and_permanent_for_5xx(serve):
    controller, sink, _ = serve()
    sink.fail_next(1, 451)
    with pytest.raises(EmailRetryable, match="451"):
        sender(controller.port).send(message())
    sink.fail_next(1, 554)
    with pytest.raises(EmailPermanent, match="554"):
        sender(controller.port).send(message())
    assert sender(controller.port).send(message()) and len(sink.messages()) == 1


def test_nobody_listening_is_retryable():
    with pytest.raises(EmailRetryable, match="ConnectionRefused"):
        sender(free_port()).send(message())
