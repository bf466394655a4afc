"""POST /mpesa/stk/callback/<token>: stored first, answered, applied idempotently; money never dropped."""
import copy
import json

import pytest

from gateway.jobs.healing import process_inbox
from gateway.mpesa.callbacks import apply_stk_callback
from shared.models import Alert, InboxMessage, LateCallback, Notification, Payment, PaymentEvent
from tests.conftest import fixture_json
from tests.factories import CHECKOUT, PHONE, URL, failed_body, make_payment, paid_body, post, reload  # noqa: F401 - builders shared


def test_paid_completes_with_receipt_and_event(client, app, conn):
    payment = make_payment()
    response = post(client, app, paid_body())
    assert response.status_code == 200
    assert response.get_json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    fresh = reload(payment)
    assert (fresh.status, fresh.mpesa_receipt, fresh.result_code) == ("COMPLETED", "NLJ7RT61SV", "0")
    assert fresh.active_phone is None and fresh.completed_at is not None
    event = PaymentEvent.get(PaymentEvent.payment == payment, PaymentEvent.kind == "transition")
    assert (event.from_status, event.to_status, event.actor) == ("PROCESSING", "COMPLETED", "daraja-callback")
    assert event.payload["Body"]["stkCallback"]["CheckoutRequestID"] == CHECKOUT
    assert InboxMessage.get().status == "APPLIED"


def test_duplicates_are_absorbed(client, app, conn):
    payment = make_payment()
    for _ in range(3):
        assert post(client, app, paid_body()).status_code == 200
    assert PaymentEvent.select().where(PaymentEvent.kind == "transition").count() == 1
    assert [r.status for r in InboxMessage.select().order_by(InboxMessage.id)] == ["APPLIED", "DUPLICATE", "DUPLICATE"]
    assert reload(payment).status == "COMPLETED"


@pytest.mark.parametrize("code,status,words", [
    (1032, "CANCELLED", "cancelled"), (1, "FAILED", "Not enough money"), ("2001", "FAILED", "Wrong M-Pesa PIN"),
    (1037, "FAILED", "could not be reached"), ("SFC_IC0003", "FAILED", "not set up"), (1019, "EXPIRED", "expired"),
])
def test_failures_map_to_status_and_plain_words(client, app, conn, code, status, words):
    payment = make_payment()
    assert post(client, app, failed_body(code)).status_code == 200
    fresh = reload(payment)
    assert fresh.status == status and words in fresh.status_message and fresh.result_code == str(code)
    assert fresh.active_phone is None


@pytest.mark.parametrize("code,alerted", [("4999", False), (4242, True), ("E3008", True)])
def test_undecided_callback_leaves_the_payment_waiting(client, app, conn, code, alerted):
    payment = make_payment()
    assert post(client, app, failed_body(code, "The transaction is still under processing")).status_code == 200
    fresh = reload(payment)
    assert fresh.status == "PROCESSING" and fresh.active_phone is not None
    assert Notification.select().count() == 0  # nobody tells the customer "failed" while the prompt is live
    assert (InboxMessage.get().status, InboxMessage.get().note) == ("APPLIED", "undecided")
    assert PaymentEvent.get(PaymentEvent.kind == "callback_undecided").payment_id == payment.id
    assert [a.kind for a in Alert.select()] == (["unknown_result_code"] if alerted else [])


def test_string_result_code_fixture(client, app, conn):
    body = fixture_json("stk_callback_string_code.json")
    payment = make_payment(checkout=body["Body"]["stkCallback"]["CheckoutRequestID"])
    post(client, app, body)
    assert reload(payment).status == "FAILED"


def test_unknown_checkout_is_kept_and_flagged(client, app, conn):
    assert post(client, app, paid_body(checkout="ws_CO_nobody")).status_code == 200
    row = InboxMessage.get()
    assert row.status == "FLAGGED" and "unknown" in row.note
    assert Alert.get().kind == "unknown_callback"


@pytest.mark.parametrize("body,why", [
    (paid_body(amount=499.0), "amount"), (paid_body(amount=500.5), "amount"),
    (paid_body(phone=254799999999), "phone"), (paid_body(receipt=None), "MpesaReceiptNumber"),
])
def test_mismatch_is_flagged_not_credited(client, app, conn, body, why):
    if why == "MpesaReceiptNumber":
        meta = body["Body"]["stkCallback"]["CallbackMetadata"]
        meta["Item"] = [i for i in meta["Item"] if i["Name"] != "MpesaReceiptNumber"]
    payment = make_payment()
    assert post(client, app, body).status_code == 200
    fresh = reload(payment)
    assert fresh.status == "PROCESSING" and fresh.flagged and why in fresh.flag_reason
    assert InboxMessage.get().status == "FLAGGED"
    assert Alert.get().kind == "callback_mismatch"


def test_amount_as_string_and_missing_phone_still_credit(client, app, conn):
    body = paid_body(amount="500.00")
    items = body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    body["Body"]["stkCallback"]["CallbackMetadata"]["Item"] = [i for i in items if i["Name"] != "PhoneNumber"]
    payment = make_payment()
    post(client, app, body)
    assert reload(payment).status == "COMPLETED"


