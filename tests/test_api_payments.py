"""/api/v1/payments: roles, filters, keyset pages, create with idempotency, timeline, and the staff actions."""
import json
from datetime import timedelta

import pytest
import requests

from gateway.backoffice import auth
from gateway.providers.daraja.client import StkQueryResult
from gateway.providers.daraja.errors import DarajaUnavailable
from shared.db import db
from shared.models import AuditLog, InboxMessage, Notification, Payment, PaymentEvent, PhonePreference, UssdSession
from shared.states import ACTIVE
from shared.timeutil import utcnow
from tests.helpers import staff_headers, wait_for

PHONE = "254712345678"
ACTIONS = ("requery", "resend-receipt", "retry", "refund", "resolve")
INJECTIONS = ("' OR 1=1 --", "<script>alert(1)</script>", "%", "_", "1; DROP TABLE payment; --")


@pytest.fixture
def heads(conn):
    """Authorization headers for each staff role and a merchant key."""
    return staff_headers(merchants={"merchant": "Shop"})


def seed(n=1, *, start=None, **kw):
    """n payments one minute apart (oldest first), created directly with the models."""
    start = start or utcnow() - timedelta(days=1)
    rows = []
    for i in range(n):
        values = dict(reference=f"LPT{Payment.select().count() + 1:06d}", phone=PHONE, amount=100 + i,
                      account="ACC1", channel="ussd", status="COMPLETED", created_at=start + timedelta(minutes=i))
        values.update(kw)
        values.setdefault("active_phone", values["phone"] if values["status"] in {s.value for s in ACTIVE} else None)
        rows.append(Payment.create(**values))
    return rows


def ids(response):
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_list_shape_and_read_roles(client, heads):
    payment = seed(status="PROCESSING", checkout_request_id="ws_1")[0]
    assert client.get("/api/v1/payments").status_code == 401
    assert client.get("/api/v1/payments", headers=heads["merchant"]).get_json()["items"] == []  # not its own
    assert client.get(f"/api/v1/payments/{payment.id}", headers=heads["merchant"]).status_code == 404
    body = client.get("/api/v1/payments", headers=heads["viewer"]).get_json()
    item = body["items"][0]
    assert body["next_cursor"] is None and item["amount"] == 100 and isinstance(item["amount"], int)
    assert item["allowed_transitions"] == ["CANCELLED", "COMPLETED", "EXPIRED", "FAILED"]
    for key in ("id", "reference", "phone", "account", "status", "status_message", "mpesa_receipt", "channel",
                "updated_at", "flagged", "flag_reason", "request_id", "retry_of"):
        assert key in item
    assert item["created_at"].endswith("Z")


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("who", ["viewer", "merchant", "operator"])
def test_actions_need_their_role(client, heads, action, who):
    payment = seed()[0]
    if who == "operator" and action not in ("refund", "resolve"):
        return
    response = client.post(f"/api/v1/payments/{payment.id}/{action}", headers=heads[who], json={})
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    assert client.post(f"/api/v1/payments/{payment.id}/{action}").status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/payments/999", "/api/v1/payments/abc", "/api/v1/payments/99999999999"])
def test_unknown_payment_is_404(client, heads, path):
    response = client.get(path, headers=heads["viewer"])
    assert response.status_code == 404 and "error" in response.get_json()
    for action in ACTIONS:
        body = {"refund": {"amount": 1, "reason": "x"}, "resolve": {"status": "FAILED", "reason": "x"}}.get(action)
        assert client.post(f"{path}/{action}", headers=heads["admin"], json=body).status_code == 404


@pytest.mark.parametrize("query,name", [
    ("status=BOGUS", "status"), ("status=COMPLETED,NOPE", "status"), ("from=yesterday", "from"),
    ("to=2024-13-01", "to"), ("from=2024-05-02&to=2024-05-01", "from"), ("limit=0", "limit"),
    ("limit=1000", "limit"), ("limit=abc", "limit"), ("cursor=garbage", "cursor"), ("flagged=maybe", "flagged"),
    ("channel=fax", "channel"), ("colour=red", "colour"), ("q=" + "x" * 65, "q"),
])
def test_invalid_filters_are_400_naming_the_filter(client, heads, query, name):
    response = client.get(f"/api/v1/payments?{query}", headers=heads["viewer"])
    assert response.status_code == 400
    assert name in response.get_json()["error"]["message"]


