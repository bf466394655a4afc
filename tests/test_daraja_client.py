"""The Daraja client over real HTTP against a programmable fake Daraja."""
from __future__ import annotations

import base64
import logging
import socket
import threading
from datetime import datetime, timedelta, timezone

import pytest

from gateway.providers.daraja import errors as e
from gateway.providers.daraja.client import DarajaClient
from gateway.providers.daraja.token_store import DbTokenStore, MemoryTokenStore
from shared.config import SANDBOX_PASSKEY, SANDBOX_SHORTCODE
from shared.db import init_db
from shared.errors import InvalidInput
from shared.models.migrations import migrate
from shared.models import ProviderToken
from tests.daraja_fake import INVALID_TOKEN, OAUTH, PUSH, QUERY, FakeDaraja

UTC = timezone.utc  # noqa: UP017 - setup.cfg still allows Python 3.10
START = datetime(2026, 11, 23, 12, 30, 45, tzinfo=UTC)  # 15:30:45 in Nairobi
PHONE = "254708374149"
CALLBACK = "https://lipa.example/mpesa/stk/callback/s3cret"
PUSH_ARGS = {
    "phone": PHONE, "amount": 500, "account_reference": "ACC42", "description": "Payment", "callback_url": CALLBACK,
}


class Clock:
    """A settable aware-UTC clock, so token expiry is tested without waiting."""

    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake():
    server = FakeDaraja()
    yield server
    server.stop()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(fake, clock, sleeps):
    """Build clients against the fake; fast sleeps, fixed clock; closed at the end."""
    made = []

    def factory(**overrides):
        kwargs = {
            "base_url": fake.url, "consumer_key": "key", "consumer_secret": "secret",
            "shortcode": SANDBOX_SHORTCODE, "passkey": SANDBOX_PASSKEY, "token_store": MemoryTokenStore(),
            "timeout": (1, 2), "sleep": sleeps.append, "now": clock,
        }
        made.append(DarajaClient(**{**kwargs, **overrides}))
        return made[-1]

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def daraja(make_client):
    return make_client()


@pytest.fixture
def token_db(db_url, config):  # config installs the personal-data keys: the stored token is sealed
    database = init_db(db_url)
    migrate()
    yield database
    database.close()


def refusal(code, message, request_id="req-1"):
    return {"requestId": request_id, "errorCode": code, "errorMessage": message}


# --- token --------------------------------------------------------------------------------


def test_one_oauth_call_serves_many_pushes(fake, daraja):
    for _ in range(3):
        daraja.stk_push(**PUSH_ARGS)
    assert fake.count(OAUTH) == 1 and fake.count(PUSH) == 3
    oauth = fake.calls[0]
    assert oauth.method == "GET" and oauth.query == "grant_type=client_credentials"
    assert oauth.authorization == "Basic " + base64.b64encode(b"key:secret").decode()
    assert {c.authorization for c in fake.calls[1:]} == {"Bearer tok-1"}


@pytest.mark.parametrize("expires_in", ["3599", 3599, 3599.0])
def test_expires_in_string_or_number(fake, make_client, clock, expires_in):
    fake.expires_in = expires_in
    store = MemoryTokenStore()
    client = make_client(token_store=store)
    assert client.access_token() == "tok-1"
    assert store.get() == ("tok-1", (START + timedelta(seconds=3599)).replace(tzinfo=None))
    clock.advance(3500)
    assert client.access_token() == "tok-1"
    assert fake.count(OAUTH) == 1


def test_token_refreshed_a_minute_before_expiry(fake, daraja, clock):
    assert daraja.access_token() == "tok-1"
    clock.advance(3599 - 61)
    assert daraja.access_token() == "tok-1"
    clock.advance(2)  # 59 s left: too close to trust
    assert daraja.access_token() == "tok-2"
    assert fake.count(OAUTH) == 2


def test_force_fetches_a_new_token(fake, daraja):
    assert daraja.access_token() == "tok-1"
    assert daraja.access_token(force=True) == "tok-2"


def test_stale_token_refreshed_once_then_push_succeeds(fake, daraja):
    daraja.stk_push(**PUSH_ARGS)
    fake.valid_tokens.clear()  # Daraja forgot tok-1
    accepted = daraja.stk_push(**PUSH_ARGS)
    assert accepted.checkout_request_id.startswith("ws_CO_")
    assert fake.count(OAUTH) == 2
    assert [c.authorization for c in fake.calls if c.path == PUSH] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_invalid_token_twice_is_raised(fake, daraja):
    fake.queue(PUSH, 404, INVALID_TOKEN)
    fake.queue(PUSH, 404, INVALID_TOKEN)
    with pytest.raises(e.InvalidAccessToken) as info:
        daraja.stk_push(**PUSH_ARGS)
    assert info.value.error_code == "404.001.03"
    assert fake.count(OAUTH) == 2 and fake.count(PUSH) == 2


