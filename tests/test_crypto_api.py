"""The viewer role sees phones and payer names masked in every API answer that carries them; operators and
admins see them in full; searching by phone works for every role (through the look-up hash)."""
from __future__ import annotations

import json

import pytest

from gateway.backoffice import auth
from gateway.notify import outbox
from gateway.payments.transitions import record
from shared.db import db, write_tx
from shared.models import InboxMessage, Payment, PaymentRequest
from tests.conftest import fixture_json
from tests.helpers import staff_headers

PHONE = "254722334455"
OTHER = "254733445566"
NAME = "WANJIKU MUTHONI"
MASKED = "254722***455"


@pytest.fixture
def heads(conn):
    return staff_headers()


@pytest.fixture
def paid(conn):
    """A C2B-style payment with a named payer, its raw callback, its SMS, and a bill for the same phone."""
    with write_tx():
        payment = Payment.create(reference="LPMASK001", phone=PHONE, payer_name=NAME, amount=500, account="ACC1",
                                 channel="c2b", status="COMPLETED", mpesa_receipt="RKTMASK01")
        Payment.create(reference="LPMASK002", phone=OTHER, amount=200, account="ACC1", channel="api",
                       status="FAILED")
        c2b = {**fixture_json("c2b_confirmation.json"), "MSISDN": PHONE, "FirstName": "WANJIKU",
               "LastName": "MUTHONI"}
        stk = fixture_json("stk_callback_paid.json")
        for item in stk["Body"]["stkCallback"]["CallbackMetadata"]["Item"]:
            if item["Name"] == "PhoneNumber":
                item["Value"] = int(PHONE)
        record(payment, "callback", actor="test", payload=stk)
        record(payment, "c2b", actor="test", payload=c2b)
        InboxMessage.create(source="daraja.c2b", body=json.dumps(c2b), payment=payment, status="APPLIED")
        InboxMessage.create(source="at.sms", body=f"from=%2B{PHONE}&text=STATUS", payment=payment)
        outbox.enqueue(channel="sms", kind="payment_completed", recipient=PHONE, payment=payment,
                       body=f"Paid. Ref LPMASK001. Questions? Call {PHONE}.", dedupe_key="mask:1")
        PaymentRequest.create(code="123456", amount=100, account="ACC1", phone=PHONE)
    return payment


def _get(client, url, head) -> tuple[dict, str]:
    response = client.get(url, headers=head)
    assert response.status_code == 200, response.get_json()
    return response.get_json(), response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/api/v1/payments", "/api/v1/payments/{id}", "/api/v1/notifications",
                                 "/api/v1/payment-requests", "/api/v1/payments?phone=0722334455"])
def test_viewer_sees_masked_phones_and_names_operator_and_admin_in_full(client, heads, paid, url):
    url = url.format(id=paid.id)
    _, viewer = _get(client, url, heads["viewer"])
    assert PHONE not in viewer and "2b4e5a1f" not in viewer  # nor Daraja's hash of it
    assert "WANJIKU" not in viewer and "MUTHONI" not in viewer
    assert MASKED in viewer
    for role in ("operator", "admin"):
        _, full = _get(client, url, heads[role])
        assert PHONE in full and MASKED not in full


def test_viewer_detail_masks_inside_payloads_callbacks_and_messages(client, heads, paid):
    body, _ = _get(client, f"/api/v1/payments/{paid.id}", heads["viewer"])
    assert body["phone"] == MASKED
    c2b = next(e for e in body["events"] if e.get("kind") == "c2b")["payload"]
    assert (c2b["MSISDN"], c2b["FirstName"], c2b["LastName"]) == (MASKED, "W***", "M***")
    stk = next(e for e in body["events"] if e.get("kind") == "callback")["payload"]
    items = {i["Name"]: i.get("Value") for i in stk["Body"]["stkCallback"]["CallbackMetadata"]["Item"]}
    assert items["PhoneNumber"] == MASKED and items["Amount"] == 1.0  # other values untouched
    assert body["callbacks"][0]["body"]["MSISDN"] == MASKED and PHONE not in body["callbacks"][1]["body"]
    [note] = body["notifications"]
    assert note["recipient"] == MASKED and note["body"] == f"Paid. Ref LPMASK001. Questions? Call {MASKED}."
    full, _ = _get(client, f"/api/v1/payments/{paid.id}", heads["operator"])
    assert full["notifications"][0]["recipient"] == PHONE and full["callbacks"][0]["body"]["LastName"] == "MUTHONI"


@pytest.mark.parametrize("role", auth.ROLES)
@pytest.mark.parametrize("typed", ["0722334455", "+254722334455", "254722334455", "722334455"])
def test_every_role_can_search_by_phone(client, heads, paid, role, typed):
    body, _ = _get(client, f"/api/v1/payments?phone={typed.replace('+', '%2B')}", heads[role])
    assert [item["reference"] for item in body["items"]] == ["LPMASK001"]


def test_a_phone_search_finds_nothing_for_text_that_is_not_a_phone(client, heads, paid):
    for typed in ("", "' OR 1=1 --", "%", MASKED):
        response = client.get("/api/v1/payments", query_string={"phone": typed}, headers=heads["viewer"])
        assert response.status_code == 200
        assert response.get_json()["items"] == [] or typed == ""


def test_stored_api_answers_are_sealed_too(client, heads, conn):
    """The Idempotency-Key replay store keeps the answer (with its phone) sealed, and replays it."""
    head = {**heads["operator"], "Idempotency-Key": "bill-7"}
    body = {"amount": 700, "account": "BILL7", "phone": "0722334455"}
    first = client.post("/api/v1/payment-requests", json=body, headers=head)
    again = client.post("/api/v1/payment-requests", json=body, headers=head)
    assert first.status_code == again.status_code == 201 and first.get_json() == again.get_json()
    assert first.get_json()["phone"] == PHONE
    [(stored,)] = db.execute_sql('SELECT "response_body" FROM "idempotency_record"').fetchall()
    assert PHONE not in stored and stored.startswith("gAAAAA")