def test_oversize_body_is_413_and_wrong_type_415(client, heads):
    big = json.dumps({"phone": PHONE, "amount": 1, "account": "A" * 70_000})
    response = client.post("/api/v1/payments", data=big, content_type="application/json", headers=heads["merchant"])
    assert response.status_code == 413 and "error" in response.get_json()
    response = client.post("/api/v1/payments", data="phone=1", content_type="text/plain", headers=heads["merchant"])
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("field", ["phone", "account", "q"])
@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_strings_are_inert(client, heads, field, text):
    seed(3)
    response = client.get("/api/v1/payments", headers=heads["viewer"], query_string={field: text})
    assert ids(response) == []
    assert Payment.select().count() == 3


def test_keyset_pages_return_each_payment_once_newest_first(client, heads):
    seed(120)
    seen, cursor = [], None
    while True:
        query = {"limit": 17, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/payments", headers=heads["viewer"], query_string=query).get_json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 120 and seen == sorted(set(seen), reverse=True)
    assert len(ids(client.get("/api/v1/payments", headers=heads["viewer"]))) == 50


def test_filters_combine(client, heads):
    start = utcnow().replace(microsecond=0) - timedelta(days=3)
    hit = seed(2, start=start + timedelta(days=1), status="SETTLED", mpesa_receipt=None, channel="api")
    seed(1, start=start + timedelta(days=1), status="FAILED", channel="api")  # wrong status
    seed(1, start=start + timedelta(days=1), status="SETTLED", channel="api", phone="254722000111")  # wrong phone
    seed(1, start=start + timedelta(days=1), status="SETTLED", channel="api", account="OTHER")  # wrong account
    seed(1, start=start + timedelta(days=1), status="SETTLED", channel="sms")  # wrong channel
    seed(1, start=start, status="SETTLED", channel="api")  # too early
    seed(1, start=start + timedelta(days=1), status="SETTLED", channel="api", flagged=True, flag_reason="x")
    query = {"status": "completed,SETTLED", "phone": "0712 345 678", "account": "acc1", "channel": "api",
             "from": (start + timedelta(hours=12)).isoformat() + "Z", "flagged": "false",
             "to": (start + timedelta(days=2)).date().isoformat()}
    assert ids(client.get("/api/v1/payments", headers=heads["viewer"], query_string=query)) == [hit[1].id, hit[0].id]
    flagged = ids(client.get("/api/v1/payments?flagged=true", headers=heads["viewer"]))
    assert flagged == [Payment.get(Payment.flagged == True).id]  # noqa: E712


def test_q_matches_reference_or_receipt_whole_or_by_its_start_ignoring_case(client, heads):
    first, second, third = seed(3)
    Payment.update(mpesa_receipt="QK12ABC34D").where(Payment.id == second.id).execute()
    assert ids(client.get(f"/api/v1/payments?q={first.reference.lower()}", headers=heads["viewer"])) == [first.id]
    assert ids(client.get("/api/v1/payments?q=qk12abc34d", headers=heads["viewer"])) == [second.id]
    assert ids(client.get("/api/v1/payments?q=qk12abc", headers=heads["viewer"])) == [second.id]  # a prefix
    prefix = first.reference[:5].lower()
    assert ids(client.get(f"/api/v1/payments?q={prefix}", headers=heads["viewer"])) == [third.id, second.id, first.id]
    assert ids(client.get("/api/v1/payments?q=QK1", headers=heads["viewer"])) == []  # under 4 characters: whole only
    assert ids(client.get("/api/v1/payments?q=QK12ABC35", headers=heads["viewer"])) == []


def test_merchant_creates_a_payment_pushed_in_the_background(client, app, heads):
    response = client.post("/api/v1/payments", headers=heads["merchant"],
                           json={"phone": "0712345678", "amount": "500", "account": "acc42"})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["status"], body["phone"], body["amount"], body["channel"]) == ("PENDING", PHONE, 500, "api")
    app.extensions["lipa"].tasks.drain()
    assert Payment.get_by_id(body["id"]).status == "PROCESSING"
    assert PaymentEvent.get(PaymentEvent.kind == "created").actor == "merchant:Shop"
    busy = client.post("/api/v1/payments", headers=heads["operator"],
                       json={"phone": PHONE, "amount": 9, "account": "B"})
    assert busy.status_code == 409 and busy.get_json()["error"]["code"] == "payment_in_progress"


