"""The Daraja client's less common answers, over real HTTP (tests/test_daraja_client.py has the main ones):
an OAuth answer without a usable token or expiry, a token store that fails, a connection Daraja drops
after reading the push, and a client configured for a till without its number."""
from __future__ import annotations

import logging
import socket
import threading
from datetime import datetime, timedelta, timezone

import pytest

from gateway.providers.daraja import errors as e
from gateway.providers.daraja.client import FALLBACK_EXPIRES_IN, DarajaClient
from gateway.providers.daraja.token_store import MemoryTokenStore
from shared.config import SANDBOX_PASSKEY, SANDBOX_SHORTCODE
from tests.daraja_fake import OAUTH, PUSH, FakeDaraja

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)  # noqa: UP017 - setup.cfg still allows Python 3.10
PUSH_ARGS = {"phone": "254708374149", "amount": 500, "account_reference": "ACC42", "description": "Payment",
             "callback_url": "https://lipa.example/mpesa/stk/callback/s3cret"}


class BrokenStore:
    """A shared token store whose database is away."""

    def get(self):
        raise OSError("store unreachable")

    def put(self, token, expires_at):
        raise OSError("store unreachable")


@pytest.fixture
def fake():
    server = FakeDaraja()
    yield server
    server.stop()


def client_for(base_url: str, *, sleeps=None, **overrides) -> DarajaClient:
    kwargs = {"base_url": base_url, "consumer_key": "key", "consumer_secret": "secret",
              "shortcode": SANDBOX_SHORTCODE, "passkey": SANDBOX_PASSKEY, "token_store": MemoryTokenStore(),
              "timeout": (1, 2), "sleep": (sleeps if sleeps is not None else []).append, "now": lambda: NOW}
    return DarajaClient(**{**kwargs, **overrides})


def test_oauth_answer_without_a_token_is_a_bad_response_before_any_push(fake):
    fake.queue(OAUTH, 200, {"expires_in": "3599"})
    client = client_for(fake.url)
    with pytest.raises(e.DarajaBadResponse) as info:
        client.stk_push(**PUSH_ARGS)
    assert not info.value.ambiguous and fake.count(PUSH) == 0
    client.close()


def test_unreadable_expiry_assumes_the_fallback_lifetime(fake, caplog):
    fake.expires_in = "soon"
    store = MemoryTokenStore()
    client = client_for(fake.url, token_store=store)
    with caplog.at_level(logging.WARNING, logger="gateway.providers.daraja.client"):
        assert client.access_token() == "tok-1"
    assert store.get()[1] == (NOW + timedelta(seconds=FALLBACK_EXPIRES_IN)).replace(tzinfo=None)
    assert "expires_in unreadable" in caplog.text
    client.close()


def test_a_failing_token_store_costs_an_oauth_call_not_the_push(fake, caplog):
    client = client_for(fake.url, token_store=BrokenStore())
    with caplog.at_level(logging.WARNING, logger="gateway.providers.daraja.client"):
        first = client.stk_push(**PUSH_ARGS)
        second = client.stk_push(**PUSH_ARGS)
    assert first.checkout_request_id != second.checkout_request_id
    assert fake.count(OAUTH) == 1  # the token is kept in memory when the store cannot share it
    assert "token store read failed: OSError" in caplog.text and "token store write failed: OSError" in caplog.text
    client.close()


def _drop_after_reading(listener: socket.socket, seen: list) -> None:
    """Answer OAuth, then read the push and close the connection without a word."""
    for _ in range(2):
        conn, _ = listener.accept()
        with conn:
            request = conn.recv(65536).decode(errors="replace")
            seen.append(request.split(" ", 2)[1])
            if request.startswith("GET /oauth"):
                body = b'{"access_token": "tok-1", "expires_in": "3599"}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_a_push_dropped_after_sending_is_ambiguous_and_not_retried():
    """Daraja may have started the push: the caller must query, not push again."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    seen: list[str] = []
    server = threading.Thread(target=_drop_after_reading, args=(listener, seen), daemon=True)
    server.start()
    sleeps: list[float] = []
    client = client_for(f"http://127.0.0.1:{listener.getsockname()[1]}", sleeps=sleeps)
    try:
        with pytest.raises(e.DarajaTimeout) as info:
            client.stk_push(**PUSH_ARGS)
    finally:
        client.close()
        server.join(5)
        listener.close()
    assert info.value.ambiguous and not info.value.should_retry and "connection dropped" in info.value.message
    assert [path.split("?")[0] for path in seen] == [OAUTH, PUSH] and sleeps == []


def test_an_unusable_base_url_is_a_bad_response():
    client = client_for("http://")
    with pytest.raises(e.DarajaBadResponse):
        client.access_token()
    client.close()


@pytest.mark.parametrize("overrides,message", [
    ({"transaction_type": "Cash"}, "transaction_type"),
    ({"transaction_type": "CustomerBuyGoodsOnline"}, "till_number"),
])
def test_a_misconfigured_client_is_refused_when_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        client_for("http://127.0.0.1:9", **overrides)
