"""The one adapter over an SMTP server (issue 16): one prepared message to one address, typed outcomes.

Python's own smtplib: SMTP is a stable, small protocol, the standard library speaks all of it that a
relay needs (STARTTLS, AUTH, SMTPS), and it adds no dependency. On ``smtp://`` the connection is upgraded
with STARTTLS whenever the server offers it; ``smtps://`` is TLS from the first byte. Outcomes:
- refused for good (5xx to the sender or the recipient, a malformed address): ``EmailPermanent``;
- anything else (connection refused or reset, timeouts, 4xx, login refused, TLS trouble): ``EmailRetryable``,
  so a server that is down is tried again later, as an SMS provider is.
The password is never logged (shared.logsafe hides it) and recipients only masked.
"""
from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage

from shared.errors import SendFailed
from shared.mailaddr import mask_email, smtp_parts

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 15.0


class EmailError(SendFailed):
    """The server did not take the message."""

    code = "email_error"
    not_sent = "e-mail not sent"


class EmailRetryable(EmailError):
    """The server is away or said "later" (4xx): sending again later may work."""

    code = "email_retryable"
    retry = True


class EmailPermanent(EmailError):
    """The server refused the sender or the recipient for good (5xx): sending again will not help."""

    code = "email_permanent"


class EmailSender:
    """Sends EmailMessages through the server of ``url``; a new connection per message (a handful a minute)."""

    def __init__(self, *, url: str, sender: str, timeout_s: float = DEFAULT_TIMEOUT_S, smtp_factory=None,
                 tls_context: ssl.SSLContext | None = None):
        parts = smtp_parts(url)
        self.scheme, self.host, self.port = parts["scheme"], parts["host"], parts["port"]
        self.user, self._password = parts["user"], parts["password"]
        self.sender = sender
        self.timeout_s = timeout_s
        self.tls_context = tls_context or ssl.create_default_context()
        self._factory = smtp_factory  # tests may replace the connection class

    def send(self, message: EmailMessage) -> str:
        """Hand one message (From set here) to the server; returns its Message-ID."""
        if "From" not in message:
            message["From"] = self.sender
        recipient = message["To"]
        try:
            with self._connect() as smtp:
                self._secure_and_login(smtp)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise (EmailRetryable if any(c < 500 for c in codes) else EmailPermanent)(
                f"recipient refused ({', '.join(map(str, codes))})") from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise (EmailPermanent if exc.smtp_code >= 500 else EmailRetryable)(
                f"server answered {exc.smtp_code}") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise EmailRetryable(f"login refused ({exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:  # down, reset, timeout, 4xx greeting
            raise EmailRetryable(f"{type(exc).__name__}: {_short(exc)}") from None
        if refused:
            raise EmailPermanent("recipient refused")
        log.debug("e-mail %s handed to %s:%s for %s", message["Message-ID"], self.host, self.port,
                  mask_email(recipient))
        return str(message["Message-ID"] or "")

    def _connect(self) -> smtplib.SMTP:
        if self._factory is not None:
            return self._factory(self.host, self.port, timeout=self.timeout_s)
        if self.scheme == "smtps":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=self.tls_context,
                                    local_hostname=_local_name())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout_s, local_hostname=_local_name())

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        """STARTTLS on smtp:// when offered (never sending a password in clear), then AUTH when configured."""
        smtp.ehlo()
        if self.scheme == "smtp" and smtp.has_extn("starttls"):
            smtp.starttls(context=self.tls_context)
            smtp.ehlo()
        if self.user:
            if not isinstance(getattr(smtp, "sock", None), ssl.SSLSocket):
                raise EmailRetryable("the server offers no STARTTLS; the password is not sent in clear")
            smtp.login(self.user, self._password)


def _local_name() -> str:
    """The EHLO name: this host's name, without the DNS look-up smtplib's default (getfqdn) makes."""
    return socket.gethostname() or "localhost"


def _short(exc: Exception) -> str:
    return str(exc)[:120] or "no detail"
