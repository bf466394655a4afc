"""The public pay page of a payment request: page, form, push, status JSON, limits and headers."""
import re

import pytest

from gateway.api.ratelimit import Limit
from gateway.payments.requests import create_request, set_request_status
from shared.db import write_tx
from shared.models import Payment, PaymentRequest
from tests.factories import paid_body, post

PHONE = "254712345678"


@pytest.fixture
def bill(conn):
    return create_request(amount=250, account="INV7", description="School fees")


def _form(client, code, **extra):
    page = client.get(f"/pay/{code}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post(f"/pay/{code}", data={"csrf": token, "phone": "0712 345 678", **extra})


def test_the_page_shows_what_is_paid_with_strict_headers(client, bill):
    page = client.get(f"/pay/{bill.code}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "School fees" in html and "KES 250" in html and 'name="phone"' in html
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["Referrer-Policy"] == "no-referrer" and "<script>" not in html  # no inline script
    assert len(page.data) < 30_000


def test_paying_pushes_to_the_typed_phone_and_follows_the_attempt(client, app, bill):
    answer = _form(client, bill.code)
    assert answer.status_code == 303 and "ref=LP" in answer.headers["Location"]
    app.extensions["lipa"].tasks.drain()
    payment = Payment.get(Payment.request == bill)
    assert payment.phone == PHONE and payment.amount == 250 and payment.channel == "web"
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Check your phone for the M-Pesa prompt" in page and 'http-equiv="refresh"' in page
    assert PHONE not in page and "254712***678" in page  # the payer's phone only masked


def test_a_second_pay_from_the_same_phone_is_refused_in_plain_words(client, app, bill):
    _form(client, bill.code)
    again = _form(client, bill.code)
    assert again.status_code == 409 and "already has a payment waiting" in again.get_data(as_text=True)
    assert "345" not in again.get_data(as_text=True).split('id="phone"')[1]  # a valid number is not echoed
    assert Payment.select().count() == 1


def test_the_form_needs_its_csrf_token(client, bill):
    client.get(f"/pay/{bill.code}")
    refused = client.post(f"/pay/{bill.code}", data={"csrf": "forged", "phone": PHONE})
    assert refused.status_code == 403 and Payment.select().count() == 0


def test_status_json_follows_the_request_to_paid(client, app, bill):
    answer = _form(client, bill.code)
    app.extensions["lipa"].tasks.drain()
    ref = answer.headers["Location"].split("ref=")[1].split("&")[0]
    state = client.get(f"/pay/{bill.code}/status?ref={ref}").get_json()
    assert state["status"] == "OPEN" and state["attempt"]["status"] in ("PENDING", "PROCESSING")
    assert set(state) >= {"code", "status", "status_message", "last_event", "last_event_at", "valid_transitions",
                          "transaction", "expires_at", "is_expired", "updated_at"}
    payment = Payment.get(Payment.reference == ref)
    post(client, app, paid_body(amount=250.0, phone=int(PHONE), checkout=payment.checkout_request_id,
                                receipt="PAYLINK001"))
    state = client.get(f"/pay/{bill.code}/status?ref={ref}").get_json()
    assert state["status"] == "PAID" and state["transaction"]["id"] == "PAYLINK001" and state["attempt"]["paid"]
    assert state["valid_transitions"] == [] and PHONE not in str(state)


def test_another_browsers_reference_shows_no_attempt(client, app, bill):
    _form(client, bill.code)
    assert client.get(f"/pay/{bill.code}/status?ref=LPNOTMINE").get_json()["attempt"] is None


@pytest.mark.parametrize("status", ["EXPIRED", "CANCELLED"])
def test_closed_requests_say_so_and_offer_no_pay_button(client, bill, status):
    with write_tx():
        set_request_status(PaymentRequest.get_by_id(bill.id), status)
    html = client.get(f"/pay/{bill.code}").get_data(as_text=True)
    assert 'id="payform" hidden' in html and ("expired" in html or "cancelled" in html)
    assert "Ask Lipa for a new payment link." in html  # what to do next
    assert client.get(f"/pay/{bill.code}/status").get_json()["is_expired"] == (status == "EXPIRED")


def test_kiswahili_from_the_browser_or_the_switch(client, bill):
    assert "Lipa kwa M-Pesa" in client.get(f"/pay/{bill.code}", headers={"Accept-Language": "sw"}).get_data(
        as_text=True)
    assert "Lipa kwa M-Pesa" in client.get(f"/pay/{bill.code}?lang=sw").get_data(as_text=True)


def test_unknown_codes_are_404(client, conn):
    assert client.get("/pay/999999").status_code == 404
    assert client.get("/pay/999999/status").status_code == 404


def test_status_polls_are_limited_per_address(client, bill, monkeypatch):
    monkeypatch.setattr("gateway.paypage.views.STATUS_LIMIT", Limit(3, 900))
    codes = [client.get(f"/pay/{bill.code}/status").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get(f"/pay/{bill.code}/status")
    assert int(limited.headers["Retry-After"]) > 0 and limited.get_json()["error"]["code"] == "rate_limited"


def test_a_request_answers_its_pay_link_and_dial_string(client, as_, conn):
    made = client.post("/api/v1/payment-requests", headers=as_["operator"],
                       json={"amount": 300, "account": "INV9", "description": "Rent"}).get_json()
    assert made["pay_url"].endswith(f"/pay/{made['code']}") and made["ussd_string"] == f"*384*123*{made['code']}#"


def test_dialling_straight_to_a_request_opens_its_confirm_screen(client, app, bill):
    form = {"sessionId": "ATUid_direct1", "serviceCode": "*384*123#", "phoneNumber": "+254712345678"}
    first = client.post("/ussd", data={**form, "text": bill.code}).get_data(as_text=True)
    assert first.startswith("CON") and "250" in first and "INV7" in first
    last = client.post("/ussd", data={**form, "text": f"{bill.code}*1"}).get_data(as_text=True)
    app.extensions["lipa"].tasks.drain()
    assert last.startswith("END") and Payment.get(Payment.request == bill).amount == 250


def test_dialling_an_unknown_code_is_an_invalid_choice(client, conn):
    form = {"sessionId": "ATUid_direct2", "serviceCode": "*384*123#", "phoneNumber": "+254712345678"}
    answer = client.post("/ussd", data={**form, "text": "999999"}).get_data(as_text=True)
    assert answer.startswith("CON") and Payment.select().count() == 0


def test_a_mistyped_number_comes_back_to_be_corrected(client, bill):
    answer = _form(client, bill.code, phone="07123")
    assert answer.status_code == 400 and 'value="07123"' in answer.get_data(as_text=True)
