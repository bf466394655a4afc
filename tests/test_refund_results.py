"""POST /mpesa/result/<token> and /mpesa/timeout/<token>: stored first, answered, applied once."""
from __future__ import annotations

import copy
import json

import pytest

from gateway.refunds import parse_result, request_refund
from shared.models import Alert, InboxMessage, Notification, Payment, Refund
from tests.conftest import CALLBACK_TOKEN, fixture_json
from tests.test_refunds import STAFF, fresh, make_payment, send, sms_kinds

RESULT_URL = f"/mpesa/result/{CALLBACK_TOKEN}"
TIMEOUT_URL = f"/mpesa/timeout/{CALLBACK_TOKEN}"


@pytest.fixture
def app(app, sim):
    sim.daraja.callback_delay = 60  # the tests post every Result themselves
    return app


def processing(app, amount=1000, refund_amount=None, status="COMPLETED", method=None):
    """A payment with a refund Daraja accepted (PROCESSING, ConversationID known)."""
    payment = make_payment(amount=amount, status=status)
    refund = send(app, request_refund(payment, refund_amount or amount, "asked", requested_by=STAFF, method=method))
    assert refund.status == "PROCESSING"
    return refund


def result_body(refund, code=0, desc="The service request is processed successfully.", conversation=None):
    body = copy.deepcopy(fixture_json("reversal_result.json"))
    result = body["Result"]
    result.update(ResultCode=code, ResultDesc=desc, ConversationID=conversation or refund.conversation_id,
                  OriginatorConversationID="10571-7910404-1", TransactionID="RVS1234567")
    if code != 0:
        del result["ResultParameters"]
    return body


def post(client, app, body, url=RESULT_URL):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    response = client.post(url, data=data, content_type="application/json")
    app.extensions["lipa"].tasks.drain()
    return response


def test_fixture_parses():
    result = parse_result(json.dumps(fixture_json("reversal_result.json")))
    assert (result.result_code, result.conversation_id, result.transaction_id) == (
        "0", "AG_20191219_00004e48cf7e3533f581", "NLJ41HAY6Q")
    assert result.parameters["OriginalTransactionID"] == "NLJ7RT61SV"


def test_success_completes_the_refund(client, app, conn):
    refund = processing(app)
    response = post(client, app, result_body(refund))
    assert response.status_code == 200 and response.get_json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    refund, payment = fresh(refund), Payment.get_by_id(refund.payment_id)
    assert (refund.status, refund.transaction_id, refund.result_code) == ("COMPLETED", "RVS1234567", "0")
    assert (payment.status, payment.refunded_amount) == ("REFUNDED", 1000)
    row = InboxMessage.get()
    assert (row.source, row.status, row.payment_id) == ("daraja.result", "APPLIED", payment.id)
    assert row.dedupe_key == f"result:{refund.conversation_id}:0"


def test_duplicate_result_applied_once(client, app, conn):
    refund = processing(app, amount=1000, refund_amount=400)
    for _ in range(2):
        assert post(client, app, result_body(refund)).status_code == 200
    payment = Payment.get_by_id(refund.payment_id)
    assert (payment.status, payment.refunded_amount) == ("COMPLETED", 400)
    assert InboxMessage.select().count() == 1
    assert sms_kinds(payment) == ["refund_initiated", "refund_processing", "refund_completed"]
    assert "KES 400" in Notification.get(Notification.kind == "refund_completed").body


def test_partial_refund_of_a_settled_payment_goes_back_to_settled(client, app, conn):
    refund = processing(app, amount=1000, refund_amount=100, status="SETTLED")
    post(client, app, result_body(refund))
    payment = Payment.get_by_id(refund.payment_id)
    assert (payment.status, payment.refunded_amount) == ("SETTLED", 100)
    assert "refund_failed" not in sms_kinds(payment)


def test_already_reversed_counts_but_flags(client, app, conn):
    refund = processing(app)
    post(client, app, result_body(refund, code="R000001", desc="The transaction has already been reversed."))
    refund, payment = fresh(refund), Payment.get_by_id(refund.payment_id)
    assert (refund.status, payment.status, payment.refunded_amount, payment.flagged) == (
        "COMPLETED", "REFUNDED", 1000, True)
    assert Alert.get(Alert.kind == "refund_already_reversed").payment_id == payment.id


@pytest.mark.parametrize("code, desc", [("R000002", "The OriginalTransactionID is invalid."),
                                        (21, "The initiator is not allowed to initiate this request.")])
def test_failure_codes_fail_the_refund(client, app, conn, code, desc):
    refund = processing(app, amount=1000, refund_amount=300)
    post(client, app, result_body(refund, code=code, desc=desc))
    refund, payment = fresh(refund), Payment.get_by_id(refund.payment_id)
    assert (refund.status, refund.result_code, refund.result_desc) == ("FAILED", str(code), f"{code}: {desc}")
    assert (payment.status, payment.refunded_amount) == ("COMPLETED", 0)
    assert sms_kinds(payment) == ["refund_initiated", "refund_processing", "refund_failed"]
    assert Alert.get(Alert.kind == "refund_failed")