@pytest.mark.parametrize("body,code", [
    ({"phone": "12", "amount": 5, "account": "A"}, "invalid_phone"),
    ({"phone": PHONE, "amount": 0, "account": "A"}, "amount_out_of_range"),
    ({"phone": PHONE, "amount": 1.5, "account": "A"}, "invalid_amount"),
    ({"phone": PHONE, "amount": 5, "account": "a b"}, "invalid_account"),
    ({"phone": PHONE, "amount": 5}, "missing_field"),
    ({"phone": PHONE, "amount": 5, "account": "A", "x": 1}, "unknown_field"),
])
def test_create_validation_is_400(client, heads, body, code):
    response = client.post("/api/v1/payments", headers=heads["operator"], json=body)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert client.post("/api/v1/payments", headers=heads["viewer"], json=body).status_code == 403


def test_idempotency_replays_the_first_answer_and_refuses_another_body(client, app, heads):
    headers = {**heads["merchant"], "Idempotency-Key": "order-77"}
    body = {"phone": PHONE, "amount": 300, "account": "INV77"}
    first = client.post("/api/v1/payments", headers=headers, json=body)
    app.extensions["lipa"].tasks.drain()
    again = client.post("/api/v1/payments", headers=headers, json=body)
    assert (again.status_code, again.get_json()) == (first.status_code, first.get_json()) and first.status_code == 201
    other = client.post("/api/v1/payments", headers=headers, json={**body, "amount": 301})
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_conflict"
    assert Payment.select().count() == 1
    assert Payment.get().idempotency_key == f"api:merchant:{Payment.get().merchant_id}:order-77"


def test_detail_timeline_tells_the_whole_story_in_order(client, heads):
    t0 = utcnow().replace(microsecond=0) - timedelta(hours=1)
    payment = seed(start=t0 + timedelta(seconds=5), status="COMPLETED", mpesa_receipt="QK1",
                   checkout_request_id="ws_9")[0]
    UssdSession.create(session_id="ATU1", phone=PHONE, service_code="*384*1#", inputs=["1", "ACC1", "100", "1"],
                       payment=payment, created_at=t0, updated_at=t0 + timedelta(seconds=5))
    for second, kind, frm, to, payload in ((5, "created", "PENDING", "PENDING", None),
                                            (6, "stk_request", "PENDING", "PENDING", None),
                                            (7, "transition", "PENDING", "PROCESSING", {"ResponseCode": "0"}),
                                            (20, "transition", "PROCESSING", "COMPLETED", {"Body": {}})):
        PaymentEvent.create(payment=payment, kind=kind, from_status=frm, to_status=to, actor="test", payload=payload,
                            created_at=t0 + timedelta(seconds=second))
    InboxMessage.create(source="daraja.stk", body='{"Body": {"stkCallback": {"ResultCode": 0}}}', payment=payment,
                        status="APPLIED", received_at=t0 + timedelta(seconds=19))
    Notification.create(channel="sms", kind="payment_completed", payment=payment, recipient=PHONE, body="Receipt",
                        status="DELIVERED", created_at=t0 + timedelta(seconds=21),
                        delivered_at=t0 + timedelta(seconds=25))
    assert client.post(f"/api/v1/payments/{payment.id}/resend-receipt", headers=heads["operator"]).status_code == 201
    body = client.get(f"/api/v1/payments/{payment.id}", headers=heads["viewer"]).get_json()
    kinds = [(e["type"], e.get("kind") or e.get("action") or e.get("hop")) for e in body["events"]]
    assert kinds[:11] == [("ussd", 0), ("ussd", 1), ("ussd", 2), ("ussd", 3), ("ussd", 4), ("event", "created"),
                          ("event", "stk_request"), ("event", "transition"), ("callback", None),
                          ("event", "transition"), ("notification", "payment_completed")]
    assert kinds[11:] == [("notification", "payment_completed"), ("event", "receipt_resent"),
                          ("staff_action", "resend_receipt")]
    assert [e["at"] for e in body["events"]] == sorted(e["at"] for e in body["events"])
    assert body["events"][4]["text"] == "1*ACC1*100*1" and body["events"][8]["body"]["Body"]["stkCallback"]
    assert body["events"][10]["status"] == "DELIVERED" and body["events"][7]["payload"] == {"ResponseCode": "0"}
    assert body["callbacks"][0]["body"]["Body"] and len(body["notifications"]) == 2 and body["refunds"] == []
    assert body["events"][-1]["actor"] == "staff:operator" and body["events"][-2]["actor"] == "staff:operator"


