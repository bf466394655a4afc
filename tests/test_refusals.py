"""Refused, logged, nothing stored (issue 7): wrong callback tokens, missing or weak API credentials,
oversized bodies (with and without Content-Length). Every refusal is a WARNING that names no secret."""
from __future__ import annotations

import logging

import pytest
import requests

from shared.models import InboxMessage, Payment
from tests.conftest import CALLBACK_TOKEN, bearer_headers

CALLBACKS = ("/mpesa/stk/callback/{}", "/mpesa/c2b/validation/{}", "/mpesa/c2b/confirmation/{}",
             "/mpesa/result/{}", "/mpesa/timeout/{}")
PROVIDER_FORMS = ("/ussd", "/ussd/events", "/sms/inbound", "/sms/delivery")
TOO_BIG = 70 * 1024  # MAX_BODY_BYTES is 64 kB
PHONE = "254712000999"


@pytest.fixture
def warnings_log(caplog):
    caplog.set_level(logging.WARNING)
    return caplog


def _warned(caplog, *words) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and all(w in r.getMessage() for w in words)]


def _stored():
    return InboxMessage.select().count(), Payment.select().count()


@pytest.mark.parametrize("path", CALLBACKS)
@pytest.mark.parametrize("token", ["", "x", CALLBACK_TOKEN[:-1] + "X", CALLBACK_TOKEN + "0", CALLBACK_TOKEN.upper()])
def test_callback_with_a_wrong_token_is_404_logged_and_not_stored(client, conn, warnings_log, path, token):
    body = {"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0}}, "MSISDN": PHONE}
    response = client.post(path.format(token), json=body)
    if token == "":  # no token segment at all: not a route
        assert response.status_code in (404, 405)
    else:
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
        assert _warned(warnings_log, "wrong token")
    assert _stored() == (0, 0)
    logged = warnings_log.text
    assert CALLBACK_TOKEN not in logged and (not token or token not in logged) and PHONE not in logged


@pytest.mark.parametrize("method,path,body", [
    ("get", "/api/v1/payments", None), ("post", "/api/v1/payments", {"phone": PHONE, "amount": 10, "account": "A"}),
    ("post", "/api/v1/payments/1/refund", {"amount": 1, "reason": "x"}), ("get", "/api/v1/stats", None),
    ("post", "/api/v1/jobs/retention/pause", None),
])
@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer lps_" + "Q" * 43,
                                    "Bearer lpk_" + "Q" * 43, "Bearer " + "x" * 400])
def test_api_without_a_valid_token_is_401_and_logged(client, conn, warnings_log, method, path, body, header):
    headers = {"Authorization": header} if header else {}
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert _warned(warnings_log, "refused")
    assert "Q" * 20 not in warnings_log.text and "dXNlcjpwYXNz" not in warnings_log.text
    assert Payment.select().count() == 0


@pytest.mark.parametrize("role,method,path,body", [
    ("viewer", "post", "/api/v1/payments", {"phone": PHONE, "amount": 10, "account": "A"}),
    ("viewer", "post", "/api/v1/payment-requests", {"amount": 10, "account": "A"}),
    ("viewer", "post", "/api/v1/jobs/retention/run", None),
    ("viewer", "post", "/api/v1/payments/1/refund", {"amount": 1, "reason": "x"}),
    ("operator", "post", "/api/v1/payments/1/refund", {"amount": 1, "reason": "x"}),
    ("operator", "post", "/api/v1/payments/1/resolve", {"status": "FAILED", "reason": "x"}),
    ("operator", "post", "/api/v1/jobs/retention/pause", None),
    ("merchant", "get", "/api/v1/stats", None),
    ("merchant", "get", "/api/v1/jobs", None),
])
def test_a_role_that_may_not_is_403_and_logged(client, conn, warnings_log, role, method, path, body):
    headers = bearer_headers(client)
    warnings_log.clear()
    response = getattr(client, method)(path, json=body, headers=headers[role])
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert _warned(warnings_log, "refused", "role")
    secret = headers[role]["Authorization"][7:]
    assert secret not in warnings_log.text and secret[:12] not in warnings_log.text
    assert Payment.select().count() == 0