@pytest.mark.parametrize("previous", ["EXPIRED", "FAILED", "CANCELLED"])
def test_late_success_is_kept_flagged_and_never_completes_on_its_own(client, app, conn, previous):
    """The callback token alone is no proof: a forged "paid" for a payment we gave up on completes nothing.
    (The simulator never saw this CheckoutRequestID, so the STK query contradicts it; tests/test_late_callback.py
    has the verified paths.)"""
    payment = make_payment(status=previous)
    assert post(client, app, paid_body(receipt="FORGED0001")).status_code == 200
    fresh = reload(payment)
    assert (fresh.status, fresh.mpesa_receipt, fresh.flagged) == (previous, None, True)
    stored = InboxMessage.get()
    assert (stored.status, stored.body) == ("FLAGGED", json.dumps(paid_body(receipt="FORGED0001")))
    late = LateCallback.get()
    assert (late.payment_id, late.receipt, late.status) == (payment.id, "FORGED0001", "CONTRADICTED")
    assert [a.kind for a in Alert.select().order_by(Alert.id)] == ["late_callback", "late_callback_contradicted"]
    assert Notification.select().count() == 0
    post(client, app, paid_body(receipt="FORGED0001"))  # sent again: absorbed
    assert InboxMessage.select().order_by(InboxMessage.id.desc()).get().status == "DUPLICATE"
    assert reload(payment).status == previous


def test_failure_after_success_never_downgrades(client, app, conn):
    payment = make_payment()
    post(client, app, paid_body())
    post(client, app, failed_body(1032))
    assert reload(payment).status == "COMPLETED"
    assert InboxMessage.select().order_by(InboxMessage.id.desc()).get().status == "IGNORED"


def test_second_receipt_on_paid_payment_is_flagged(client, app, conn):
    payment = make_payment()
    post(client, app, paid_body())
    post(client, app, paid_body(receipt="OTHER12345"))
    fresh = reload(payment)
    assert fresh.status == "COMPLETED" and fresh.mpesa_receipt == "NLJ7RT61SV" and fresh.flagged
    assert Alert.get().kind == "double_payment"


def test_receipt_already_credited_elsewhere_is_flagged(client, app, conn):
    make_payment(status="COMPLETED", checkout="ws_CO_other", ref="LPTEST002", mpesa_receipt="NLJ7RT61SV")
    payment = make_payment()
    post(client, app, paid_body())
    assert reload(payment).status == "PROCESSING" and reload(payment).flagged


def test_success_for_push_whose_answer_was_lost_is_matched(client, app, conn):
    payment = make_payment(status="PENDING", checkout=None)
    post(client, app, paid_body(checkout="ws_CO_lost_answer"))
    fresh = reload(payment)
    assert fresh.status == "COMPLETED" and fresh.checkout_request_id == "ws_CO_lost_answer"
    assert PaymentEvent.select().where(PaymentEvent.kind == "matched").count() == 1


def test_wrong_token_is_404_and_nothing_stored(client, app, conn):
    payment = make_payment()
    response = post(client, app, paid_body(), url="/mpesa/stk/callback/guess")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert InboxMessage.select().count() == 0 and reload(payment).status == "PROCESSING"


@pytest.mark.parametrize("body", [
    "not json", "", "[]", json.dumps({"Body": {}}), json.dumps({"Body": {"stkCallback": {"ResultCode": 0}}}),
    json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": CHECKOUT}}}),
    json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": CHECKOUT, "ResultCode": 0,
                                         "CallbackMetadata": {"Item": 5}}}}),
    json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": 12, "ResultCode": 0}}}),
    b"\xff\xfe\x00junk",
])
def test_malformed_is_400_json_and_stored(client, app, conn, body):
    payment = make_payment()
    response = post(client, app, body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_callback"
    assert InboxMessage.get().status == "REJECTED"
    assert reload(payment).status == "PROCESSING"


def test_oversized_body_is_413_json(client, app, conn):
    response = post(client, app, "x" * (70 * 1024))
    assert response.status_code == 413 and "error" in response.get_json()


def test_ip_allowlist(make_app, sim, conn):
    app = make_app(config_overrides={"mpesa_allowed_ips": ("196.201.214.200",), "mpesa_base_url": sim.daraja_url})
    client = app.test_client()
    make_payment()
    response = client.post(URL, json=paid_body(), environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 404 and InboxMessage.select().count() == 0  # as if no such URL (issue 13)
    response = client.post(URL, json=paid_body(), environ_base={"REMOTE_ADDR": "196.201.214.200"})
    app.extensions["lipa"].tasks.drain()
    assert response.status_code == 200 and Payment.get().status == "COMPLETED"


def test_stored_but_unapplied_is_healed_by_process_inbox(client, app, conn):
    payment = make_payment()
    InboxMessage.create(source="daraja.stk", body=json.dumps(paid_body()))
    InboxMessage.create(source="at.sms", body="from=%2B254712345678&to=22384&text=HELP&id=ATXid_h1&date=x")
    services = app.extensions["lipa"]
    heal = dict(daraja=services.daraja, callback_url=services.stk_callback_url, older_than_s=0)
    assert process_inbox(**heal) == 2
    assert reload(payment).status == "COMPLETED"
    assert [r.status for r in InboxMessage.select().order_by(InboxMessage.id)] == ["APPLIED", "APPLIED"]
    assert process_inbox(**heal) == 0


def test_apply_is_idempotent_per_row(conn, app):
    payment = make_payment()
    row = InboxMessage.create(source="daraja.stk", body=json.dumps(paid_body()))
    assert apply_stk_callback(row.id) == "APPLIED"
    assert apply_stk_callback(row.id) == "APPLIED"
    assert PaymentEvent.select().where(PaymentEvent.kind == "transition").count() == 1
    assert reload(payment).status == "COMPLETED"


def test_fixture_is_not_mutated():
    first = fixture_json("stk_callback_paid.json")
    assert copy.deepcopy(first) == fixture_json("stk_callback_paid.json")
