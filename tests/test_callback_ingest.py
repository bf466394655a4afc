"""An STK callback is stored and applied in one write transaction before its 200; a failed apply keeps the
stored row (RECEIVED) for a retry and the process-inbox job; re-sends, even concurrent ones, change nothing."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gateway.jobs.healing import process_inbox
from gateway.mpesa import callbacks, views
from shared.models import InboxMessage, Notification, Payment, PaymentEvent
from tests.conftest import CALLBACK_TOKEN, fixture_json

URL = f"/mpesa/stk/callback/{CALLBACK_TOKEN}"
PHONE = "254708374149"


def paid_body(checkout: str, receipt: str = "NLJ7RT61SV", phone: str = PHONE) -> str:
    body = fixture_json("stk_callback_paid.json")
    cb = body["Body"]["stkCallback"]
    cb["CheckoutRequestID"] = checkout
    values = {"Amount": 500, "MpesaReceiptNumber": receipt, "PhoneNumber": int(phone)}
    for item in cb["CallbackMetadata"]["Item"]:
        if item["Name"] in values:
            item["Value"] = values[item["Name"]]
    return json.dumps(body)


def make_payment(checkout: str = "ws_CO_ingest_1", ref: str = "LPING0001", phone: str = PHONE) -> Payment:
    return Payment.create(reference=ref, phone=phone, amount=500, account="ACC42", channel="ussd",
                          status="PROCESSING", checkout_request_id=checkout, active_phone=phone)


def completions(payment: Payment) -> int:
    return PaymentEvent.select().where(PaymentEvent.payment == payment, PaymentEvent.kind == "transition",
                                       PaymentEvent.to_status == "COMPLETED").count()


def test_applied_before_the_answer(client, app, conn):
    payment = make_payment()
    response = client.post(URL, data=paid_body("ws_CO_ingest_1"), content_type="application/json", keep_open=True)
    assert response.status_code == 200
    # The answer is still open (nothing ran after it): by the 200 the row is stored, applied and its SMS queued.
    assert Payment.get_by_id(payment.id).status == "COMPLETED"
    assert InboxMessage.get().status == "APPLIED"
    assert Notification.select().where(Notification.payment == payment).count() == 1
    response.close()
    assert not app.extensions["lipa"].tasks._pending  # and nothing was left for the background


def test_failed_apply_rolls_back_to_the_stored_row_and_is_retried(client, app, conn, monkeypatch):
    payment = make_payment()
    applied = []

    def apply_then_fail(row, result):
        applied.append(callbacks.apply_parsed(row, result))  # the transition and its SMS row are written...
        raise RuntimeError("disk full")  # ...and undone with the savepoint

    monkeypatch.setattr(views, "apply_parsed", apply_then_fail)
    response = client.post(URL, data=paid_body("ws_CO_ingest_1"), content_type="application/json", keep_open=True)
    assert response.status_code == 200 and applied == ["APPLIED"]
    assert InboxMessage.get().status == "RECEIVED"  # stored before acknowledged
    assert Payment.get_by_id(payment.id).status == "PROCESSING" and completions(payment) == 0
    assert Notification.select().count() == 0
    response.close()  # the answer has gone: the retry runs in the background
    app.extensions["lipa"].tasks.drain()
    assert InboxMessage.get().status == "APPLIED"
    assert Payment.get_by_id(payment.id).status == "COMPLETED" and completions(payment) == 1


def test_unapplied_row_is_healed_by_process_inbox(client, app, conn, monkeypatch):
    payment = make_payment()

    def fail(row, result):
        raise RuntimeError("bug")

    monkeypatch.setattr(views, "apply_parsed", fail)
    monkeypatch.setattr(callbacks, "apply_parsed", fail)  # the background retry fails too
    assert client.post(URL, data=paid_body("ws_CO_ingest_1"), content_type="application/json").status_code == 200
    app.extensions["lipa"].tasks.drain()
    assert InboxMessage.get().status == "RECEIVED"
    monkeypatch.undo()
    services = app.extensions["lipa"]
    assert process_inbox(daraja=services.daraja, callback_url=services.stk_callback_url, older_than_s=0) == 1
    assert InboxMessage.get().status == "APPLIED" and completions(payment) == 1


@pytest.mark.server
def test_concurrent_resends_complete_once(live, conn):
    """Eight copies of each of three callbacks, all in flight together, against a threaded server."""
    payments = [make_payment(f"ws_CO_ingest_{i}", f"LPING000{i}", f"25470837415{i}") for i in range(3)]
    bodies = []
    for i, payment in enumerate(payments):
        bodies += [paid_body(payment.checkout_request_id, f"NLJ7RT61S{i}", payment.phone)] * 8
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda body: requests.post(
            f"{live.url}{URL}", data=body, headers={"Content-Type": "application/json"}, timeout=30), bodies))
    assert [a.status_code for a in answers] == [200] * 24
    for payment in payments:
        assert Payment.get_by_id(payment.id).status == "COMPLETED" and completions(payment) == 1
        assert Notification.select().where(Notification.payment == payment, Notification.channel == "sms").count() == 1
    statuses = [row.status for row in InboxMessage.select()]
    assert len(statuses) == 24 and statuses.count("APPLIED") == 3 and statuses.count("DUPLICATE") == 21
