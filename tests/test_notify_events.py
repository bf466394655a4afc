"""Status changes write their notifications in the same transaction: one per change, never two."""
import json

import pytest

from gateway.notify.outbox import enqueue
from gateway.payments.requests import create_request, set_request_status, webhook_event
from gateway.payments.transitions import transition
from shared.db import write_tx
from shared.errors import InvalidInput, InvalidTransition
from shared.models import Alert, Notification, Payment, PaymentRequest, PhonePreference
from tests.factories import PHONE, make_payment, paid_body, post


def sms_rows(**where):
    query = Notification.select().where(Notification.channel == "sms")
    for key, value in where.items():
        query = query.where(getattr(Notification, key) == value)
    return list(query.order_by(Notification.id))


def change(payment, to, **fields):
    with write_tx():
        transition(payment, to, actor="test", **fields)


def test_completed_queues_the_receipt_once_despite_duplicate_callbacks(client, app, conn):
    make_payment()
    for _ in range(3):
        post(client, app, paid_body())
    [row] = sms_rows()
    assert (row.kind, row.recipient, row.status) == ("payment_completed", PHONE, "QUEUED")
    assert "NLJ7RT61SV" in row.body and "KES 500" in row.body and "ACC42" in row.body
    assert "LPTEST001" in row.body


def test_failed_sms_has_the_reason_in_plain_words(client, app, conn):
    make_payment()
    body = paid_body()
    body["Body"]["stkCallback"].update(ResultCode=1, ResultDesc="insufficient")
    del body["Body"]["stkCallback"]["CallbackMetadata"]
    post(client, app, body)
    [row] = sms_rows()
    assert row.kind == "payment_failed" and "Not enough money" in row.body and "PAY ACC42 500" in row.body


def test_kiswahili_for_a_phone_that_chose_it(app, conn):
    PhonePreference.create(phone=PHONE, language="sw")
    payment = make_payment()
    change(payment, "CANCELLED", message="You cancelled the M-Pesa prompt.", result_code="1032")
    [row] = sms_rows()
    assert row.language == "sw" and "yameghairiwa" in row.body


def test_notification_rolls_back_with_the_change(app, conn):
    payment = make_payment()
    with pytest.raises(RuntimeError):
        with write_tx():
            transition(payment, "COMPLETED", actor="test", mpesa_receipt="R1")
            raise RuntimeError("crash")
    assert sms_rows() == [] and Payment.get_by_id(payment.id).status == "PROCESSING"


def test_initiated_sms_only_when_configured(make_app, conn):
    make_app()
    change(make_payment(status="PENDING", checkout=None), "PROCESSING")
    assert sms_rows() == []
    make_app(config_overrides={"sms_on_initiated": True})
    change(make_payment(status="PENDING", checkout=None, ref="LPTEST002", phone="254712000000"), "PROCESSING")
    assert [r.kind for r in sms_rows()] == ["payment_initiated"]


def test_opted_out_phone_gets_a_suppressed_row(app, conn):
    PhonePreference.create(phone=PHONE, notifications=False)
    change(make_payment(), "EXPIRED")
    [row] = sms_rows()
    assert row.status == "SUPPRESSED"
    reply = enqueue(channel="sms", kind="reply", recipient=PHONE, body="help", respect_opt_out=False)
    assert reply.status == "QUEUED"


def test_refund_steps_are_left_to_the_refunds_module(app, conn):
    payment = make_payment(status="COMPLETED", mpesa_receipt="R1")
    change(payment, "REFUND_PENDING")
    change(payment, "COMPLETED")
    change(payment, "SETTLED")
    change(payment, "REFUND_PENDING")
    change(payment, "REFUNDED")
    assert [r.kind for r in sms_rows()] == []  # bare transitions; gateway.refunds queues refund SMS


def test_request_paid_sends_a_signed_webhook_row(client, app, conn):
    req = create_request(amount=500, account="INV42", callback_url="https://shop.example/hooks")
    make_payment(request=req)
    post(client, app, paid_body())
    assert PaymentRequest.get_by_id(req.id).status == "PAID"
    [hook] = Notification.select().where(Notification.channel == "webhook")
    event = json.loads(hook.body)
    assert hook.recipient == "https://shop.example/hooks" and event["type"] == "payment_request.paid"
    assert event["data"]["payment"]["mpesa_receipt"] == "NLJ7RT61SV" and event["id"] == f"evt_req{req.id}_paid"


def test_money_for_a_closed_request_is_kept_and_flagged(client, app, conn):
    req = create_request(amount=500, account="INV42")
    with write_tx():
        set_request_status(req, "CANCELLED")
    payment = make_payment(request=req)
    post(client, app, paid_body())
    fresh = Payment.get_by_id(payment.id)
    assert fresh.status == "COMPLETED" and fresh.flagged
    assert Alert.get(Alert.kind == "unexpected_money")


def test_request_lifecycle_and_validation(app, conn):
    req = create_request(amount="750", account="inv9", description="Clinic visit", expires_in=3600,
                         phone="0712345678")
    assert req.status == "OPEN" and len(req.code) == 6 and req.account == "INV9" and req.expires_at
    assert create_request(account="X", idempotency_key="k1").id == create_request(account="X", idempotency_key="k1").id
    with write_tx():
        set_request_status(req, "EXPIRED")
    with pytest.raises(InvalidTransition):
        with write_tx():
            set_request_status(req, "PAID")
    for bad in ({"expires_in": 5}, {"callback_url": "ftp://x"}, {"amount": 0}, {"account": "bad account"}):
        with pytest.raises(InvalidInput):
            create_request(**{"account": "A1", **bad})
    assert webhook_event(req, None)["type"] == "payment_request.expired"


def test_query_confirmed_payment_gets_a_receipt_free_text(app, conn):
    change(make_payment(), "COMPLETED")
    [row] = sms_rows()
    assert row.kind == "payment_confirmed" and "M-Pesa confirmed" in row.body


def test_no_sms_for_a_payer_known_only_by_hash(app, conn):
    change(make_payment(phone=""), "COMPLETED", mpesa_receipt="R9")
    assert sms_rows() == []