def test_db_token_store_shares_the_token_between_clients(fake, make_client, token_db):
    first = make_client(token_store=DbTokenStore())
    first.stk_push(**PUSH_ARGS)
    second = make_client(token_store=DbTokenStore())
    second.stk_push(**PUSH_ARGS)
    assert fake.count(OAUTH) == 1
    assert [c.authorization for c in fake.calls if c.path == PUSH] == ["Bearer tok-1", "Bearer tok-1"]
    assert ProviderToken.select().count() == 1


def test_expired_cache_rereads_the_shared_store_before_fetching(fake, make_client, clock):
    store = MemoryTokenStore()
    first, second = make_client(token_store=store), make_client(token_store=store)
    assert first.access_token() == second.access_token() == "tok-1"
    clock.advance(3550)
    assert first.access_token() == "tok-2"
    assert second.access_token() == "tok-2"  # another process refreshed it: no OAuth call
    assert fake.count(OAUTH) == 2


def test_token_rejected_elsewhere_is_replaced_from_the_store(fake, make_client):
    store = MemoryTokenStore()
    first, second = make_client(token_store=store), make_client(token_store=store)
    first.stk_push(**PUSH_ARGS)
    second.stk_push(**PUSH_ARGS)
    fake.valid_tokens.clear()
    first.stk_push(**PUSH_ARGS)  # refreshes to tok-2
    second.stk_push(**PUSH_ARGS)  # told tok-1 is invalid; finds tok-2 in the store
    assert fake.count(OAUTH) == 2
    assert [c.authorization for c in fake.calls if c.path == PUSH][-2:] == ["Bearer tok-1", "Bearer tok-2"]