def test_queue_timeout_fails_the_refund(client, app, conn):
    refund = processing(app)
    body = {"Result": {"ResultType": 1, "ResultCode": 1, "ResultDesc": "The request timed out in the queue.",
                       "OriginatorConversationID": "10571-7910404-1", "ConversationID": refund.conversation_id}}
    assert post(client, app, body, url=TIMEOUT_URL).status_code == 200
    refund, payment = fresh(refund), Payment.get_by_id(refund.payment_id)
    assert (refund.status, refund.result_desc, payment.status) == ("FAILED", "M-Pesa queue timeout", "COMPLETED")
    assert InboxMessage.get().source == "daraja.timeout"
    assert post(client, app, body, url=TIMEOUT_URL).status_code == 200  # stored once, applied once
    assert InboxMessage.select().count() == 1 and Alert.select().where(Alert.kind == "refund_failed").count() == 1


def test_success_after_a_queue_timeout_is_counted_and_flagged(client, app, conn):
    refund = processing(app)
    post(client, app, {"Result": {"ConversationID": refund.conversation_id}}, url=TIMEOUT_URL)
    post(client, app, result_body(refund))
    refund, payment = fresh(refund), Payment.get_by_id(refund.payment_id)
    assert (refund.status, payment.status, payment.refunded_amount, payment.flagged) == (
        "COMPLETED", "COMPLETED", 1000, True)
    assert Alert.get(Alert.kind == "late_refund_result") and InboxMessage.select().count() == 2


def test_unknown_conversation_is_flagged(client, app, conn):
    body = result_body(None, conversation="AG_20250101_unknown000000000")
    body["Result"]["ResultParameters"]["ResultParameter"][3]["Value"] = "UNKNOWNRCPT"
    assert post(client, app, body).status_code == 200
    row = InboxMessage.get()
    assert row.status == "FLAGGED" and Alert.get(Alert.kind == "unknown_result").inbox_id == row.id


def test_b2c_result_matched_by_originator_id_when_the_answer_was_lost(client, app, conn, sim):
    payment = make_payment(amount=500)
    refund = request_refund(payment, 500, "lost answer", requested_by=STAFF, method="b2c")
    sim.daraja.set_fault("b2c", "garbage")
    assert send(app, refund).status == "INITIATED"
    body = result_body(refund, conversation="AG_20250101_b2c0000000000000")
    body["Result"]["OriginatorConversationID"] = refund.originator_conversation_id
    post(client, app, body)
    refund = fresh(refund)
    assert (refund.status, refund.conversation_id) == ("COMPLETED", "AG_20250101_b2c0000000000000")


def test_reversal_result_matched_by_receipt_when_the_answer_was_lost(client, app, conn, sim):
    refund = request_refund(make_payment(amount=500), 500, "lost answer", requested_by=STAFF)
    sim.daraja.set_fault("reversal", "garbage")
    send(app, refund)
    post(client, app, result_body(refund, conversation="AG_20250101_rev0000000000000"))
    assert fresh(refund).status == "COMPLETED"


def test_wrong_token_404(client, app, conn):
    for url in ("/mpesa/result/wrong-token", "/mpesa/timeout/wrong-token"):
        response = post(client, app, {"Result": {}}, url=url)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert InboxMessage.select().count() == 0


@pytest.mark.parametrize("body", [
    "not json", b"\xff\xfe", "[]", {"Body": {}}, {"Result": "x"}, {"Result": {"ResultCode": 0}},
    {"Result": {"ConversationID": "AG_1"}}, {"Result": {"ConversationID": "AG_1", "ResultCode": True}},
    {"Result": {"ConversationID": 5, "ResultCode": 0}}, {"Result": {"ConversationID": "AG_1", "ResultCode": [0]}},
])
def test_malformed_result_400_and_stored(client, app, conn, body):
    response = post(client, app, body)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "malformed_result"
    assert InboxMessage.get().status == "REJECTED"


def test_malformed_timeout_400(client, app, conn):
    response = post(client, app, {"Result": {"ResultCode": 1}}, url=TIMEOUT_URL)
    assert response.status_code == 400 and InboxMessage.get().status == "REJECTED"


def test_failure_result_after_completion_is_a_duplicate(client, app, conn):
    refund = processing(app)
    post(client, app, result_body(refund))
    post(client, app, result_body(refund, code="R000002", desc="late failure"))
    assert fresh(refund).status == "COMPLETED"
    assert [r.status for r in InboxMessage.select().order_by(InboxMessage.id)] == ["APPLIED", "DUPLICATE"]
    assert Refund.select().count() == 1
