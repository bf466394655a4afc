"""Signed merchant webhooks, Stripe style: ``Lipa-Signature: t=<unix ts>,v1=<hex HMAC-SHA256>``.

The HMAC covers ``f"{t}."`` followed by the exact body bytes, so a merchant can check both who sent
it and that it is fresh. ``verify`` is a pure function merchants (and tests) can copy. While a merchant's
secret is being rotated the header carries one ``v1=`` per live secret (gateway/notify/webhook_secrets.py).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from urllib.parse import urlsplit

import requests

from shared.errors import LipaError, SendFailed

from .outbound import Deadline, OutboundPolicy, OutboundRefused, pinned_session

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Lipa-Signature"
USER_AGENT = "Lipa-Webhooks/1"
DEFAULT_TOLERANCE_S = 300
DEFAULT_DEADLINE_S = 10.0  # LIPA_WEBHOOK_DEADLINE_S: a whole attempt, connect to last byte
# A URL that can never work: retrying will not fix it, the merchant must.
_BAD_URL_ERRORS = (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                   requests.exceptions.InvalidURL)


class WebhookSignatureError(LipaError):
    """The signature header is missing, malformed, wrong or too old."""

    http_status = 400
    code = "invalid_signature"


class WebhookError(SendFailed):
    """The merchant's endpoint did not take the event; ``status_code`` is its HTTP status, if any."""

    code = "webhook_error"
    not_sent = "webhook not delivered"


class WebhookRetryable(WebhookError):
    """Network trouble or a non-2xx answer: merchants fix their endpoint, so try again later."""

    code = "webhook_retryable"
    retry = True


class WebhookPermanent(WebhookError):
    """410 Gone or an unusable URL: the merchant told us to stop (or never can receive)."""

    code = "webhook_permanent"


def _as_bytes(value) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(_as_bytes(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Lipa-Signature value for body sent at timestamp, so merchants can prove it came from us."""
    return f"t={int(timestamp)},v1={_digest(secret, int(timestamp), _as_bytes(body))}"


def sign_all(secrets: list[str], timestamp: int, body: bytes) -> str:
    """One header with a v1 signature per secret, newest first: a receiver checks any one it holds."""
    data = _as_bytes(body)
    return ",".join([f"t={int(timestamp)}"] + [f"v1={_digest(secret, int(timestamp), data)}" for secret in secrets])


def _parse(header: str | None) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures) from a header; several v1 entries are allowed (secret rotation)."""
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError("Lipa-Signature header is missing or malformed.")
    return timestamp, signatures


def verify(secret: str, header: str | None, body, *, tolerance: int = DEFAULT_TOLERANCE_S,
           now: float | None = None) -> int:
    """Check a Lipa-Signature header against the raw body; returns its timestamp or raises
    WebhookSignatureError, so a replayed or forged event is refused."""
    timestamp, signatures = _parse(header)
    expected = _digest(secret, timestamp, _as_bytes(body))
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookSignatureError("Lipa-Signature does not match the body.")
    current = time.time() if now is None else now
    if tolerance and abs(current - timestamp) > tolerance:
        raise WebhookSignatureError("Lipa-Signature timestamp is outside the tolerance.")
    return timestamp


class WebhookSender:
    """POSTs signed JSON events to merchants; raises WebhookRetryable/WebhookPermanent unless 2xx.

    With a ``policy`` (the app passes the configured one) every connection is vetted when it is opened
    and made to the vetted address (gateway/providers/outbound.py); without one, any URL is called.
    ``timeout`` is requests' (connect, per read); ``deadline_s`` bounds the whole attempt, so an endpoint
    answering one byte a second fails it after deadline_s (issue 15) instead of holding a sender for ever.
    The deadline is enforced on the connections the pinned session opens (an injected session has only
    its own timeouts)."""

    def __init__(self, *, secret: str, timeout=(3.05, 10), session: requests.Session | None = None,
                 clock=time.time, policy: OutboundPolicy | None = None, deadline_s: float = DEFAULT_DEADLINE_S):
        self._secret = secret
        self.timeout = timeout
        self.deadline_s = deadline_s
        self.session = session if session is not None else pinned_session(policy or OutboundPolicy())
        self.clock = clock

    def __repr__(self) -> str:
        return f"WebhookSender(timeout={self.timeout!r}, deadline_s={self.deadline_s!r})"

    def send(self, url: str, body: str, secrets: list[str] | None = None) -> int:
        """Deliver one event body (exact bytes signed with ``secrets``, by default the sender's own
        LIPA_WEBHOOK_SECRET); returns the merchant's 2xx status."""
        if secrets is not None and not secrets:
            raise WebhookRetryable("the merchant has no webhook secret yet (rotate-webhook-secret --name …)")
        data = _as_bytes(body)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_all(secrets or [self._secret], int(self.clock()), data),
            "User-Agent": USER_AGENT,
        }
        status = self._post(url, data, headers)
        host = urlsplit(url).netloc
        if 200 <= status < 300:
            log.info("webhook to %s delivered: HTTP %d", host, status)
            return status
        if status == 410:
            raise WebhookPermanent("HTTP 410 Gone", status_code=status)
        raise WebhookRetryable(f"HTTP {status}", status_code=status)

    def _post(self, url: str, data: bytes, headers: dict) -> int:
        """One POST without following redirects (a redirected POST loses its meaning); returns the status."""
        deadline = Deadline(self.deadline_s)
        try:
            with deadline, self.session.post(url, data=data, headers=headers, timeout=self.timeout,
                                             allow_redirects=False) as response:
                return response.status_code
        except _BAD_URL_ERRORS as exc:
            raise WebhookPermanent(f"unusable URL ({type(exc).__name__})") from None
        except OutboundRefused as exc:  # at connect time: e.g. the name now resolves to 127.0.0.1
            log.warning("webhook to %s refused: %s", urlsplit(url).hostname, exc.message)
            raise WebhookPermanent(f"refused: {exc.message}") from None
        except requests.RequestException as exc:
            if deadline.fired:
                log.warning("webhook to %s: no full answer within %.1fs; cut off", urlsplit(url).hostname,
                            self.deadline_s)
                raise WebhookRetryable(f"no full answer within the {self.deadline_s:g}s deadline") from None
            raise WebhookRetryable(f"unreachable ({type(exc).__name__})") from None