def test_db_token_store_upserts(token_db):
    store = DbTokenStore("daraja")
    assert store.get() is None
    store.put("a", datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    store.put("b", datetime(2026, 1, 1, 15, 0, tzinfo=timezone(timedelta(hours=3))))
    assert store.get() == ("b", datetime(2026, 1, 1, 12, 0))
    assert ProviderToken.select().count() == 1


def test_concurrent_threads_fetch_the_token_once(fake, daraja):
    fake.oauth_delay = 0.2
    barrier = threading.Barrier(8)
    tokens, failures = [], []

    def worker():
        barrier.wait()
        try:
            tokens.append(daraja.access_token())
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert not failures and tokens == ["tok-1"] * 8
    assert fake.count(OAUTH) == 1


def test_oauth_timeout_is_not_ambiguous(fake, make_client, sleeps):
    fake.oauth_delay = 2
    client = make_client(timeout=(1, 0.2), max_retries=0)
    with pytest.raises(e.DarajaUnavailable) as info:
        client.stk_push(**PUSH_ARGS)
    assert not info.value.ambiguous and fake.count(PUSH) == 0


@pytest.mark.parametrize("status, body", [
    (400, refusal("400.008.01", "Invalid Authentication passed")),
    (400, refusal("400.008.02", "Invalid grant type passed")),
    (401, ""),
])
def test_oauth_refusals_are_auth_errors(fake, daraja, status, body):
    fake.queue(OAUTH, status, body)
    with pytest.raises(e.DarajaAuthError) as info:
        daraja.stk_push(**PUSH_ARGS)
    assert not info.value.ambiguous and fake.count(PUSH) == 0


# --- request bodies ------------------------------------------------------------------------


def test_paybill_body_password_and_nairobi_timestamp(fake, daraja):
    daraja.stk_push(**PUSH_ARGS)
    body = fake.calls[-1].body
    timestamp = "20261123153045"
    password = base64.b64encode(f"{SANDBOX_SHORTCODE}{SANDBOX_PASSKEY}{timestamp}".encode()).decode()
    assert body == {
        "BusinessShortCode": "174379", "Password": password, "Timestamp": timestamp,
        "TransactionType": "CustomerPayBillOnline", "Amount": 500, "PartyA": PHONE, "PartyB": "174379",
        "PhoneNumber": PHONE, "CallBackURL": CALLBACK, "AccountReference": "ACC42", "TransactionDesc": "Payment",
    }
    assert daraja.password(timestamp) == password


def test_buy_goods_body_uses_store_number_and_till(fake, make_client):
    client = make_client(shortcode="5551234", transaction_type="CustomerBuyGoodsOnline", till_number="8765432")
    client.stk_push(**PUSH_ARGS)
    body = fake.calls[-1].body
    assert body["BusinessShortCode"] == "5551234" and body["PartyB"] == "8765432"
    assert body["TransactionType"] == "CustomerBuyGoodsOnline"
    decoded = base64.b64decode(body["Password"]).decode()
    assert decoded == f"5551234{SANDBOX_PASSKEY}{body['Timestamp']}"


def test_accepted_push_fields(daraja):
    accepted = daraja.stk_push(**PUSH_ARGS)
    assert accepted.merchant_request_id == "29115-1" and accepted.checkout_request_id == "ws_CO_1"
    assert accepted.customer_message and accepted.raw["ResponseCode"] == "0"


@pytest.mark.parametrize("field, value", [
    ("account_reference", "A" * 13), ("description", "D" * 14), ("account_reference", "ACC_42"),
    ("account_reference", ""), ("description", "Pay; drop"), ("amount", 0), ("amount", 250_001),
    ("amount", 10.5), ("amount", True), ("amount", "100"), ("phone", "0712345678"),
    ("phone", "+254712345678"), ("phone", "254812345678"), ("phone", 254712345678),
    ("callback_url", "ftp://x"),
])
def test_bad_input_refused_before_any_http_call(fake, daraja, field, value):
    with pytest.raises(InvalidInput):
        daraja.stk_push(**{**PUSH_ARGS, field: value})
    assert fake.calls == []


def test_limits_are_inclusive(fake, daraja):
    daraja.stk_push(**{**PUSH_ARGS, "account_reference": "A" * 12, "description": "D" * 13, "amount": 250_000})
    assert fake.calls[-1].body["AccountReference"] == "A" * 12


# --- error mapping -------------------------------------------------------------------------

MAPPINGS = [
    (400, refusal("400.002.02", "Bad Request - Invalid PhoneNumber"), e.InvalidRequest),
    (400, refusal("400.002.05", "Invalid Request Payload"), e.InvalidRequest),
    (500, refusal("500.001.1001", "Unable to lock subscriber, a transaction is already in process for the "
                  "current subscriber"), e.SubscriberLocked),
    (500, refusal("500.001.1001", "The transaction is being processed"), e.TransactionInProgress),
    (500, refusal("500.001.1001", "Merchant does not exist"), e.MerchantNotFound),
    (500, refusal("500.001.1001", "Wrong credentials"), e.DarajaAuthError),
    (500, refusal("500.003.02", "Spike arrest violation"), e.SpikeArrest),
    (500, refusal("500.003.03", "Quota Violation"), e.QuotaExceeded),
    (500, refusal("500.003.1001", "Internal Server Error"), e.DarajaInternalError),
    (503, {"fault": {"faultstring": "Service unavailable"}}, e.DarajaInternalError),
    (500, refusal("500.999.42", "Something new"), e.DarajaError),
    (502, "<html><body>Bad Gateway</body></html>", e.DarajaBadResponse),
]


@pytest.mark.parametrize("status, body, cls", MAPPINGS)
def test_refusals_map_to_typed_errors(fake, make_client, status, body, cls):
    client = make_client(max_retries=0)
    fake.queue(PUSH, status, body)
    with pytest.raises(e.DarajaError) as info:
        client.stk_push(**PUSH_ARGS)
    err = info.value
    assert type(err) is cls
    assert err.daraja_status == status
    if isinstance(body, dict) and "errorCode" in body:
        assert err.error_code == body["errorCode"] and err.request_id == "req-1"
    assert 0 < len(err.customer_message) <= 70
    assert err.should_retry == (cls is e.SpikeArrest)
    assert fake.count(PUSH) == 1


def test_error_from_response_keeps_unknown_codes():
    err = e.error_from_response(500, refusal("500.999.42", "Something new"), "")
    assert type(err) is e.DarajaError and err.error_code == "500.999.42" and not err.ambiguous


def test_every_customer_message_is_short():
    for cls in [e.DarajaError, *e.DarajaError.__subclasses__()]:
        assert 0 < len(cls.customer_text) <= 70, cls


# --- retries and transport -----------------------------------------------------------------


def test_spike_arrest_retried_with_backoff_then_success(fake, daraja, sleeps):
    fake.queue(PUSH, 500, refusal("500.003.02", "Spike arrest violation"))
    fake.queue(PUSH, 500, refusal("500.003.02", "Spike arrest violation"))
    assert daraja.stk_push(**PUSH_ARGS).checkout_request_id
    assert fake.count(PUSH) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 1.5


def test_spike_arrest_exhausted(fake, daraja, sleeps):
    for _ in range(3):
        fake.queue(PUSH, 500, refusal("500.003.02", "Spike arrest violation"))
    with pytest.raises(e.SpikeArrest):
        daraja.stk_push(**PUSH_ARGS)
    assert fake.count(PUSH) == 3 and len(sleeps) == 2


def test_connection_refused_is_unavailable_and_retried(make_client, sleeps):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(e.DarajaUnavailable) as info:
        client.stk_push(**PUSH_ARGS)
    assert info.value.should_retry and not info.value.ambiguous
    assert len(sleeps) == 2


def test_read_timeout_is_ambiguous_and_never_retried(fake, make_client, sleeps):
    client = make_client(timeout=(1, 0.3))
    client.access_token()
    fake.queue(PUSH, 200, {"ResponseCode": "0", "CheckoutRequestID": "ws_CO_late"}, delay=3)
    with pytest.raises(e.DarajaTimeout) as info:
        client.stk_push(**PUSH_ARGS)
    assert info.value.ambiguous and not info.value.should_retry
    assert fake.count(PUSH) == 1 and sleeps == []


@pytest.mark.parametrize("status, body", [
    (200, "<html><body>Maintenance</body></html>"),
    (200, "}{ not json"),
    (200, ["a", "list"]),
    (200, {"ResponseCode": "1", "ResponseDescription": "Rejected"}),
    (200, {"ResponseCode": "0", "ResponseDescription": "Success"}),
])
def test_unreadable_answer_is_ambiguous_bad_response(fake, daraja, sleeps, status, body):
    fake.queue(PUSH, status, body)
    with pytest.raises(e.DarajaBadResponse) as info:
        daraja.stk_push(**PUSH_ARGS)
    assert info.value.ambiguous and not info.value.should_retry
    assert fake.count(PUSH) == 1 and sleeps == []


# --- STK query -----------------------------------------------------------------------------


def test_query_while_processing_is_pending(fake, daraja):
    fake.queue(QUERY, 500, refusal("500.001.1001", "The transaction is being processed", "ws_CO_1"))
    result = daraja.stk_query("ws_CO_1")
    assert result.pending and result.result_code is None
    assert result.result_desc == "The transaction is being processed"
    body = fake.calls[-1].body
    assert body["CheckoutRequestID"] == "ws_CO_1" and body["Timestamp"] == "20261123153045"
    assert set(body) == {"BusinessShortCode", "Password", "Timestamp", "CheckoutRequestID"}


@pytest.mark.parametrize("code, desc", [("1032", "Request cancelled by user"), (0, "processed"), ("0", "ok")])
def test_query_result_code_is_a_string(fake, daraja, code, desc):
    fake.queue(QUERY, 200, {"ResponseCode": "0", "MerchantRequestID": "m", "CheckoutRequestID": "ws_CO_1",
                            "ResultCode": code, "ResultDesc": desc})
    result = daraja.stk_query("ws_CO_1")
    assert result.result_code == str(code) and result.result_desc == desc and not result.pending


def test_query_without_result_code_is_bad_response(fake, daraja):
    fake.queue(QUERY, 200, {"ResponseCode": "0"})
    with pytest.raises(e.DarajaBadResponse):
        daraja.stk_query("ws_CO_1")


def test_query_other_refusals_raise(fake, make_client):
    fake.queue(QUERY, 500, refusal("500.003.02", "Spike arrest violation"))
    with pytest.raises(e.SpikeArrest):
        make_client(max_retries=0).stk_query("ws_CO_1")


# --- secrets -------------------------------------------------------------------------------


def test_secrets_and_phone_never_logged(fake, daraja, caplog):
    caplog.set_level(logging.DEBUG)
    daraja.stk_push(**PUSH_ARGS)
    fake.valid_tokens.clear()
    daraja.stk_query("ws_CO_1")
    password = fake.calls[-1].body["Password"]
    text = caplog.text
    for secret in ("tok-1", "tok-2", "secret", SANDBOX_PASSKEY, password, PHONE):
        assert secret not in text
    assert "254708***149" in text
    assert "secret" not in repr(daraja) and SANDBOX_PASSKEY not in repr(daraja)


def test_the_stored_token_is_sealed_at_rest(token_db):
    """A database dump must not hand out a live Daraja bearer token (issue 13)."""
    from shared.db import db

    store = DbTokenStore("daraja")
    for token in ("live-token-1", "live-token-2"):  # the insert, then the upsert's update
        store.put(token, datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
        raw = db.execute_sql(f"SELECT token FROM {ProviderToken._meta.table_name}").fetchone()[0]
        assert token not in raw and raw.startswith("gAAAA")  # a Fernet token
        assert store.get()[0] == token