def test_a_wrong_password_is_logged_without_the_password_or_the_username(client, conn, warnings_log):
    bearer_headers(client)
    response = client.post("/api/v1/auth/login", json={"username": "admin", "password": "Hunter2-Not-It"})
    assert response.status_code == 401
    assert _warned(warnings_log, "login refused")
    assert "Hunter2" not in warnings_log.text and "admin-password" not in warnings_log.text


def _form_too_big() -> dict:
    return {"sessionId": "s1", "phoneNumber": "+" + PHONE, "text": "1*" * (TOO_BIG // 2), "from": "+" + PHONE,
            "id": "ATXid_1", "status": "Success"}


@pytest.mark.parametrize("path", PROVIDER_FORMS + tuple(p.format(CALLBACK_TOKEN) for p in CALLBACKS)
                         + ("/api/v1/auth/login",))
@pytest.mark.parametrize("kind", ["form", "json"])
def test_an_oversized_body_is_413_logged_and_not_stored(client, conn, warnings_log, path, kind):
    if kind == "form":
        response = client.post(path, data=_form_too_big())
    else:
        response = client.post(path, json={"Body": "x" * TOO_BIG, "MSISDN": PHONE})
    if path.startswith("/api/") and kind == "form":  # refused for its content type before a byte is read
        assert response.status_code == 415
        return
    assert response.status_code == _refused_status(path)
    _check_413(path, response.get_data(as_text=True), response.mimetype, response.get_json(silent=True))
    assert _warned(warnings_log, "refused")
    assert CALLBACK_TOKEN not in warnings_log.text and PHONE not in warnings_log.text
    assert _stored() == (0, 0)


def _refused_status(path: str) -> int:
    """Africa's Talking shows the caller our text only with a 200: USSD answers the refusal as a 200 END."""
    return 200 if path.startswith("/ussd") else 413


def _check_413(path: str, text: str, mimetype: str, data) -> None:
    """USSD answers a short END (what Africa's Talking shows), everything else the JSON error."""
    if path == "/ussd":
        assert mimetype == "text/plain" and text.startswith("END ") and len(text) <= 160
    elif path == "/ussd/events":
        assert mimetype == "text/plain"
    else:
        assert data["error"]["code"] == "request_entity_too_large"


@pytest.mark.server
@pytest.mark.parametrize("path", PROVIDER_FORMS + (CALLBACKS[0].format(CALLBACK_TOKEN),
                                                   CALLBACKS[2].format(CALLBACK_TOKEN), "/api/v1/auth/login"))
def test_a_chunked_body_without_content_length_is_cut_at_the_limit(live, path):
    """A sender that streams (Transfer-Encoding: chunked) cannot slip past the limit, nor be stored."""
    def chunks():
        for _ in range(TOO_BIG // 1024):
            yield b"text=" + b"9" * 1019

    content_type = "application/json" if "/mpesa/" in path or "/api/" in path else "application/x-www-form-urlencoded"
    response = requests.post(live.url + path, data=chunks(), headers={"Content-Type": content_type}, timeout=10)
    assert "Content-Length" not in response.request.headers
    assert response.status_code == _refused_status(path)
    _check_413(path, response.text, response.headers["Content-Type"].split(";")[0],
               response.json() if "json" in response.headers["Content-Type"] else None)
    from shared.db import db

    with db.connection_context():
        assert _stored() == (0, 0)


@pytest.mark.parametrize("body", [b"[" * 50_000, b'{"a":' * 12_000, b'{"amount": 10, "account": "A", "x": ' +
                                  b"[" * 40 + b"]" * 40 + b"}"])
def test_api_json_nested_too_deep_is_a_400_not_a_500(client, conn, body):
    headers = bearer_headers(client)["admin"]
    for path in ("/api/v1/auth/login", "/api/v1/payment-requests", "/api/v1/payments"):
        response = client.post(path, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 400, (path, response.get_data(as_text=True)[:200])
        assert response.get_json()["error"]["code"]


def test_api_text_with_nul_is_stored_without_it_on_both_databases(client, conn):
    """PostgreSQL refuses NUL in text: the same request must not be a 500 there and a 201 on SQLite."""
    headers = bearer_headers(client)["admin"]
    response = client.post("/api/v1/payment-requests", headers=headers,
                           json={"amount": 10, "account": "A1", "description": "Clinic\u0000 visit"})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["description"] == "Clinic visit"