class QueryOnly:
    """A Daraja stand-in that answers STK queries only (or fails them)."""

    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.asked = answer, error, []

    def stk_query(self, checkout_request_id):
        self.asked.append(checkout_request_id)
        if self.error:
            raise self.error
        return self.answer


def test_requery_records_the_answer_and_never_downgrades(client, app, heads, monkeypatch):
    fake = QueryOnly(StkQueryResult("1032", "Request cancelled by user", False, {"ResultCode": "1032"}))
    monkeypatch.setattr(app.extensions["lipa"], "daraja", fake)
    paid = seed(status="COMPLETED", checkout_request_id="ws_paid", mpesa_receipt="QK9")[0]
    response = client.post(f"/api/v1/payments/{paid.id}/requery", headers=heads["operator"], json={"reason": "caller"})
    assert response.status_code == 200 and fake.asked == ["ws_paid"]
    body = response.get_json()
    assert body["query"] == {"result_code": "1032", "result_desc": "Request cancelled by user", "pending": False}
    assert body["payment"]["status"] == "COMPLETED"
    event = PaymentEvent.get(PaymentEvent.payment == paid, PaymentEvent.kind == "stk_query")
    assert event.actor == "staff:operator" and event.payload["result_code"] == "1032"
    row = AuditLog.get(AuditLog.action == "requery")
    assert (row.target_type, row.target_id, row.reason) == ("payment", str(paid.id), "caller")
    unsent = seed(status="PENDING")[0]
    assert client.post(f"/api/v1/payments/{unsent.id}/requery", headers=heads["operator"]).status_code == 409


def test_requery_applies_the_answer_as_the_sweep_would(client, app, heads, monkeypatch):
    fake = QueryOnly(StkQueryResult("1032", "Request cancelled by user", False, {"ResultCode": "1032"}))
    monkeypatch.setattr(app.extensions["lipa"], "daraja", fake)
    payment = seed(status="PROCESSING", checkout_request_id="ws_open")[0]
    body = client.post(f"/api/v1/payments/{payment.id}/requery", headers=heads["operator"]).get_json()
    assert (body["applied"], body["payment"]["status"]) == ("cancelled", "CANCELLED")
    kinds = [e.kind for e in PaymentEvent.select().where(PaymentEvent.payment == payment).order_by(PaymentEvent.id)]
    assert kinds == ["transition", "stk_query"]


def test_requery_provider_failure_is_an_error_and_still_audited(client, app, heads, monkeypatch):
    monkeypatch.setattr(app.extensions["lipa"], "daraja", QueryOnly(error=DarajaUnavailable("cannot connect")))
    payment = seed(status="PROCESSING", checkout_request_id="ws_2")[0]
    response = client.post(f"/api/v1/payments/{payment.id}/requery", headers=heads["admin"])
    assert response.status_code == 503 and AuditLog.get(AuditLog.action == "requery").details["error"]
    assert Payment.get_by_id(payment.id).status == "PROCESSING"


def test_resend_receipt_queues_a_new_sms_even_after_stop(client, heads):
    payment = seed(status="SETTLED", mpesa_receipt="QK7")[0]
    PhonePreference.create(phone=PHONE, notifications=False)
    for n in (1, 2):
        response = client.post(f"/api/v1/payments/{payment.id}/resend-receipt", headers=heads["operator"])
        assert response.status_code == 201
        note = Notification.get_by_id(response.get_json()["notification"]["id"])
        assert (note.status, note.kind, note.dedupe_key) == ("QUEUED", "payment_completed", f"resend:{payment.id}:{n}")
        assert "QK7" in note.body and note.recipient == PHONE
    assert AuditLog.select().where(AuditLog.action == "resend_receipt").count() == 2
    assert PaymentEvent.select().where(PaymentEvent.kind == "receipt_resent").count() == 2
    failed = seed(status="FAILED")[0]
    response = client.post(f"/api/v1/payments/{failed.id}/resend-receipt", headers=heads["operator"])
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "no_receipt"


