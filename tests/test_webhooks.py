"""Merchant webhooks: the signature scheme, and WebhookSender against a real local receiver."""
from __future__ import annotations

import json

import pytest
from werkzeug.wrappers import Request, Response

from gateway.providers.webhooks import (
    WebhookPermanent, WebhookRetryable, WebhookSender, WebhookSignatureError, sign, verify,
)
from tests.conftest import LiveServer
from tests.helpers import free_port

SECRET = "whsec-test-0123456789"
BODY = json.dumps({"id": "evt_1", "type": "payment.completed", "data": {"reference": "LP123"}}).encode()
NOW = 1_700_000_000


class Receiver:
    """A merchant endpoint on a real port: checks each POST's signature with verify() and answers `status`."""

    def __init__(self, secret: str = SECRET):
        self.secret = secret
        self.status = 200
        self.calls: list[dict] = []
        self.server = LiveServer(self)
        self.url = self.server.url

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        try:
            verified = verify(self.secret, request.headers.get("Lipa-Signature"), body)
        except WebhookSignatureError:
            verified = None
        self.calls.append({"path": request.path, "headers": dict(request.headers), "body": body,
                           "verified": verified})
        return Response("ok", self.status)(environ, start_response)

    def stop(self):
        self.server.stop()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def test_sign_then_verify_round_trip():
    header = sign(SECRET, NOW, BODY)
    assert header.startswith(f"t={NOW},v1=") and len(header.split("v1=")[1]) == 64
    assert verify(SECRET, header, BODY, now=NOW + 10) == NOW
    assert verify(SECRET, header, BODY.decode(), now=NOW) == NOW  # a str body is its UTF-8 bytes


def test_any_v1_may_match_during_secret_rotation():
    header = f"{sign('old-secret', NOW, BODY)},v1={sign(SECRET, NOW, BODY).split('v1=')[1]}"
    assert verify(SECRET, header, BODY, now=NOW) == NOW


@pytest.mark.parametrize("header, body, secret, now", [
    (sign(SECRET, NOW, BODY), BODY + b" ", SECRET, NOW),  # tampered body
    (sign(SECRET, NOW, BODY), BODY, "wrong-secret", NOW),  # wrong secret
    (sign(SECRET, NOW, BODY), BODY, SECRET, NOW + 301),  # too old (replay)
    (sign(SECRET, NOW, BODY), BODY, SECRET, NOW - 301),  # from the future
    (sign(SECRET, NOW, BODY).replace(f"t={NOW}", f"t={NOW + 1}"), BODY, SECRET, NOW),  # timestamp changed
], ids=["tampered", "wrong-secret", "expired", "future", "moved-timestamp"])
def test_verify_refuses_bad_signatures(header, body, secret, now):
    with pytest.raises(WebhookSignatureError):
        verify(secret, header, body, now=now)


@pytest.mark.parametrize("header", [None, "", "garbage", f"t={NOW}", "v1=abc", "t=soon,v1=abc", "t=,v1="])
def test_verify_refuses_missing_or_malformed_headers(header):
    with pytest.raises(WebhookSignatureError):
        verify(SECRET, header, BODY, now=NOW)


def test_sender_posts_signed_json_the_receiver_can_verify(receiver):
    sender = WebhookSender(secret=SECRET, timeout=(1, 2))
    assert sender.send(receiver.url + "/hooks/lipa", BODY.decode()) == 200
    [call] = receiver.calls
    assert call["path"] == "/hooks/lipa" and call["body"] == BODY
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["User-Agent"] == "Lipa-Webhooks/1"
    assert call["verified"] is not None  # the receiver checked Lipa-Signature with verify()
    assert SECRET not in repr(sender)


def test_the_signature_uses_the_senders_clock(receiver):
    sender = WebhookSender(secret=SECRET, clock=lambda: NOW)
    sender.send(receiver.url, BODY.decode())
    header = receiver.calls[0]["headers"]["Lipa-Signature"]
    assert header == sign(SECRET, NOW, BODY)


@pytest.mark.parametrize("status", [301, 400, 404, 408, 429, 500, 503])
def test_non_2xx_is_retryable(receiver, status):
    receiver.status = status
    with pytest.raises(WebhookRetryable) as caught:
        WebhookSender(secret=SECRET).send(receiver.url, BODY.decode())
    assert caught.value.status_code == status and caught.value.should_retry


def test_410_gone_is_permanent(receiver):
    receiver.status = 410
    with pytest.raises(WebhookPermanent) as caught:
        WebhookSender(secret=SECRET).send(receiver.url, BODY.decode())
    assert caught.value.status_code == 410 and not caught.value.should_retry


def test_connection_refused_is_retryable():
    with pytest.raises(WebhookRetryable, match="unreachable"):
        WebhookSender(secret=SECRET, timeout=(1, 1)).send(f"http://127.0.0.1:{free_port()}/hook", "{}")


def test_a_url_that_can_never_work_is_permanent():
    with pytest.raises(WebhookPermanent):
        WebhookSender(secret=SECRET).send("not a url", "{}")


def test_an_injected_session_is_used(receiver):
    import requests

    with requests.Session() as session:
        session.headers["X-Trace"] = "t1"
        assert WebhookSender(secret=SECRET, session=session).send(receiver.url, "{}") == 200
    assert receiver.calls[0]["headers"]["X-Trace"] == "t1"