def test_retry_creates_a_linked_payment_and_pushes_it(client, app, heads):
    failed = seed(status="FAILED", amount=700)[0]
    response = client.post(f"/api/v1/payments/{failed.id}/retry", headers=heads["operator"])
    assert response.status_code == 201
    body = response.get_json()
    assert body["retry_of"] == failed.id and body["amount"] == 700 and body["id"] != failed.id
    app.extensions["lipa"].tasks.drain()
    assert Payment.get_by_id(body["id"]).status == "PROCESSING"
    assert PaymentEvent.get(PaymentEvent.payment == failed, PaymentEvent.kind == "retried").actor == "staff:operator"
    assert AuditLog.get(AuditLog.action == "retry").details["new_payment_id"] == body["id"]
    done = seed(status="COMPLETED")[0]
    assert client.post(f"/api/v1/payments/{done.id}/retry", headers=heads["operator"]).status_code == 409


def test_resolve_goes_through_the_state_machine(client, heads):
    payment = seed(status="PROCESSING", checkout_request_id="ws_3")[0]
    url = f"/api/v1/payments/{payment.id}/resolve"
    for body in ({"status": "FAILED"}, {"status": "FAILED", "reason": "   "}, {"status": "LOST", "reason": "x"}):
        assert client.post(url, headers=heads["admin"], json=body).status_code == 400
    response = client.post(url, headers=heads["admin"], json={"status": "expired", "reason": "Customer phone off"})
    assert response.status_code == 200 and response.get_json()["status"] == "EXPIRED"
    event = PaymentEvent.get(PaymentEvent.payment == payment, PaymentEvent.to_status == "EXPIRED")
    assert (event.kind, event.actor, event.reason) == ("transition", "staff:admin", "Customer phone off")
    assert Payment.get_by_id(payment.id).active_phone is None
    refused = client.post(url, headers=heads["admin"], json={"status": "REFUNDED", "reason": "no"})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "refund_only"
    assert Payment.get_by_id(payment.id).status == "EXPIRED"
    assert [a.details for a in AuditLog.select().where(AuditLog.action == "resolve")] == [
        {"from": "PROCESSING", "to": "EXPIRED"}]


def test_refund_by_admin(client, app, heads):
    payment = seed(status="COMPLETED", mpesa_receipt="QK5", amount=1000)[0]
    url = f"/api/v1/payments/{payment.id}/refund"
    assert client.post(url, headers=heads["admin"], json={"amount": 400}).status_code == 400
    response = client.post(url, headers=heads["admin"], json={"amount": 400, "reason": "double charge"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["amount"], body["payment_id"], body["requested_by"]) == (400, payment.id, "staff:admin")
    assert AuditLog.get(AuditLog.action == "refund").details["refund_id"] == body["id"]
    assert Payment.get_by_id(payment.id).status == "REFUND_PENDING"
    again = client.post(url, headers=heads["admin"], json={"amount": 100, "reason": "again"})
    assert again.status_code == 409
    app.extensions["lipa"].tasks.drain()
    detail = client.get(f"/api/v1/payments/{payment.id}", headers=heads["viewer"]).get_json()
    assert [r["id"] for r in detail["refunds"]] == [body["id"]]
    assert "refund" in {e["type"] for e in detail["events"]}


@pytest.mark.server
def test_timeline_of_a_real_ussd_payment(live, sim):
    for text in ["", "1", "1*ACC7", "1*ACC7*250", "1*ACC7*250*1"]:
        requests.post(f"{live.url}/ussd", data={"sessionId": "tl-1", "serviceCode": "*384*1#", "text": text,
                                                "phoneNumber": "+254712345678", "networkCode": "63902"}, timeout=5)

    def paid():
        with db.connection_context():
            return Payment.get_or_none(Payment.status == "COMPLETED")

    payment = wait_for(paid)
    live.app.extensions["lipa"].tasks.drain()
    with db.connection_context():
        auth.create_staff("viewer", "viewer-password", "viewer")
        token = auth.login("viewer", "viewer-password")[0]
    body = requests.get(f"{live.url}/api/v1/payments/{payment.id}", headers={"Authorization": f"Bearer {token}"},
                        timeout=5).json()
    kinds = [(e["type"], e.get("kind") or e.get("hop")) for e in body["events"]]
    assert kinds[:6] == [("ussd", 0), ("ussd", 1), ("ussd", 2), ("ussd", 3), ("ussd", 4), ("event", "created")]
    assert kinds.index(("event", "stk_request")) < kinds.index(("callback", None))
    assert ("notification", "payment_completed") in kinds
    assert body["callbacks"][0]["body"]["Body"]["stkCallback"]["ResultCode"] == 0
    assert [e["at"] for e in body["events"]] == sorted(e["at"] for e in body["events"])
